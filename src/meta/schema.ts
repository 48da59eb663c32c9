// The data pool's records and how they are laid out in LevelDB.
//
//   i!<ino, 16 hex>              -> Inode
//   x!<ino, 16 hex>              -> the bytes of a small file kept inline
//                                   (not held in memory: read when opened)
//   y!<ball id>                  -> the bytes of a slice kept in the data pool
//                                   (not held in memory: read when needed)
//   s!<ino, 16 hex>!<chunk, 8 hex> -> the slices over one chunk of a file
//                                   (apart from its inode: a commit rewrites
//                                   only the lists of the chunks it changed)
//   d!<parent ino>!<name>        -> child ino (decimal)
//   b!<ball id>                  -> BallRecord
//   q!<ball id>                  -> '' (waiting for upload to the cloud tier)
//   g!<ball id>                  -> ms since the epoch when no file referenced
//                                   it any more (its cloud copy is garbage after
//                                   a grace period)
//   m!next-ino                   -> next inode number (decimal)
//   m!settings                   -> the cluster's settings (JSON, see settings.ts):
//                                   written once, by chaac format or the first agent
//   a!<agent id>                 -> AgentRecord (cluster membership, bins, context)
import { createHash } from 'node:crypto'
import { pack, unpack } from 'msgpackr'
import type { HostContext } from '../context/host-context.ts'
import type { Slice } from './slices.ts'

export const S_IFMT = 0o170000
export const S_IFDIR = 0o040000
export const S_IFREG = 0o100000
export const S_IFLNK = 0o120000

export interface Inode {
  ino: number
  mode: number
  uid: number
  gid: number
  nlink: number
  size: number
  rdev: number
  /** Milliseconds since the epoch. */
  atime: number
  mtime: number
  ctime: number
  /** Symbolic links: where the link points. */
  target?: string
  /** Regular files: ball ids by chunk index; null is a hole (zeros). */
  balls?: Array<string | null>
  /**
   * Regular files: slices laid over each chunk's ball, in the order written
   * (the newest wins); absent when no chunk has any.
   */
  slices?: Array<Slice[] | null>
  /** Regular files: the chunk size the ball list was cut with. */
  chunkSize?: number
  /**
   * Regular files kept inline (no balls): the SHA-256 (hex) of their bytes,
   * which are stored under the x! key. Reads check the bytes against it.
   */
  inline?: string
}

export interface BallRecord {
  bytes: number
  /** How many chunk slots of committed files name this ball. */
  refs: number
  /** The cloud tier holds a copy. */
  cloud: boolean
  /** The data pool holds the bytes (a small slice, under the y! key). */
  pooled?: boolean
  /** Ids of the bins that hold a copy. */
  bins: string[]
  /**
   * The bins of `bins` whose copy is a cache (a memory-level copy, or one
   * kept after a read): it may be dropped whenever a durable copy is left,
   * so it never counts towards the ball's replicas.
   */
  cached?: string[]
  /**
   * Agents writing a file that names the ball and not committed yet: no
   * copy is dropped as garbage while any is listed.
   */
  writers?: string[]
}

/** A bin as its agent reports it to the data pool. */
export interface BinReport {
  id: string
  level: string
  dir: string
  capacity: number
  used: number
  balls: number
  /** A data container's bin: the container (short id, name, the bin's directory inside it, made by the launcher). */
  container?: { id: string, name: string, path: string, launched: boolean }
  /** Since when the bin's container is stopped or gone (the agent's clock, ms since the epoch); absent while it runs. */
  offline?: number
  /** Being emptied before it is removed: no new balls go there. */
  draining?: boolean
}

/** Whether a bin can take new balls now (its container runs, and it is not being emptied). */
export const binUsable = (b: BinReport): boolean => b.offline === undefined && b.draining !== true

/** What an agent tells the data pool about itself every few seconds. */
export interface AgentReport {
  id: string
  /** Where peers reach it (ws://HOST:PORT); null when it does not listen. */
  peer: string | null
  /** Its HTTP API (HOST:PORT). */
  http: string | null
  bins: BinReport[]
  context: HostContext | null
  /** When the agent process started (ms since the epoch): a new value is a restart. */
  startedAt?: number
  /** Files no name refers to any more that the agent holds open: nobody deletes them while it is alive. */
  holds?: number[]
  /** Its counters since it started (absent from older agents): every agent records the whole cluster's history from them. */
  counters?: AgentCounters
}

/** An agent's cumulative counters since it started, as of `at` (its clock, ms since the epoch). */
export interface AgentCounters {
  at: number
  /** Ball reads by outcome. */
  localHit: number
  remoteHit: number
  miss: number
  skip: number
  /** Bytes read and written through the mount. */
  bytesRead: number
  bytesWritten: number
}

export interface AgentRecord extends AgentReport {
  /** When the data pool last heard from the agent, by the pool's clock (ms since the epoch). */
  seenAt: number
  /** When the data pool lost its link to the agent, by the pool's clock; absent while the agent is in touch. */
  goneAt?: number
}

export const ROOT_INO = 1

export const isDir = (n: Inode): boolean => (n.mode & S_IFMT) === S_IFDIR
export const isFile = (n: Inode): boolean => (n.mode & S_IFMT) === S_IFREG
export const isSymlink = (n: Inode): boolean => (n.mode & S_IFMT) === S_IFLNK

/** The bins holding a copy of the ball that is not a cache. */
export function durableCopies (rec: BallRecord): string[] {
  const cached = rec.cached
  return cached === undefined ? rec.bins : rec.bins.filter((b) => !cached.includes(b))
}

const hex = (ino: number): string => ino.toString(16).padStart(16, '0')
export const inodeKey = (ino: number): string => `i!${hex(ino)}`
export const inlineKey = (ino: number): string => `x!${hex(ino)}`
export const pooledKey = (id: string): string => `y!${id}`
export const sliceKey = (ino: number, chunk: number): string => `s!${hex(ino)}!${chunk.toString(16).padStart(8, '0')}`
export const parseSliceKey = (key: string): { ino: number, chunk: number } => ({ ino: parseInt(key.slice(2, 18), 16), chunk: parseInt(key.slice(19), 16) })
/** Bytes of files the data pool keeps for itself: replicas ask for them when they need them. */
export const isBytesKey = (key: string): boolean => key.startsWith('x!') || key.startsWith('y!')

/** The most bytes a file kept inline may have, whatever the agent's --inline-max. */
export const MAX_INLINE_BYTES = 64 * 1024

export const inlineHash = (data: Uint8Array): string => createHash('sha256').update(data).digest('hex')
export const direntKey = (parent: number, name: string): string => `d!${hex(parent)}!${name}`
export const isDirentKey = (key: string): boolean => key.startsWith('d!')
export const ballKey = (id: string): string => `b!${id}`
export const uploadKey = (id: string): string => `q!${id}`
export const garbageKey = (id: string): string => `g!${id}`
export const agentKey = (id: string): string => `a!${id}`
export const NEXT_INO_KEY = 'm!next-ino'
export const SETTINGS_KEY = 'm!settings'

/** The inode an inode record's key names; undefined for other keys. */
export function parseInodeKey (key: string): number | undefined {
  return key.startsWith('i!') ? parseInt(key.slice(2), 16) : undefined
}

export function parseDirentKey (key: string): { parent: number, name: string } {
  return { parent: parseInt(key.slice(2, 18), 16), name: key.slice(19) }
}

export const encode = (value: unknown): Buffer => pack(value)
export const decode = <T>(buf: Uint8Array): T => unpack(buf) as T

// A chunk's slice list is stored again at every commit that changes the
// chunk (a database's fsync), with up to a few hundred slices: packed as 41
// bytes each (offset, length, flags, the id's 32 bytes) after a byte
// MessagePack never uses, rather than as MessagePack maps of about 95. Lists
// stored as MessagePack (before this format, or with ids that are not
// SHA-256 hex) read as before.
const SLICES_FORMAT = 0xc1
const SLICE_BYTES = 41
const POOLED_FLAG = 1
const packedSlices = new WeakMap<Slice, Buffer>()

export function encodeSlices (list: readonly Slice[]): Buffer {
  const out = Buffer.allocUnsafe(1 + list.length * SLICE_BYTES)
  out[0] = SLICES_FORMAT
  for (const [i, s] of list.entries()) {
    // Slices are never changed in place, and a chunk keeps most of them from one commit to the next.
    let packed = packedSlices.get(s)
    if (packed === undefined) {
      if (!HEX_ID.test(s.ball) || !isU32(s.at) || !isU32(s.len)) return pack(list)
      packed = Buffer.allocUnsafe(SLICE_BYTES)
      packed.writeUInt32BE(s.at, 0)
      packed.writeUInt32BE(s.len, 4)
      packed[8] = s.pooled === true ? POOLED_FLAG : 0
      packed.write(s.ball, 9, 'hex')
      packedSlices.set(s, packed)
    }
    out.set(packed, 1 + i * SLICE_BYTES)
  }
  return out
}

export function decodeSlices (buf: Uint8Array): Slice[] {
  if (buf[0] !== SLICES_FORMAT) return unpack(buf) as Slice[]
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength)
  if ((b.length - 1) % SLICE_BYTES !== 0) throw new Error(`a slice list of ${b.length} bytes is not whole`)
  const list: Slice[] = []
  for (let pos = 1; pos < b.length; pos += SLICE_BYTES) {
    const s: Slice = { at: b.readUInt32BE(pos), len: b.readUInt32BE(pos + 4), ball: b.toString('hex', pos + 9, pos + SLICE_BYTES) }
    if ((b[pos + 8] & POOLED_FLAG) !== 0) s.pooled = true
    list.push(s)
  }
  return list
}

const HEX_ID = /^[0-9a-f]{64}$/
function isU32 (n: number): boolean {
  return Number.isInteger(n) && n >= 0 && n <= 0xffffffff
}
