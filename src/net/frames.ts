// The frames of the peer protocol and the checks every received frame passes
// before anything acts on it. Pure: frames in, bytes out, and back.
//
// A frame is a msgpack map with a type `t`. The handshake comes first
// (challenge, auth, welcome). Then: requests and responses matched by id, so
// many requests share one link; `chunk`/`end` carry the bytes of a streamed
// reply (a ball), `ack` hands the sender its credit back and `cancel` tells it
// the requester gave up; `ping`/`pong` measure the round trip. Fields a frame
// type does not know are ignored, so a later version can add some; a type not
// listed here is a protocol violation.
import { Packr, Unpackr } from 'msgpackr'
import { ChaacError } from '../errors.ts'

export const PROTOCOL_VERSION = 1
export const NONCE_BYTES = 32
/** An HMAC-SHA256. */
export const PROOF_BYTES = 32
/** Requests and responses carry metadata; ball bytes travel as chunks, so 1 MiB is plenty. */
export const DEFAULT_MAX_FRAME_BYTES = 1024 * 1024
/** The largest streamed reply: the largest ball. */
export const MAX_STREAM_BYTES = 64 * 1024 * 1024

export const MAX_PEER_ID_CHARS = 256
const MAX_OP_CHARS = 128
const MAX_CODE_CHARS = 64
export const MAX_MESSAGE_CHARS = 4096

export interface WireError { code: string, message: string }

export type Frame =
  | { t: 'challenge', v: number, peer: string, nonce: Buffer }
  | { t: 'auth', peer: string, nonce: Buffer, proof: Buffer }
  | { t: 'welcome', proof: Buffer }
  | { t: 'req', id: number, op: string, body?: unknown }
  /** `size`: the bytes of a streamed reply, sent next as chunks. */
  | { t: 'res', id: number, ok: true, body?: unknown, size?: number }
  | { t: 'res', id: number, ok: false, err: WireError }
  | { t: 'chunk', id: number, seq: number, data: Buffer }
  /** `seq`: how many chunks were sent. */
  | { t: 'end', id: number, seq: number }
  | { t: 'ack', id: number, bytes: number }
  | { t: 'cancel', id: number }
  | { t: 'ping', n: number }
  | { t: 'pong', n: number }

export type FrameType = Frame['t']
export type FrameOf<T extends FrameType> = Extract<Frame, { t: T }>

// No records and no structured clones: each frame decodes alone, and nothing a
// peer sends can define structures that outlive its frame.
const packr = new Packr({ useRecords: false })
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, structuredClone: false })

export function protocolError (message: string): ChaacError {
  return new ChaacError('CHAAC_PROTOCOL', message)
}

/** Encodes a frame; one larger than `maxBytes` would close the link at the peer, so it fails here. */
export function encodeFrame (frame: Frame, maxBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  let bytes: Buffer
  try {
    bytes = frame.t === 'chunk' ? encodeChunk(frame) : packr.pack(frame)
  } catch (err) {
    throw new ChaacError('CHAAC_INVALID', `cannot encode a ${frame.t} frame: ${(err as Error).message}`, { cause: err })
  }
  if (bytes.length > maxBytes) {
    throw new ChaacError('CHAAC_TOO_BIG', `a ${frame.t} frame of ${bytes.length} bytes exceeds the ${maxBytes}-byte limit`)
  }
  return bytes
}

const NO_BYTES = Buffer.alloc(0)

// A chunk is mostly its data, which msgpackr copies slowly: the frame is
// packed around an empty placeholder (the last field, a bin8 of length 0),
// which is then replaced by a bin32 header and the data, in one native copy.
function encodeChunk ({ id, seq, data }: FrameOf<'chunk'>): Buffer {
  const head = packr.pack({ t: 'chunk', id, seq, data: NO_BYTES })
  const bin = Buffer.allocUnsafe(5)
  bin[0] = 0xc6
  bin.writeUInt32BE(data.length, 1)
  return Buffer.concat([head.subarray(0, head.length - 2), bin, data])
}

/** Decodes and checks a received frame; anything malformed throws a CHAAC_PROTOCOL error. */
export function decodeFrame (bytes: Uint8Array, maxBytes = DEFAULT_MAX_FRAME_BYTES): Frame {
  if (bytes.length > maxBytes) throw protocolError(`a frame of ${bytes.length} bytes exceeds the ${maxBytes}-byte limit`)
  let raw: unknown
  try {
    raw = unpackr.unpack(bytes)
  } catch (err) {
    throw protocolError(`undecodable frame: ${err instanceof Error ? err.message.slice(0, 200) : 'not msgpack'}`)
  }
  if (typeof raw !== 'object' || raw === null || Object.getPrototypeOf(raw) !== Object.prototype) {
    throw protocolError('a frame must be a map')
  }
  const frame = checkFrame(raw)
  if (!frame) throw protocolError(`malformed ${describeType((raw as { t?: unknown }).t)} frame`)
  return frame
}

// Only own fields count, copied onto an object without a prototype: what the
// peer sent, nothing inherited.
const ownFields = (raw: object): Record<string, unknown> => Object.assign(Object.create(null) as Record<string, unknown>, raw)

function checkFrame (raw: object): Frame | undefined {
  const { t, v, peer, nonce, proof, id, op, body, ok, size, err, seq, data, bytes, n } = ownFields(raw)
  switch (t) {
    case 'challenge':
      return isCount(v) && isText(peer, MAX_PEER_ID_CHARS) && isBytes(nonce, NONCE_BYTES)
        ? { t, v, peer, nonce: asBuffer(nonce) }
        : undefined
    case 'auth':
      return isText(peer, MAX_PEER_ID_CHARS) && isBytes(nonce, NONCE_BYTES) && isBytes(proof, PROOF_BYTES)
        ? { t, peer, nonce: asBuffer(nonce), proof: asBuffer(proof) }
        : undefined
    case 'welcome':
      return isBytes(proof, PROOF_BYTES) ? { t, proof: asBuffer(proof) } : undefined
    case 'req':
      return isCount(id) && isText(op, MAX_OP_CHARS) ? { t, id, op, body } : undefined
    case 'res':
      return isCount(id) ? checkResponse(id, ok, body, size, err) : undefined
    case 'chunk':
      return isCount(id) && isCount(seq) && isBytes(data) && data.length > 0 ? { t, id, seq, data: asBuffer(data) } : undefined
    case 'end':
      return isCount(id) && isCount(seq) ? { t, id, seq } : undefined
    case 'ack':
      return isCount(id) && isCount(bytes) ? { t, id, bytes } : undefined
    case 'cancel':
      return isCount(id) ? { t, id } : undefined
    case 'ping':
    case 'pong':
      return isCount(n) ? { t, n } : undefined
    default:
      throw protocolError(`unknown frame type ${describeType(t)}`)
  }
}

function checkResponse (id: number, ok: unknown, body: unknown, size: unknown, err: unknown): Frame | undefined {
  if (ok === true) {
    if (size === undefined) return { t: 'res', id, ok, body }
    return isCount(size) && size <= MAX_STREAM_BYTES ? { t: 'res', id, ok, body, size } : undefined
  }
  if (ok !== false || typeof err !== 'object' || err === null) return
  const { code, message } = ownFields(err)
  if (!isText(code, MAX_CODE_CHARS) || typeof message !== 'string' || message.length > MAX_MESSAGE_CHARS) return
  return { t: 'res', id, ok, err: { code, message } }
}

function isCount (v: unknown): v is number {
  return Number.isSafeInteger(v) && (v as number) >= 0
}

/** A non-empty string of at most `maxChars`. */
export function isText (v: unknown, maxChars: number): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= maxChars
}

function isBytes (v: unknown, length?: number): v is Uint8Array {
  return v instanceof Uint8Array && (length === undefined || v.length === length)
}

// A view, not a copy: chunk data goes straight on into the caller's buffer.
function asBuffer (bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length)
}

// For messages only: a peer's value may be any shape, so it is never stringified as such.
function describeType (t: unknown): string {
  return typeof t === 'string' ? JSON.stringify(t.slice(0, 32)) : `(${typeof t})`
}
