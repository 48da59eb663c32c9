// The first frames on a new connection, before it becomes a PeerLink:
//
//   server -> client  challenge {v, peer, nonce}
//   client -> server  auth      {peer, nonce, proof}   (proof of the secret, auth.ts)
//   server -> client  welcome   {proof}                (the server's proof back)
//
// Anything else first, a wrong proof, or no proof before the deadline closes
// the connection. Each step runs inside the message event and the link takes
// over in the same turn, so a request right behind the welcome is not lost.
import type { RawData, WebSocket } from 'ws'
import { ChaacError } from '../errors.ts'
import { authProof, newNonce, verifyProof, type AuthTranscript, type ClusterSecret } from './auth.ts'
import { MAX_PEER_ID_CHARS, PROTOCOL_VERSION, decodeFrame, encodeFrame, isText, protocolError, type Frame } from './frames.ts'
import { CLOSE, PeerLink, closeSocket, frameFailure, linkSettings, socketFailure, type LinkOptions, type LinkSettings } from './peer-link.ts'

export interface HandshakeOptions extends LinkOptions {
  /** This agent's id, as its peers know it. */
  localId: string
  /** The cluster secret; without one (loopback only) the handshake runs with an empty secret. */
  secret?: ClusterSecret
}

/** Fills in the link's defaults and checks them and the peer id; a bad one is a configuration error. */
export function handshakeSettings (opts: HandshakeOptions): LinkSettings {
  if (!isText(opts.localId, MAX_PEER_ID_CHARS)) {
    throw new ChaacError('CHAAC_INVALID', `a peer id is 1 to ${MAX_PEER_ID_CHARS} characters, not ${JSON.stringify(opts.localId)}`)
  }
  return linkSettings(opts)
}

/** The server's side: challenge, check the client's proof, prove back. */
export function acceptHandshake (ws: WebSocket, opts: HandshakeOptions, timeoutMs: number): Promise<PeerLink> {
  const serverNonce = newNonce()
  const secret = opts.secret ?? ''
  const running = handshake(ws, opts, timeoutMs, 'authentication', (frame) => {
    if (frame.t !== 'auth') throw protocolError(`a ${frame.t} frame before authentication`)
    const tr = { serverId: opts.localId, clientId: frame.peer, serverNonce, clientNonce: frame.nonce }
    if (!verifyProof(secret, 'client', tr, frame.proof)) {
      throw new ChaacError('CHAAC_AUTH_FAILED', `peer ${frame.peer} did not prove the cluster secret`)
    }
    ws.send(encodeFrame({ t: 'welcome', proof: authProof(secret, 'server', tr) }))
    return new PeerLink(ws, opts.localId, frame.peer, opts)
  })
  ws.send(encodeFrame({ t: 'challenge', v: PROTOCOL_VERSION, peer: opts.localId, nonce: serverNonce }))
  return running
}

/** The client's side: answer the challenge with a proof, then check the server's. */
export function openHandshake (ws: WebSocket, opts: HandshakeOptions, timeoutMs: number, what: string): Promise<PeerLink> {
  const clientNonce = newNonce()
  const secret = opts.secret ?? ''
  let tr: AuthTranscript | undefined
  return handshake(ws, opts, timeoutMs, what, (frame) => {
    if (!tr) {
      if (frame.t !== 'challenge') throw protocolError(`a ${frame.t} frame instead of the challenge`)
      if (frame.v !== PROTOCOL_VERSION) throw protocolError(`the peer speaks protocol version ${frame.v}, this agent ${PROTOCOL_VERSION}`)
      tr = { serverId: frame.peer, clientId: opts.localId, serverNonce: frame.nonce, clientNonce }
      ws.send(encodeFrame({ t: 'auth', peer: opts.localId, nonce: clientNonce, proof: authProof(secret, 'client', tr) }))
      return undefined
    }
    if (frame.t !== 'welcome') throw protocolError(`a ${frame.t} frame before the welcome`)
    if (!verifyProof(secret, 'server', tr, frame.proof)) {
      throw new ChaacError('CHAAC_AUTH_FAILED', `peer ${tr.serverId} did not prove the cluster secret`)
    }
    return new PeerLink(ws, opts.localId, tr.serverId, opts)
  })
}

// Feeds each frame to `step` until it returns the link; a throw, a close or the
// deadline ends the handshake with an error.
function handshake (
  ws: WebSocket, opts: HandshakeOptions, timeoutMs: number, what: string, step: (frame: Frame) => PeerLink | undefined
): Promise<PeerLink> {
  const { maxFrameBytes } = linkSettings(opts)
  return new Promise((resolve, reject) => {
    let done = false
    const finish = (): void => {
      done = true
      clearTimeout(timer)
      ws.off('message', onMessage)
      ws.off('close', onClose)
    }
    const refuse = (err: ChaacError): void => {
      finish()
      closeSocket(ws, err.code === 'CHAAC_AUTH_FAILED' ? CLOSE.AUTH_FAILED : err.code === 'CHAAC_TIMEOUT' ? CLOSE.TIMEOUT : CLOSE.PROTOCOL)
      reject(err)
    }
    const onMessage = (data: RawData, isBinary: boolean): void => {
      try {
        if (!isBinary || !Buffer.isBuffer(data)) throw protocolError('a frame must be one binary message')
        const link = step(decodeFrame(data, maxFrameBytes))
        if (link) {
          finish()
          resolve(link)
        }
      } catch (err) {
        refuse(frameFailure(err, opts.log, { during: what }))
      }
    }
    const onClose = (code: number): void => {
      finish()
      reject(code === CLOSE.AUTH_FAILED
        ? new ChaacError('CHAAC_AUTH_FAILED', `${what}: the peer refused our proof of the cluster secret`)
        : new ChaacError(code === CLOSE.TIMEOUT ? 'CHAAC_TIMEOUT' : 'CHAAC_IO', `${what}: connection closed (${code})`))
    }
    const timer = setTimeout(() => refuse(new ChaacError('CHAAC_TIMEOUT', `${what} did not complete within ${timeoutMs} ms`)), timeoutMs)
    // Kept for the socket's life: an error event with no listener would throw in the process.
    ws.on('error', (err) => { if (!done) refuse(socketFailure(err, what)) })
    ws.on('message', onMessage)
    ws.on('close', onClose)
  })
}
