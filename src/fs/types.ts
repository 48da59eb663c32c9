// What the filesystem answers with, as the FUSE layer and the API see it.

export interface Stat {
  ino: number
  mode: number
  uid: number
  gid: number
  nlink: number
  size: number
  rdev: number
  blksize: number
  blocks: number
  atime: number
  mtime: number
  ctime: number
}

export interface StatFs {
  bsize: number
  frsize: number
  blocks: number
  bfree: number
  bavail: number
  files: number
  ffree: number
  favail: number
  fsid: number
  flag: number
  namemax: number
}

export interface Caller { uid: number, gid: number }

export interface DirEntry { name: string, ino: number, mode: number }

/** A new handle, and whether the kernel may keep the pages it cached of the file. */
export interface Opened { fd: number, keepCache: boolean }

/** What a setattr changes; times in milliseconds. */
export interface AttrChanges { mode?: number, uid?: number, gid?: number, size?: number, atime?: number, mtime?: number }

/** One chunk of a read plan: its bytes are the data of a ball whose file is in a local bin. */
export interface PlanChunk {
  index: number
  id: string
  path: string
  headerLength: number
  blockSize: number
  /** Data bytes of the ball (the chunk's length). */
  size: number
  /** SHA-256 of each block of the ball, one after another. */
  hashes: Buffer
  /** Reads after which the reader reports the ball's reads at once (the store then promotes it); 0: whenever. */
  reportAt: number
}

/**
 * How a reader outside JS can serve a handle's reads (see
 * native/chaac-fuse/native-reads.c): valid while the open file's content
 * epoch is `epoch`.
 */
export interface ReadPlan {
  ino: number
  epoch: number
  size: number
  chunkSize: number
  /** Read without caching (cache skip): its reads feed no use counts. */
  skipCache: boolean
  chunks: PlanChunk[]
}
