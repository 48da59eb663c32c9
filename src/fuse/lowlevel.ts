// The native FUSE binding (native/chaac-fuse): libfuse 2.9's low-level API.
// Kernel requests arrive by inode number through one dispatch function; each
// is answered exactly once, possibly later, with one of the reply functions.
import { createRequire } from 'node:module'
import type { PlanChunk } from '../fs/types.ts'

/** Request kinds, as native/chaac-fuse numbers them. */
export const Op = {
  LOOKUP: 0,
  FORGET: 1,
  GETATTR: 2,
  SETATTR: 3,
  READLINK: 4,
  MKNOD: 5,
  MKDIR: 6,
  UNLINK: 7,
  RMDIR: 8,
  SYMLINK: 9,
  RENAME: 10,
  LINK: 11,
  OPEN: 12,
  READ: 13,
  WRITE: 14,
  FLUSH: 15,
  RELEASE: 16,
  FSYNC: 17,
  OPENDIR: 18,
  READDIR: 19,
  RELEASEDIR: 20,
  FSYNCDIR: 21,
  STATFS: 22,
  CREATE: 23,
  /** Not a request: the session ended (the chaac path was unmounted). */
  STOPPED: 24,
  /** Not a request: how often the binding's read threads read each ball lately (ids, counts). */
  BALL_READS: 25,
  /** Not a request: the kernel's FUSE_INIT went through; [major, minor, maxReadahead, flags, want, maxWrite]. */
  INIT: 26
} as const

export const OP_NAMES = Object.fromEntries(Object.entries(Op).map(([name, op]) => [op, name.toLowerCase()])) as Record<number, string>

/** Which values a setattr sets (FUSE_SET_ATTR_*). */
export const SetAttr = { MODE: 1, UID: 2, GID: 4, SIZE: 8, ATIME: 16, MTIME: 32, ATIME_NOW: 128, MTIME_NOW: 256 } as const

/** Positions in the Float64Array of a setattr's values. */
export const SA = { MODE: 0, UID: 1, GID: 2, SIZE: 3, ATIME: 4, MTIME: 5 } as const

declare const opaque: unique symbol
/** A kernel request waiting for its reply. */
export interface Req { readonly [opaque]: 'fuse_req' }
export interface SessionHandle { readonly [opaque]: 'session' }

/**
 * Called once per request: `op`, the request (null for FORGET and STOPPED), the
 * inode (the parent for ops that name an entry), then the op's own arguments.
 */
export type Dispatch = (op: number, req: Req | null, ino: number, ...args: any[]) => void

/**
 * Attributes for replies, times in milliseconds:
 * [ino, mode, nlink, uid, gid, rdev, size, blocks, atime, mtime, ctime, blksize].
 */
export type Attrs = Float64Array

/** The reply functions return 0, or a negative errno when the kernel no longer waits (interrupted). */
export interface Binding {
  mount: (mountpoint: string, mountOptions: string, sessionOptions: string, entryTimeout: number, attrTimeout: number, dispatch: Dispatch, busyPollMicroseconds: number) => SessionHandle
  /**
   * Serves the connection whose /dev/fuse descriptor `fd` of the keeper `keeperPid` holds:
   * copies it (pidfd_getfd), initialises libfuse with the kernel's saved INIT
   * ([major, minor, maxReadahead, flags]) and has the kernel send again the
   * requests the previous agent left unanswered. Throws, the mount untouched, when it cannot.
   */
  takeover: (keeperPid: number, fd: number, init: Float64Array, sessionOptions: string, entryTimeout: number, attrTimeout: number, dispatch: Dispatch, busyPollMicroseconds: number) => SessionHandle
  /** Stops reading requests, the session left open: the keeper keeps the connection for the next agent. */
  detach: (session: SessionHandle) => void
  /** Marks every descriptor of the process above 2 close-on-exec, so that the next child inherits only what it is given. 0 or a negative errno. */
  closeOnExec: () => number
  /** Requests the kernel sent again after a takeover, so far. */
  resent: (session: SessionHandle) => number
  /** The session's /dev/fuse descriptor (for the keeper). */
  sessionFd: (session: SessionHandle) => number
  /** Frees a session whose loop stopped, once every request was answered. */
  destroy: (session: SessionHandle) => void
  /** `errno` positive, or 0 for success of ops that answer no data. */
  replyErr: (req: Req, errno: number) => number
  replyEntry: (req: Req, attrs: Attrs) => number
  replyCreate: (req: Req, attrs: Attrs, fh: number, keepCache: boolean) => number
  replyAttr: (req: Req, attrs: Attrs) => number
  replyReadlink: (req: Req, target: string) => number
  /** Answers an open; with noFlush the kernel sends no FLUSH at the handle's closes (only its RELEASE). */
  replyOpen: (req: Req, fh: number, keepCache: boolean, noFlush: boolean) => number
  /** Answers an opendir: the kernel caches the listings read through it; with keepCache, those cached before serve it. */
  replyOpendir: (req: Req, fh: number, keepCache: boolean) => number
  replyBuf: (req: Req, data: Buffer, length: number) => number
  /** As replyBuf, the bytes copied into the kernel on a thread of libuv's pool; `data` must not change until it settles. */
  replyBufLater: (req: Req, data: Buffer, length: number) => Promise<number>
  replyWrite: (req: Req, count: number) => number
  /** [bsize, frsize, blocks, bfree, bavail, files, ffree, favail, fsid, flag, namemax] */
  replyStatfs: (req: Req, values: Float64Array) => number
  /** Packs as many entries as fit in `size` bytes; entry i resumes at firstOffset + i + 1. Returns how many went. */
  replyDirents: (req: Req, size: number, names: string[], inoModes: Float64Array, firstOffset: number) => number
  /** Makes the kernel drop the attributes it cached of an inode; with `pages`, its cached pages too. Returns 0 or a negative errno. */
  invalAttrs: (session: SessionHandle, ino: number, pages: boolean) => number
  /** Sends one datagram to a unix socket ('@name': the abstract namespace), as sd_notify does. Returns 0 or a negative errno. */
  notify: (path: string, message: string) => number
  /** Reads of the handle are served by the binding's read threads from now on (native-reads.c), until a change drops the plan. */
  setReadPlan: (session: SessionHandle, fh: number, ino: number, fileSize: number, chunkSize: number, skipCache: boolean, chunks: PlanChunk[]) => void
  /** Reads of the inode's handles go to JS from now on. */
  dropReadPlans: (session: SessionHandle, ino: number) => void
  /** [reads served by the read threads, ball reads (local cache hits), bytes, reads handed to JS, blocks verified] */
  readStats: (session: SessionHandle) => Float64Array
  /** Bytes asked to read and written per requesting process since the last call: [container's full id or "", read, written]. */
  pidIo: () => Array<[string, number, number]>
}

export const binding = createRequire(import.meta.url)('../../native/chaac-fuse/build/Release/chaac_fuse.node') as Binding
