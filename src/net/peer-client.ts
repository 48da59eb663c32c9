// The dialling side of a peer link: connect, prove the cluster secret and check
// the peer's proof, all within one deadline.
import { WebSocket } from 'ws'
import { ChaacError } from '../errors.ts'
import { handshakeSettings, openHandshake, type HandshakeOptions } from './handshake.ts'
import type { PeerLink } from './peer-link.ts'

export interface ConnectOptions extends HandshakeOptions {
  /** For connecting and authenticating together; default 5 s. */
  connectTimeoutMs?: number
  /** The address to connect from (the agent's own, so that its peers see it as that host); the system's choice if absent. */
  localAddress?: string
}

// A dialling side must mask what it sends, against proxies that a browser's
// script could fool; between agents there is none. With a key of zeros the ws
// library sends the bytes as they are: random keys cost a copy and an XOR of
// every byte of each ball this side streams.
const zeroMask = (mask: Buffer): void => { mask.fill(0) }

/** Opens an authenticated link to the peer at `url` (ws://host:port). */
export async function connectPeer (url: string, opts: ConnectOptions): Promise<PeerLink> {
  const { maxFrameBytes } = handshakeSettings(opts)
  let ws: WebSocket
  try {
    ws = new WebSocket(url, { maxPayload: maxFrameBytes, perMessageDeflate: false, localAddress: opts.localAddress, generateMask: zeroMask })
  } catch (err) {
    throw new ChaacError('CHAAC_INVALID', `not a peer address: ${url}`, { cause: err })
  }
  return await openHandshake(ws, opts, opts.connectTimeoutMs ?? 5_000, `connecting to peer ${url}`)
}
