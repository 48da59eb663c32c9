// What the data pool and its replicas say to each other over a peer link, and
// the checks on what a replica asks for. Pure: bodies in, checked values out.
//
//   replica -> pool   pool.subscribe            -> {seq}: changes after seq follow as pool.change
//                     pool.records {after}      -> {records: [[key, value]...], next}: a page of the snapshot
//                     pool.revalidate           -> {seq}: the replica is current once it applied seq
//                     pool.inline {ino}         -> {data, seq}: the bytes of a file kept inline, as of seq
//                     pool.pooled {id}          -> {data}: the bytes of a slice kept in the data pool
//                     pool.call {method, args}  -> {result, seq}: one change, made by the pool
//   pool -> replica   pool.change {seq, origin, ops}: one stored batch, in order
import { ChaacError } from '../errors.ts'
import { bad, ball, bytes, count, flag, list, nullable, optional, shape, text, time, type Parse } from '../net/checks.ts'
import type { BatchOp } from './batch-writer.ts'
import type { Pool } from './pool.ts'
import { isPolicy } from '../placement/types.ts'

export const OP = {
  subscribe: 'pool.subscribe',
  records: 'pool.records',
  revalidate: 'pool.revalidate',
  inline: 'pool.inline',
  pooled: 'pool.pooled',
  call: 'pool.call',
  change: 'pool.change'
} as const

/** Links of the cluster carry whole inode records; one of a 1 TiB file lists 256Ki balls. */
export const CLUSTER_MAX_FRAME_BYTES = 16 * 1024 * 1024
/** Bytes of records per snapshot page: well inside a frame. */
export const PAGE_BYTES = 1024 * 1024

export interface Change { seq: number, origin: string, ops: BatchOp[] }
export interface CallReply { result: unknown, seq: number }

const ballOrHole: Parse<string | null> = nullable(ball)
const slice = shape({ at: count, len: count, ball, pooled: optional(flag) })
const context = shape({
  ufCPU: time,
  ufMemory: time,
  ufFileSystem: time,
  ufNet: time,
  memFree: time,
  diskFree: time,
  netBytesPerSec: time,
  sampledAt: time,
  containers: optional(shape({
    running: count, cpuCores: time, memoryBytes: time, list: optional(list(shape({ id: text, name: text, cpu: time, memory: time })))
  }))
})
const binReport = shape({ id: text, level: text, dir: text, capacity: count, used: count, balls: count })

const policyName: Parse<string> = (v, what) => {
  if (!isPolicy(v)) throw bad(what, 'an allocator policy')
  return v
}

// The changes a replica may ask the pool to make, with the checks of their arguments.
const CALLS: Partial<Record<keyof Pool, Array<Parse<unknown>>>> = {
  create: [count, text, shape({ mode: count, uid: count, gid: count, rdev: optional(count), target: optional(text) })],
  link: [count, count, text],
  unlink: [count, text],
  rmdir: [count, text],
  rename: [count, text, count, text],
  setattr: [count, shape({ mode: optional(count), uid: optional(count), gid: optional(count), atime: optional(time), mtime: optional(time) })],
  commitFile: [count, shape({
    size: count,
    balls: list(ballOrHole),
    slices: optional(list(nullable(list(slice)))),
    chunkSize: count,
    mtime: optional(time),
    inline: optional(bytes),
    pooled: optional(list(shape({ id: ball, data: bytes })))
  }),
    shape({ sync: optional(flag), upload: optional(flag) })],
  purge: [count],
  recordCopy: [text, ball, count, flag, optional(shape({ cached: optional(flag), writer: optional(text) }))],
  releaseCopy: [text, ball],
  pinBalls: [text, list(ball)],
  unpinBalls: [text, list(ball)],
  markInCloud: [ball, count, optional(flag)],
  dropUpload: [ball],
  dropBall: [ball],
  markGarbage: [ball, time],
  keepBall: [ball],
  markNotInCloud: [ball],
  reportAgent: [shape({
    id: text, peer: nullable(text), http: nullable(text), bins: list(binReport), context: nullable(context), startedAt: optional(time),
    counters: optional(shape({ at: time, localHit: count, remoteHit: count, miss: count, skip: count, bytesRead: count, bytesWritten: count }))
  })],
  changePolicy: [policyName, text],
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
  if ((method === 'pinBalls' || method === 'unpinBalls') && checked[0] !== from) {
    throw new ChaacError('CHAAC_NOT_PERMITTED', `agent ${from} may only pin balls for itself`)
  }
  return { method: method as keyof Pool, args: checked }
}

export const parseAfter = (body: unknown): string => shape({ after: text })(body, 'pool.records').after
export const parseIno = (body: unknown): number => shape({ ino: count })(body, 'pool.inline').ino
export const parseBallId = (body: unknown): string => shape({ id: ball })(body, 'pool.pooled').id
export const parsePooled = (body: unknown): Buffer => shape({ data: bytes })(body, 'pool.pooled reply').data
export const parseInline = (body: unknown): { data: Buffer, seq: number } => shape({ data: bytes, seq: count })(body, 'pool.inline reply')

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
