// What the rest of the agent sees of the data pool, whether it runs here
// (DataPool, the authority, in LevelDB) or on another agent (PoolReplica, a
// copy in memory fed by the pool's change stream). Readers answer from memory
// at once; changes resolve once the pool has stored them and, on a replica,
// once the replica has seen them.
import type { EventEmitter } from 'node:events'
import type { BatchOp } from './batch-writer.ts'
import type { AgentRecord, AgentReport, BallRecord, Inode } from './schema.ts'
import type { ClusterSettings } from './settings.ts'
import type { Slice } from './slices.ts'

export interface NewNode {
  mode: number
  uid: number
  gid: number
  rdev?: number
  target?: string
}

export interface FileContent {
  size: number
  balls: Array<string | null>
  /** Slices over each chunk's ball, by chunk index (see meta/slices.ts). */
  slices?: Array<Slice[] | null>
  chunkSize: number
  /** Set when the content changed by writes (not by an explicit utimens). */
  mtime?: number
  /** A small file's bytes, kept inline in the data pool instead of balls (then `balls` is empty). */
  inline?: Buffer
  /** The bytes of pooled slices this commit names that the data pool may not hold yet. */
  pooled?: Array<{ id: string, data: Buffer }>
}

/** How a bin holds a copy it reports: `cached` (droppable while a durable copy is left), for `writer` (not garbage until it commits). */
export interface CopyOptions {
  cached?: boolean
  writer?: string
}

export type AttrPatch = Partial<Pick<Inode, 'mode' | 'uid' | 'gid' | 'atime' | 'mtime'>>

export interface PoolEvents {
  /** Balls were queued for upload to the cloud tier. */
  queued: []
  /** A batch of records was stored: its number, its operations and the agent whose change it was. */
  change: [seq: number, ops: BatchOp[], origin: string]
  /** A replica took a fresh snapshot: anything may have changed. */
  synced: []
}

export interface Pool extends EventEmitter<PoolEvents> {
  readonly balls: ReadonlyMap<string, BallRecord>
  readonly uploads: ReadonlySet<string>
  readonly garbage: ReadonlyMap<string, number>
  readonly agents: ReadonlyMap<string, AgentRecord>
  readonly inodeCount: number
  /** False while a replica is cut off from the data pool: its namespace answers EIO then. */
  readonly reachable: boolean

  get: (ino: number) => Inode | undefined
  lookup: (parent: number, name: string) => number | undefined
  entries: (dir: number) => ReadonlyMap<string, number>
  parent: (dir: number) => number | undefined
  orphans: () => Inode[]
  isReferenced: (ball: string) => boolean
  inCloud: (ball: string) => boolean
  inUse: (ball: string) => boolean

  /** Resolves once every change stored before the call is visible here (close-to-open). */
  revalidate: () => Promise<void>
  create: (parent: number, name: string, spec: NewNode, opts?: { lazy?: boolean }) => Promise<Inode>
  flushLazy: () => Promise<void>
  link: (ino: number, parent: number, name: string) => Promise<Inode>
  unlink: (parent: number, name: string) => Promise<Inode>
  rmdir: (parent: number, name: string) => Promise<void>
  rename: (srcParent: number, srcName: string, dstParent: number, dstName: string) => Promise<Inode | undefined>
  setattr: (ino: number, patch: AttrPatch) => Promise<Inode>
  commitFile: (ino: number, content: FileContent, opts?: { sync?: boolean, upload?: boolean }) => Promise<string[]>
  /** The bytes of a file kept inline, checked against the inode's hash of them. */
  readInline: (ino: number) => Promise<Buffer>
  /** The bytes of a slice kept in the data pool (the reader checks them against the id). */
  readPooled: (id: string) => Promise<Buffer>
  purge: (ino: number) => Promise<string[]>
  recordCopy: (binId: string, id: string, bytes: number, present: boolean, opts?: CopyOptions) => Promise<void>
  releaseCopy: (binId: string, id: string) => Promise<boolean>
  pinBalls: (agentId: string, ids: string[]) => Promise<string[][]>
  unpinBalls: (agentId: string, ids: string[]) => Promise<void>
  markInCloud: (id: string, bytes: number, garbage?: boolean) => Promise<void>
  dropUpload: (id: string) => Promise<void>
  dropBall: (id: string) => Promise<void>
  markGarbage: (id: string, at: number) => Promise<void>
  keepBall: (id: string) => Promise<void>
  markNotInCloud: (id: string) => Promise<void>
  reportAgent: (report: AgentReport) => Promise<void>
  /** The cluster's settings as stored (undefined when the engine holds none). */
  readonly settings?: ClusterSettings
  /** Changes the stored settings' allocator policy; undefined when the engine holds no settings. */
  changePolicy: (policy: string, by: string) => Promise<ClusterSettings | undefined>
  sync: () => Promise<void>
  close: () => Promise<void>
}
