// One authenticated connection to a peer agent, made by listenPeers or
// connectPeer once the handshake is done. Many requests share it, each with an
// id and a deadline. A reply may stream bytes (a ball) straight into the
// caller's buffer; the sender keeps at most `windowBytes` unacknowledged on the
// link, so a 64 MiB ball never queues more than the window in memory and small
// requests are never stuck behind a whole ball. Pings measure the round trip
// the reader ranks peers by, and notice a peer gone silent. When the link
// drops, everything waiting on it fails at once.
import { performance } from 'node:perf_hooks'
import type { RawData, WebSocket } from 'ws'
import { ChaacError, ERRNO_OF, type ChaacCode } from '../errors.ts'
import {
  DEFAULT_MAX_FRAME_BYTES, MAX_MESSAGE_CHARS, MAX_STREAM_BYTES, decodeFrame, encodeFrame, protocolError,
  type Frame, type FrameOf, type WireError
} from './frames.ts'

/** Where the net layer logs; a pino logger fits. */
export interface NetLog {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

/** Close codes (private range for our own), so that the other side can tell why. */
export const CLOSE = { NORMAL: 1000, PROTOCOL: 4400, AUTH_FAILED: 4401, TIMEOUT: 4408 } as const
export type CloseCode = (typeof CLOSE)[keyof typeof CLOSE]
const CLOSE_REASON: Record<CloseCode, string> = {
  1000: 'closing', 4400: 'protocol violation', 4401: 'authentication failed', 4408: 'timeout'
}
const CLOSE_GRACE_MS = 1000
// Room for a chunk frame's fields around its data.
const CHUNK_OVERHEAD = 64

export interface RequestContext {
  link: PeerLink
  op: string
  /** Aborted when the requester gives up or the link drops: the answer is no longer wanted. */
  signal: AbortSignal
}

/**
 * Answers one op with a reply body (any msgpack value) or a StreamReply. A
 * thrown ChaacError goes back to the requester with its code; anything else
 * is logged here and goes back as CHAAC_IO. The body is the peer's: check it.
 */
export type Handler = (body: unknown, ctx: RequestContext) => unknown
export type Handlers = Record<string, Handler>

/** A handler's answer whose `data` (a ball) follows `body` as a stream. */
export class StreamReply {
  constructor (readonly data: Buffer, readonly body?: unknown) {}
}

export interface Reply {
  body: unknown
  /** Bytes streamed into the caller's buffer; 0 when the reply had no stream. */
  bytes: number
}

export interface LinkOptions {
  log: NetLog
  /** Installed before the link carries its first frame; `on` adds more later. */
  handlers?: Handlers
  /** Deadline of a request or ping that names none; default 10 s. */
  timeoutMs?: number
  /** Streamed bytes sent and not yet acknowledged, over all replies on the link; default 2 MiB. */
  windowBytes?: number
  /** Bytes per chunk of a streamed reply; default 256 KiB. */
  chunkBytes?: number
  /** Largest frame sent or accepted; default 1 MiB. Peers must agree on it and on `chunkBytes`. */
  maxFrameBytes?: number
  /** Keepalive: a ping this often, and a silent peer's link is closed; 0 turns it off; default 5 s. */
  pingIntervalMs?: number
}

export type LinkSettings = Required<Omit<LinkOptions, 'log' | 'handlers'>>

export interface CallOptions {
  timeoutMs?: number
}

export interface LinkStats {
  /** Own requests and pings awaiting their answer. */
  pending: number
  /** The peer's requests being answered here. */
  serving: number
  inFlightBytes: number
  peakInFlightBytes: number
  /** The most the socket ever had queued right after a chunk was sent. */
  peakBufferedBytes: number
  /** Acks sent: each gives back the credit of the chunks received since the one before. */
  acksSent: number
  rttMs?: number
}

interface Pending {
  op: string
  ping: boolean
  resolve: (reply: Reply) => void
  reject: (err: ChaacError) => void
  timer: NodeJS.Timeout
  into?: Buffer
  stream?: { body: unknown, size: number, got: number, seq: number }
}

interface CreditWaiter {
  bytes: number
  resolve: () => void
  reject: (err: ChaacError) => void
}

/** Fills in the defaults and checks they fit together (a misfit is a programmer mistake). */
export function linkSettings (opts: LinkOptions): LinkSettings {
  const s: LinkSettings = {
    timeoutMs: opts.timeoutMs ?? 10_000,
    windowBytes: opts.windowBytes ?? 2 * 1024 * 1024,
    chunkBytes: opts.chunkBytes ?? 256 * 1024,
    maxFrameBytes: opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES,
    pingIntervalMs: opts.pingIntervalMs ?? 5_000
  }
  if (!(s.timeoutMs > 0 && s.pingIntervalMs >= 0)) throw new TypeError('timeoutMs must be positive and pingIntervalMs not negative')
  if (!(s.chunkBytes > 0 && s.chunkBytes <= s.windowBytes && s.chunkBytes + CHUNK_OVERHEAD <= s.maxFrameBytes)) {
    throw new TypeError(`chunkBytes (${s.chunkBytes}) must fit in windowBytes (${s.windowBytes}) and, with ${CHUNK_OVERHEAD} bytes to spare, in maxFrameBytes (${s.maxFrameBytes})`)
  }
  return s
}

/** Closes with `code` so the peer learns why, and cuts the socket if the peer does not answer. */
export function closeSocket (ws: WebSocket, code: CloseCode): void {
  if (ws.readyState === ws.CLOSED) return
  if (ws.readyState === ws.CONNECTING) {
    ws.terminate()
    return
  }
  if (ws.readyState === ws.OPEN) ws.close(code, CLOSE_REASON[code])
  setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref()
}

/**
 * The reason to close a connection after `err` on a received frame. The
 * peer's fault (a ChaacError) is its to explain and left to the caller to
 * log; anything else is a bug here, and logged as one.
 */
export function frameFailure (err: unknown, log: NetLog, context: object): ChaacError {
  if (err instanceof ChaacError) return err
  log.error({ ...context, err }, 'failed on a frame from a peer; closing the connection')
  return new ChaacError('CHAAC_IO', `failed on a frame: ${String(err)}`, { cause: err })
}

/** A socket's error event as a ChaacError: the ws library's own codes mean the peer broke the protocol. */
export function socketFailure (err: NodeJS.ErrnoException, what: string): ChaacError {
  const code = err.code?.startsWith('WS_ERR_') === true ? 'CHAAC_PROTOCOL' : 'CHAAC_IO'
  return new ChaacError(code, `${what} failed: ${err.message}`, { cause: err })
}

export class PeerLink {
  /** Resolves (never rejects) with the reason once the link is down. */
  readonly closed: Promise<ChaacError>
  private readonly socketClosed: Promise<void>
  private markClosed!: (reason: ChaacError) => void
  private reason?: ChaacError
  private readonly settings: LinkSettings
  private readonly log: NetLog
  private readonly handlers: Map<string, Handler>
  private readonly pending = new Map<number, Pending>()
  private readonly serving = new Map<number, AbortController>()
  private readonly credits: CreditWaiter[] = []
  private readonly keepalive?: NodeJS.Timeout
  private probing = false
  private nextId = 1
  private inFlight = 0
  private peakInFlight = 0
  // Streamed bytes received and not acknowledged yet, and the request of the last chunk.
  private unacked = { bytes: 0, id: 0, scheduled: false }
  private acksSent = 0
  private peakBuffered = 0
  private srtt?: number

  constructor (private readonly ws: WebSocket, readonly localId: string, readonly peerId: string, opts: LinkOptions) {
    this.settings = linkSettings(opts)
    this.log = opts.log
    // A Map, not the object: an op named by the peer must never reach a prototype.
    this.handlers = new Map(Object.entries(opts.handlers ?? {}))
    this.closed = new Promise((resolve) => { this.markClosed = resolve })
    this.socketClosed = new Promise((resolve) => {
      ws.on('close', (code: number, why: Buffer) => {
        this.shutdown(new ChaacError('CHAAC_IO', `link to peer ${peerId} closed (${code}${why.length > 0 ? ` ${why.toString()}` : ''})`))
        resolve()
      })
    })
    ws.on('message', (data, isBinary) => this.receive(data, isBinary))
    ws.on('error', (err) => {
      this.log.warn({ peer: peerId, err: err.message }, 'peer link failed')
      this.shutdown(socketFailure(err, `link to peer ${peerId}`), CLOSE.PROTOCOL)
    })
    if (this.settings.pingIntervalMs > 0) {
      this.keepalive = setInterval(() => this.probe(), this.settings.pingIntervalMs)
      this.keepalive.unref()
    }
  }

  get isClosed (): boolean {
    return this.reason !== undefined
  }

  /** Smoothed round-trip time in ms (1/8 gain, as TCP's SRTT), once a ping came back. */
  get rttMs (): number | undefined {
    return this.srtt
  }

  /** Registers the handler of `op`, replacing any earlier one. */
  on (op: string, handler: Handler): this {
    this.handlers.set(op, handler)
    return this
  }

  /** Sends a request and resolves with the reply body; a streamed reply needs `requestInto`. */
  async request (op: string, body?: unknown, opts: CallOptions = {}): Promise<unknown> {
    return (await this.exchange({ t: 'req', id: this.nextId++, op, body }, opts.timeoutMs)).body
  }

  /**
   * Sends a request whose reply streams bytes into `into` from offset 0, and
   * resolves once all have arrived, within the one deadline. After a rejection
   * `into` is never written again.
   */
  async requestInto (op: string, body: unknown, into: Buffer, opts: CallOptions = {}): Promise<Reply> {
    return await this.exchange({ t: 'req', id: this.nextId++, op, body }, opts.timeoutMs, into)
  }

  /** Measures one round trip in ms, and folds it into `rttMs`. */
  async ping (timeoutMs?: number): Promise<number> {
    const started = performance.now()
    await this.exchange({ t: 'ping', n: this.nextId++ }, timeoutMs)
    const rtt = performance.now() - started
    this.srtt = this.srtt === undefined ? rtt : this.srtt + (rtt - this.srtt) / 8
    return rtt
  }

  stats (): LinkStats {
    return {
      pending: this.pending.size,
      serving: this.serving.size,
      inFlightBytes: this.inFlight,
      peakInFlightBytes: this.peakInFlight,
      peakBufferedBytes: this.peakBuffered,
      acksSent: this.acksSent,
      rttMs: this.srtt
    }
  }

  /** Closes the link (pending requests fail) and resolves once the socket is closed. */
  async close (): Promise<void> {
    this.shutdown(new ChaacError('CHAAC_IO', `link to peer ${this.peerId} was closed here`), CLOSE.NORMAL)
    await this.socketClosed
  }

  private exchange (frame: FrameOf<'req'> | FrameOf<'ping'>, timeoutMs = this.settings.timeoutMs, into?: Buffer): Promise<Reply> {
    if (this.reason) return Promise.reject(this.reason)
    const [id, op] = frame.t === 'req' ? [frame.id, frame.op] : [frame.n, 'ping']
    try {
      this.send(frame)
    } catch (err) {
      return Promise.reject(err)
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id)
        // The peer can stop working on it, and stop streaming.
        if (frame.t === 'req') this.send({ t: 'cancel', id })
        reject(new ChaacError('CHAAC_TIMEOUT', `peer ${this.peerId} did not answer ${op} within ${timeoutMs} ms`))
      }, timeoutMs)
      this.pending.set(id, { op, ping: frame.t === 'ping', resolve, reject, timer, into })
    })
  }

  // Encoding errors throw; on a closed link the frame is dropped, as whoever
  // waited for its answer has already been told.
  private send (frame: Frame): void {
    const bytes = encodeFrame(frame, this.settings.maxFrameBytes)
    if (!this.reason) this.ws.send(bytes)
  }

  private receive (data: RawData, isBinary: boolean): void {
    if (this.reason) return
    try {
      if (!isBinary || !Buffer.isBuffer(data)) throw protocolError('a frame must be one binary message')
      this.dispatch(decodeFrame(data, this.settings.maxFrameBytes))
    } catch (err) {
      if (err instanceof ChaacError) this.log.warn({ peer: this.peerId, err: err.message }, 'peer broke the protocol; closing the link')
      this.shutdown(frameFailure(err, this.log, { peer: this.peerId }), CLOSE.PROTOCOL)
    }
  }

  private dispatch (frame: Frame): void {
    switch (frame.t) {
      case 'req':
        if (this.serving.has(frame.id)) throw protocolError(`request id ${frame.id} reused while in progress`)
        void this.serve(frame)
        return
      case 'res': return this.onResponse(frame)
      case 'chunk': return this.onChunk(frame)
      case 'end': return this.onEnd(frame)
      case 'ack':
        if (frame.bytes > this.inFlight) throw protocolError('acknowledged more bytes than were sent')
        return this.release(frame.bytes)
      case 'cancel':
        this.serving.get(frame.id)?.abort()
        return
      case 'ping': return this.send({ t: 'pong', n: frame.n })
      case 'pong': {
        const p = this.waiting(frame.n, 'pong')
        if (p && !p.ping) throw protocolError(`a pong for request ${frame.n}`)
        return this.settle(frame.n, { body: undefined, bytes: 0 })
      }
      default:
        throw protocolError(`a ${frame.t} frame after the handshake`)
    }
  }

  // What waits for an answer with this id; undefined if it gave up already, so
  // whatever still comes for it is dropped.
  private waiting (id: number, t: string): Pending | undefined {
    if (id === 0 || id >= this.nextId) throw protocolError(`a ${t} frame for request ${id}, which was never sent`)
    return this.pending.get(id)
  }

  private settle (id: number, outcome: Reply | ChaacError): void {
    const p = this.pending.get(id)
    if (!p) return
    this.pending.delete(id)
    clearTimeout(p.timer)
    if (outcome instanceof ChaacError) p.reject(outcome)
    else p.resolve(outcome)
  }

  private onResponse (f: FrameOf<'res'>): void {
    const p = this.waiting(f.id, 'res')
    if (!p) return
    if (p.ping || p.stream) throw protocolError(`an unexpected response to request ${f.id}`)
    if (!f.ok) return this.settle(f.id, this.fromWire(f.err))
    if (f.size === undefined) return this.settle(f.id, { body: f.body, bytes: 0 })
    if (!p.into || f.size > p.into.length) {
      this.send({ t: 'cancel', id: f.id })
      return this.settle(f.id, protocolError(`peer ${this.peerId} answered ${p.op} with ${f.size} bytes; the buffer holds ${p.into?.length ?? 0}`))
    }
    p.stream = { body: f.body, size: f.size, got: 0, seq: 0 }
  }

  private onChunk ({ id, seq, data }: FrameOf<'chunk'>): void {
    const p = this.waiting(id, 'chunk')
    // Every chunk gives its credit back, also one for a request that gave up:
    // else the sender's window would shrink for good.
    this.acknowledge(id, data.length)
    if (!p) return
    const s = p.stream
    if (!s || !p.into || seq !== s.seq || s.got + data.length > s.size) {
      throw protocolError(`chunk ${seq} of request ${id} is out of order or beyond the announced size`)
    }
    data.copy(p.into, s.got)
    s.got += data.length
    s.seq++
  }

  // Credit goes back in one ack for the chunks that arrived together (a
  // socket read holds several), and at once when half the window waits for
  // it: an ack per chunk was a socket write per 256 KiB, a tenth of the
  // receiving agent's thread during remote reads. The sender only counts the
  // bytes, whatever request the ack names.
  private acknowledge (id: number, bytes: number): void {
    const u = this.unacked
    u.bytes += bytes
    u.id = id
    if (u.bytes >= this.settings.windowBytes / 2) return this.sendAck()
    if (u.scheduled) return
    u.scheduled = true
    setImmediate(() => this.sendAck())
  }

  private sendAck (): void {
    const u = this.unacked
    u.scheduled = false
    if (u.bytes === 0 || this.reason) return
    this.send({ t: 'ack', id: u.id, bytes: u.bytes })
    this.acksSent++
    u.bytes = 0
  }

  private onEnd ({ id, seq }: FrameOf<'end'>): void {
    const p = this.waiting(id, 'end')
    if (!p) return
    const s = p.stream
    if (!s || seq !== s.seq || s.got !== s.size) {
      throw protocolError(`request ${id} ended after ${s?.got ?? 0} of ${s?.size ?? 0} bytes`)
    }
    this.settle(id, { body: s.body, bytes: s.size })
  }

  private fromWire (err: WireError): ChaacError {
    const code = Object.hasOwn(ERRNO_OF, err.code) ? err.code as ChaacCode : 'CHAAC_IO'
    return new ChaacError(code, `peer ${this.peerId}: ${err.message}`)
  }

  private async serve ({ id, op, body }: FrameOf<'req'>): Promise<void> {
    const ac = new AbortController()
    this.serving.set(id, ac)
    try {
      const handler = this.handlers.get(op)
      if (!handler) throw new ChaacError('CHAAC_NOT_SUPPORTED', `no handler for op ${op}`)
      const result = await handler(body, { link: this, op, signal: ac.signal })
      if (ac.signal.aborted) return
      if (result instanceof StreamReply) {
        if (result.data.length > MAX_STREAM_BYTES) {
          throw new ChaacError('CHAAC_TOO_BIG', `a streamed reply of ${result.data.length} bytes exceeds the ${MAX_STREAM_BYTES}-byte limit`)
        }
        this.send({ t: 'res', id, ok: true, body: result.body, size: result.data.length })
        await this.stream(id, result.data, ac.signal)
      } else {
        this.send({ t: 'res', id, ok: true, body: result })
      }
    } catch (err) {
      if (!ac.signal.aborted) this.replyError(id, op, err)
    } finally {
      this.serving.delete(id)
    }
  }

  private replyError (id: number, op: string, err: unknown): void {
    if (!(err instanceof ChaacError)) this.log.error({ peer: this.peerId, op, err }, 'a peer request handler failed')
    const wire: WireError = err instanceof ChaacError
      ? { code: err.code, message: err.message.slice(0, MAX_MESSAGE_CHARS) }
      : { code: 'CHAAC_IO', message: `${op} failed on peer ${this.localId}` }
    this.send({ t: 'res', id, ok: false, err: wire })
  }

  private async stream (id: number, data: Buffer, signal: AbortSignal): Promise<void> {
    let seq = 0
    for (let at = 0; at < data.length; at += this.settings.chunkBytes) {
      const chunk = data.subarray(at, at + this.settings.chunkBytes)
      await this.credit(chunk.length)
      if (signal.aborted) {
        this.release(chunk.length)
        return
      }
      this.send({ t: 'chunk', id, seq: seq++, data: chunk })
      this.peakBuffered = Math.max(this.peakBuffered, this.ws.bufferedAmount)
    }
    this.send({ t: 'end', id, seq })
  }

  // Waits until `bytes` more fit in the window; first come, first served, so
  // concurrent streams share the link.
  private credit (bytes: number): Promise<void> {
    if (this.reason) return Promise.reject(this.reason)
    return new Promise((resolve, reject) => {
      this.credits.push({ bytes, resolve, reject })
      this.grant()
    })
  }

  private grant (): void {
    for (let next = this.credits[0]; next && this.inFlight + next.bytes <= this.settings.windowBytes; next = this.credits[0]) {
      this.credits.shift()
      this.inFlight += next.bytes
      this.peakInFlight = Math.max(this.peakInFlight, this.inFlight)
      next.resolve()
    }
  }

  private release (bytes: number): void {
    this.inFlight -= bytes
    this.grant()
  }

  private probe (): void {
    if (this.probing) return
    this.probing = true
    this.ping().then(() => { this.probing = false }, (err: ChaacError) => {
      this.probing = false
      if (this.reason) return
      this.log.warn({ peer: this.peerId, err: err.message }, 'peer stopped answering pings; closing the link')
      this.shutdown(err, CLOSE.TIMEOUT)
    })
  }

  private shutdown (reason: ChaacError, code?: CloseCode): void {
    if (this.reason) return
    this.reason = reason
    clearInterval(this.keepalive)
    for (const p of this.pending.values()) {
      clearTimeout(p.timer)
      p.reject(reason)
    }
    this.pending.clear()
    for (const waiter of this.credits.splice(0)) waiter.reject(reason)
    for (const ac of this.serving.values()) ac.abort(reason)
    if (code !== undefined) closeSocket(this.ws, code)
    this.markClosed(reason)
  }
}
