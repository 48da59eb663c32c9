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
