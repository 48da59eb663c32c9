// What the data pool and its replicas say to each other over a peer link, and
// the checks on what a replica asks for. Pure: bodies in, checked values out.
//
//   replica -> pool   pool.subscribe            -> {seq}: changes after seq follow as pool.change
//                     pool.records {after}      -> {records: [[key, value]...], next}: a page of the snapshot
//                     pool.revalidate           -> {seq}: the replica is current once it applied seq
//                     pool.call {method, args}  -> {result, seq}: one change, made by the pool
//   pool -> replica   pool.change {seq, origin, ops}: one stored batch, in order
import { ChaacError } from '../errors.ts'
import type { BatchOp } from './batch-writer.ts'
import type { Pool } from './pool.ts'

export const OP = {
  subscribe: 'pool.subscribe',
  records: 'pool.records',
  revalidate: 'pool.revalidate',
  call: 'pool.call',
  change: 'pool.change'
} as const

/** Links of the cluster carry whole inode records; one of a 1 TiB file lists 256Ki balls. */
export const CLUSTER_MAX_FRAME_BYTES = 16 * 1024 * 1024
/** Bytes of records per snapshot page: well inside a frame. */
export const PAGE_BYTES = 1024 * 1024

export interface Change { seq: number, origin: string, ops: BatchOp[] }
export interface CallReply { result: unknown, seq: number }

type Parse<T> = (v: unknown, what: string) => T

const bad = (what: string, expected: string): ChaacError => new ChaacError('CHAAC_INVALID', `${what} must be ${expected}`)

const count: Parse<number> = (v, what) => {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw bad(what, 'a whole number')
  return v as number
}
const time: Parse<number> = (v, what) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(what, 'a number')
  return v
}
const text: Parse<string> = (v, what) => {
  if (typeof v !== 'string') throw bad(what, 'a string')
  return v
}
const flag: Parse<boolean> = (v, what) => {
  if (typeof v !== 'boolean') throw bad(what, 'true or false')
  return v
}
const ball: Parse<string> = (v, what) => {
  if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) throw bad(what, 'a ball id')
  return v
}
const bytes: Parse<Buffer> = (v, what) => {
  if (!(v instanceof Uint8Array)) throw bad(what, 'bytes')
  return Buffer.from(v.buffer, v.byteOffset, v.length)
}
const optional = <T>(p: Parse<T>): Parse<T | undefined> => (v, what) => v === undefined || v === null ? undefined : p(v, what)
const nullable = <T>(p: Parse<T>): Parse<T | null> => (v, what) => v === null ? null : p(v, what)
const list = <T>(p: Parse<T>): Parse<T[]> => (v, what) => {
  if (!Array.isArray(v)) throw bad(what, 'a list')
  return v.map((x, i) => p(x, `${what}[${i}]`))
}

/** Only the named fields, each checked, on a fresh object: nothing else a peer sent gets through. */
function shape<T extends object> (fields: { [K in keyof T]-?: Parse<T[K]> }): Parse<T> {
  return (v, what) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(what, 'a map')
    const out: Record<string, unknown> = {}
    for (const [key, parse] of Object.entries(fields) as Array<[string, Parse<unknown>]>) {
      const value = parse(Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined, `${what}.${key}`)
      if (value !== undefined) out[key] = value
    }
    return out as T
  }
}

const ballOrHole: Parse<string | null> = nullable(ball)
const context = shape({
  ufCPU: time, ufMemory: time, ufFileSystem: time, ufNet: time, memFree: time, diskFree: time, netBytesPerSec: time, sampledAt: time
})
const binReport = shape({ id: text, level: text, dir: text, capacity: count, used: count, balls: count })

// The changes a replica may ask the pool to make, with the checks of their arguments.
const CALLS: Partial<Record<keyof Pool, Array<Parse<unknown>>>> = {
  create: [count, text, shape({ mode: count, uid: count, gid: count, rdev: optional(count), target: optional(text) })],
  link: [count, count, text],
  unlink: [count, text],
  rmdir: [count, text],
  rename: [count, text, count, text],
  setattr: [count, shape({ mode: optional(count), uid: optional(count), gid: optional(count), atime: optional(time), mtime: optional(time) })],
  commitFile: [count, shape({ size: count, balls: list(ballOrHole), chunkSize: count, mtime: optional(time) }),
    shape({ sync: optional(flag), upload: optional(flag) })],
  purge: [count],
  recordCopy: [text, ball, count, flag],
  markInCloud: [ball, count, optional(flag)],
  dropUpload: [ball],
  dropBall: [ball],
  markGarbage: [ball, time],
  keepBall: [ball],
  markNotInCloud: [ball],
  reportAgent: [shape({ id: text, peer: nullable(text), http: nullable(text), bins: list(binReport), context: nullable(context) })],
  sync: []
}

export interface Call { method: keyof Pool, args: unknown[] }

/** A replica's pool.call from agent `from`: an allowed change with checked arguments. */
export function parseCall (body: unknown, from: string): Call {
  const { method, args } = shape({ method: text, args: list((v) => v) })(body, 'pool.call')
  const parsers = Object.hasOwn(CALLS, method) ? CALLS[method as keyof Pool] : undefined
  if (!parsers) throw new ChaacError('CHAAC_NOT_SUPPORTED', `pool.call: ${method} is not a change a replica may ask for`)
  if (args.length > parsers.length) throw bad(`${method}'s arguments`, `at most ${parsers.length}`)
  const checked = parsers.map((parse, i) => parse(args[i], `${method} argument ${i + 1}`))
  if (method === 'reportAgent' && (checked[0] as { id: string }).id !== from) {
    throw new ChaacError('CHAAC_NOT_PERMITTED', `agent ${from} may only report itself`)
  }
  return { method: method as keyof Pool, args: checked }
}

export const parseAfter = (body: unknown): string => shape({ after: text })(body, 'pool.records').after

const op: Parse<BatchOp> = (v, what) => {
  const { type, key, value } = shape({ type: text, key: text, value: optional(bytes) })(v, what)
  if (type === 'put' && value !== undefined) return { type, key, value }
  if (type === 'del') return { type, key }
  throw bad(what, 'a put with a value or a del')
}

export const parseChange: (body: unknown) => Change = (body) => shape({ seq: count, origin: text, ops: list(op) })(body, 'pool.change')
export const parseSeq = (body: unknown): number => shape({ seq: count })(body, 'reply').seq
export const parseCallReply = (body: unknown): CallReply => shape({ result: (v) => v, seq: count })(body, 'pool.call reply')
export const parsePage: (body: unknown) => { records: Array<[string, Buffer]>, next: string | null } =
  (body) => shape({
    records: list((v, what) => {
      if (!Array.isArray(v) || v.length !== 2) throw bad(what, 'a key and a value')
      return [text(v[0], what), bytes(v[1], what)] as [string, Buffer]
    }),
    next: nullable(text)
  })(body, 'pool.records reply')
