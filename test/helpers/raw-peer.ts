// Peers that misbehave, for tests: a bare WebSocket client that speaks frames
// by hand (what a PeerLink would never send), and seeded garbage to send.
import { randomBytes } from 'node:crypto'
import { pack } from 'msgpackr'
import { WebSocket } from 'ws'
import { authProof } from '../../src/net/auth.ts'
import { NONCE_BYTES, PROOF_BYTES, decodeFrame, encodeFrame, type Frame } from '../../src/net/frames.ts'
import type { Rng } from '../../src/placement/rng.ts'
import { withDeadline } from './wait.ts'

const MiB = 1024 * 1024
// Liveness, not speed: under a full suite on two cores an agent may take seconds to accept or answer.
const RAW_DEADLINE_MS = 30_000

// A bare WebSocket client that speaks frames by hand, for what a PeerLink would never send.
export interface RawPeer {
  ws: WebSocket
  /** The close code, once closed. */
  closed: Promise<number>
  /** The next frame from the server, or undefined once the connection closed. */
  next: () => Promise<Frame | undefined>
}

export async function rawPeer (url: string): Promise<RawPeer> {
  const ws = new WebSocket(url, { perMessageDeflate: false })
  const queue: Frame[] = []
  let wake = (): void => {}
  let closeCode: number | undefined
  ws.on('message', (data: Buffer) => {
    queue.push(decodeFrame(data, 64 * MiB))
    wake()
  })
  ws.on('error', () => {})
  const closed = new Promise<number>((resolve) => ws.on('close', (code) => {
    closeCode = code
    resolve(code)
    wake()
  }))
  await withDeadline(new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
  }), RAW_DEADLINE_MS, 'a raw connection')
  const next = async (): Promise<Frame | undefined> => {
    const deadline = Date.now() + RAW_DEADLINE_MS
    while (queue.length === 0) {
      if (closeCode !== undefined) return undefined
      await withDeadline(new Promise<void>((resolve) => { wake = resolve }), deadline - Date.now(), 'a frame from the server')
    }
    return queue.shift()
  }
  return { ws, closed, next }
}

/** A raw connection that has passed the handshake by hand. */
export async function rawAuthenticated (url: string, secret: string): Promise<RawPeer> {
  const raw = await rawPeer(url)
  const challenge = await raw.next()
  if (challenge?.t !== 'challenge') throw new Error(`expected a challenge, got ${challenge?.t}`)
  const clientNonce = randomBytes(NONCE_BYTES)
  const tr = { serverId: challenge.peer, clientId: 'raw', serverNonce: challenge.nonce, clientNonce }
  raw.ws.send(encodeFrame({ t: 'auth', peer: 'raw', nonce: clientNonce, proof: authProof(secret, 'client', tr) }))
  const welcome = await raw.next()
  if (welcome?.t !== 'welcome') throw new Error(`expected the welcome, got ${welcome?.t}`)
  return raw
}

const TYPES = ['challenge', 'auth', 'welcome', 'req', 'res', 'chunk', 'end', 'ack', 'cancel', 'ping', 'pong', 'hello', '']
const FIELDS = ['t', 'id', 'op', 'body', 'ok', 'size', 'err', 'seq', 'data', 'bytes', 'n', 'v', 'peer', 'nonce', 'proof', '__proto__']

function bytesFrom (rng: Rng, n: number): Buffer {
  const b = Buffer.alloc(n)
  for (let i = 0; i < n; i++) b[i] = rng.below(256)
  return b
}

function pick<T> (rng: Rng, list: readonly T[]): T {
  return list[rng.below(list.length)]
}

function randomValue (rng: Rng, depth = 0): unknown {
  switch (rng.below(depth > 2 ? 6 : 8)) {
    case 0: return rng.below(2 ** 32) - 2 ** 31
    case 1: return (rng.float() - 0.5) * 2 ** 60
    case 2: return bytesFrom(rng, rng.below(12)).toString('latin1')
    case 3: return rng.below(2) === 0
    case 4: return null
    case 5: return bytesFrom(rng, rng.below(40))
    case 6: return Array.from({ length: rng.below(5) }, () => randomValue(rng, depth + 1))
    default: return Object.fromEntries(Array.from({ length: rng.below(6) }, () => [pick(rng, FIELDS), randomValue(rng, depth + 1)]))
  }
}

function validFrame (rng: Rng): Frame {
  const id = rng.below(1000)
  const frames: Frame[] = [
    { t: 'auth', peer: 'p', nonce: bytesFrom(rng, NONCE_BYTES), proof: bytesFrom(rng, PROOF_BYTES) },
    { t: 'req', id, op: 'echo', body: randomValue(rng) },
    { t: 'res', id, ok: true, body: randomValue(rng), size: rng.below(1000) },
    { t: 'res', id, ok: false, err: { code: 'CHAAC_IO', message: 'm' } },
    { t: 'chunk', id, seq: rng.below(3), data: bytesFrom(rng, 1 + rng.below(100)) },
    { t: 'end', id, seq: rng.below(3) },
    { t: 'ack', id, bytes: rng.below(100) },
    { t: 'pong', n: id }
  ]
  return pick(rng, frames)
}

// Well-formed, and harmless once authenticated: a request names an op of `ops` or a made-up one.
function harmlessFrame (rng: Rng, ops: readonly string[]): Frame {
  const id = rng.below(1000)
  const op = ops.length > 0 && rng.below(2) === 0 ? pick(rng, ops) : bytesFrom(rng, 4).toString('hex')
  const frames: Frame[] = [
    { t: 'req', id, op, body: randomValue(rng) },
    { t: 'cancel', id },
    { t: 'ack', id, bytes: 0 },
    { t: 'ping', n: id }
  ]
  return pick(rng, frames)
}

/** One frame of garbage of a seeded kind: random or cut bytes, msgpack of the wrong shape, flipped bits, oversized, or well-formed (`ops` named). */
export function fuzzFrame (rng: Rng, maxFrameBytes: number, ops: readonly string[] = []): { kind: string, data: Buffer | string } {
  switch (rng.below(8)) {
    case 0: return { kind: 'random bytes', data: bytesFrom(rng, rng.below(300)) }
    case 1: {
      const whole = encodeFrame(validFrame(rng))
      return { kind: 'truncated frame', data: whole.subarray(0, rng.below(whole.length)) }
    }
    case 2: return { kind: 'msgpack of another shape', data: pack(randomValue(rng)) }
    case 3: {
      const fields = Object.fromEntries(Array.from({ length: rng.below(5) }, () => [pick(rng, FIELDS), randomValue(rng, 1)]))
      return { kind: 'known type, wrong fields', data: pack({ ...fields, t: pick(rng, TYPES) }) }
    }
    case 4: {
      const bytes = Buffer.from(encodeFrame(validFrame(rng)))
      for (let i = 1 + rng.below(3); i > 0; i--) bytes[rng.below(bytes.length)] ^= 1 << rng.below(8)
      return { kind: 'flipped bits', data: bytes }
    }
    case 5: return { kind: 'oversized', data: Buffer.alloc(maxFrameBytes + 1 + rng.below(4096)) }
    case 6: return { kind: 'well-formed', data: encodeFrame(harmlessFrame(rng, ops)) }
    default: return { kind: 'text message', data: bytesFrom(rng, rng.below(50)).toString('hex') }
  }
}

export async function inParallel<T> (items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await work(items[next++])
  }))
}

