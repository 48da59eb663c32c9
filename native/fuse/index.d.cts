// Types for native/fuse/index.cjs (Chaac's fork of fuse-native 2.2.6, high-level libfuse 2.9 API).
//
// Conventions for every operation:
// - Callback status `err` is 0 on success or a negative errno (Fuse.ENOENT, ...). It must be
//   a number: anything else throws in the binding and leaves the FUSE request hanging.
// - `path` is "" when libfuse has no path for the node: an open file that was unlinked while
//   mounted with hardRemove (read, write, flush, release, fsync, fgetattr, ftruncate; and
//   readdir/releasedir/fsyncdir for a removed directory). Use `fd` there.
// - `fd` is the handle the op returned from open/create/opendir (an integer 1..2^31-1; 0 means
//   none was returned).
// - Times are milliseconds since the epoch.

declare namespace Fuse {
  type Callback = (err: number) => void

  interface Stat {
    mode: number
    uid?: number
    gid?: number
    size?: number
    dev?: number
    nlink?: number
    /** Sent to the kernel as uint32. Only used by the kernel with the useIno option. */
    ino?: number
    rdev?: number
    blksize?: number
    blocks?: number
    /** Date or milliseconds since the epoch; missing means now. */
    atime?: Date | number
    mtime?: Date | number
    ctime?: Date | number
  }

  interface Statfs {
    bsize?: number
    frsize?: number
    blocks?: number
    bfree?: number
    bavail?: number
    files?: number
    ffree?: number
    favail?: number
    fsid?: number
    flag?: number
    namemax?: number
  }

  interface Operations {
    init?(cb: Callback): void
    error?(cb: Callback): void
    access?(path: string, mode: number, cb: Callback): void
    statfs?(path: string, cb: (err: number, statfs?: Statfs) => void): void
    getattr?(path: string, cb: (err: number, stat?: Stat) => void): void
    /** Attributes of an open file (fstat, and the kernel's size checks while reading). */
    fgetattr?(path: string, fd: number, cb: (err: number, stat?: Stat) => void): void
    flush?(path: string, fd: number, cb: Callback): void
    fsync?(path: string, datasync: number, fd: number, cb: Callback): void
    fsyncdir?(path: string, datasync: number, fd: number, cb: Callback): void
    /** `stats`, when given, must be as long as `names`. */
    readdir?(path: string, cb: (err: number, names?: string[], stats?: Stat[]) => void): void
    truncate?(path: string, size: number, cb: Callback): void
    ftruncate?(path: string, fd: number, size: number, cb: Callback): void
    /**
     * Set times. UTIME_NOW already arrives as the current time; null means UTIME_OMIT:
     * leave that time unchanged (e.g. `touch -a` sends mtime null).
     */
    utimens?(path: string, atime: number | null, mtime: number | null, cb: Callback): void
    readlink?(path: string, cb: (err: number, linkname?: string) => void): void
    /** uid or gid -1: leave it unchanged. */
    chown?(path: string, uid: number, gid: number, cb: Callback): void
    chmod?(path: string, mode: number, cb: Callback): void
    /** uid/gid: the calling process's (fs)uid and gid, for the new node's owner. */
    mknod?(path: string, mode: number, dev: number, uid: number, gid: number, cb: Callback): void
    setxattr?(path: string, name: string, value: Buffer, position: number, flags: number, cb: Callback): void
    /** Answer with the value, or err Fuse.ENODATA / a missing value when there is none. */
    getxattr?(path: string, name: string, position: number, cb: (err: number, value?: Buffer | null) => void): void
    listxattr?(path: string, cb: (err: number, list?: string[]) => void): void
    removexattr?(path: string, name: string, cb: Callback): void
    open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void
    opendir?(path: string, flags: number, cb: (err: number, fd?: number) => void): void
    /** Answer with the number of bytes read into `buf` (0 at EOF), or a negative errno. */
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void
    /** Answer with the number of bytes written (normally len), or a negative errno. */
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (bytesOrErr: number) => void): void
    release?(path: string, fd: number, cb: Callback): void
    releasedir?(path: string, fd: number, cb: Callback): void
    /** uid/gid: the calling process's (fs)uid and gid, for the new file's owner. */
    create?(path: string, mode: number, uid: number, gid: number, cb: (err: number, fd?: number) => void): void
    unlink?(path: string, cb: Callback): void
    rename?(src: string, dest: string, cb: Callback): void
    /** Hard link: `dest` becomes a new name of the existing `src`. */
    link?(src: string, dest: string, cb: Callback): void
    /** `linkPath` is the symlink to create, `target` its content. uid/gid as in create. */
    symlink?(target: string, linkPath: string, uid: number, gid: number, cb: Callback): void
    /** uid/gid as in create. */
    mkdir?(path: string, mode: number, uid: number, gid: number, cb: Callback): void
    rmdir?(path: string, cb: Callback): void
  }

  type OperationName = Exclude<keyof Operations, 'init' | 'error'>

  interface Options {
    /**
     * Milliseconds before an unanswered op is answered with ETIMEDOUT (default 15000; false: never).
     * Per op: { default?: ms, read?: ms | false, ... }.
     */
    timeout?: number | false | ({ default?: number } & { [op in OperationName]?: number | false })
    /** Unmount a stale (ENOTCONN) mount at mnt before mounting. */
    force?: boolean
    /** Create the mount point if it does not exist. */
    mkdir?: boolean
    debug?: boolean
    allowOther?: boolean
    allowRoot?: boolean
    autoUnmount?: boolean
    defaultPermissions?: boolean
    blkdev?: boolean
    blksize?: number
    maxRead?: number
    fd?: number
    userId?: number
    fsname?: string
    subtype?: string
    kernelCache?: boolean
    autoCache?: boolean
    /** Written as is into `umask=`, which libfuse reads as octal: pass e.g. '022'. */
    umask?: number | string
    uid?: number
    gid?: number
    /** Seconds; 0 is passed on (no caching). */
    entryTimeout?: number
    attrTimeout?: number
    acAttrTimeout?: number
    negativeTimeout?: number
    noforget?: boolean
    remember?: number
    modules?: string
    /** big_writes: write requests up to maxWrite (default 128 KiB) instead of 4 KiB. */
    bigWrites?: boolean
    maxWrite?: number
    maxReadahead?: number
    /** use_ino: the kernel uses Stat.ino from getattr. */
    useIno?: boolean
    /** readdir_ino: fill in inode numbers of readdir entries from libfuse's node table. */
    readdirIno?: boolean
    /** hard_remove: unlink open files at once (no .fuse_hidden files); their ops get path "". */
    hardRemove?: boolean
    /** Appended verbatim to the -o option list, e.g. ['max_background=64']. */
    extraOptions?: string[]
    /** macOS only. */
    displayFolder?: boolean
    name?: string
  }
}

declare class Fuse {
  constructor (mnt: string, ops: Fuse.Operations, opts?: Fuse.Options)
  /** Absolute path of the mount point. */
  readonly mnt: string
  readonly opts: Fuse.Options
  readonly ops: Fuse.Operations
  /** Mounts; cb runs once the kernel has sent FUSE init (the mount is usable). */
  mount (cb: (err?: Error | null) => void): void
  /** fusermount -uz, then releases the native side. err.unmountFailure is set if fusermount failed. */
  unmount (cb: (err?: (Error & { unmountFailure?: boolean }) | null) => void): void
  /** Negative errno for a code name ('ENOENT' -> -2); -1 (EPERM) if unknown. */
  errno (code: string): number
  /** Lazy unmount of any FUSE mount at mnt (fusermount -uz). */
  static unmount (mnt: string, cb: (err: Error | null) => void): void

  // Negative errno values (Linux).
  static readonly EPERM: number
  static readonly ENOENT: number
  static readonly ESRCH: number
  static readonly EINTR: number
  static readonly EIO: number
  static readonly ENXIO: number
  static readonly E2BIG: number
  static readonly ENOEXEC: number
  static readonly EBADF: number
  static readonly ECHILD: number
  static readonly EAGAIN: number
  static readonly ENOMEM: number
  static readonly EACCES: number
  static readonly EFAULT: number
  static readonly ENOTBLK: number
  static readonly EBUSY: number
  static readonly EEXIST: number
  static readonly EXDEV: number
  static readonly ENODEV: number
  static readonly ENOTDIR: number
  static readonly EISDIR: number
  static readonly EINVAL: number
  static readonly ENFILE: number
  static readonly EMFILE: number
  static readonly ENOTTY: number
  static readonly ETXTBSY: number
  static readonly EFBIG: number
  static readonly ENOSPC: number
  static readonly ESPIPE: number
  static readonly EROFS: number
  static readonly EMLINK: number
  static readonly EPIPE: number
  static readonly EDOM: number
  static readonly ERANGE: number
  static readonly EDEADLK: number
  static readonly ENAMETOOLONG: number
  static readonly ENOLCK: number
  static readonly ENOSYS: number
  static readonly ENOTEMPTY: number
  static readonly ELOOP: number
  static readonly EWOULDBLOCK: number
  static readonly ENOMSG: number
  static readonly EIDRM: number
  static readonly ECHRNG: number
  static readonly EL2NSYNC: number
  static readonly EL3HLT: number
  static readonly EL3RST: number
  static readonly ELNRNG: number
  static readonly EUNATCH: number
  static readonly ENOCSI: number
  static readonly EL2HLT: number
  static readonly EBADE: number
  static readonly EBADR: number
  static readonly EXFULL: number
  static readonly ENOANO: number
  static readonly EBADRQC: number
  static readonly EBADSLT: number
  static readonly EDEADLOCK: number
  static readonly EBFONT: number
  static readonly ENOSTR: number
  static readonly ENODATA: number
  static readonly ETIME: number
  static readonly ENOSR: number
  static readonly ENONET: number
  static readonly ENOPKG: number
  static readonly EREMOTE: number
  static readonly ENOLINK: number
  static readonly EADV: number
  static readonly ESRMNT: number
  static readonly ECOMM: number
  static readonly EPROTO: number
  static readonly EMULTIHOP: number
  static readonly EDOTDOT: number
  static readonly EBADMSG: number
  static readonly EOVERFLOW: number
  static readonly ENOTUNIQ: number
  static readonly EBADFD: number
  static readonly EREMCHG: number
  static readonly ELIBACC: number
  static readonly ELIBBAD: number
  static readonly ELIBSCN: number
  static readonly ELIBMAX: number
  static readonly ELIBEXEC: number
  static readonly EILSEQ: number
  static readonly ERESTART: number
  static readonly ESTRPIPE: number
  static readonly EUSERS: number
  static readonly ENOTSOCK: number
  static readonly EDESTADDRREQ: number
  static readonly EMSGSIZE: number
  static readonly EPROTOTYPE: number
  static readonly ENOPROTOOPT: number
  static readonly EPROTONOSUPPORT: number
  static readonly ESOCKTNOSUPPORT: number
  static readonly EOPNOTSUPP: number
  static readonly ENOTSUP: number
  static readonly EPFNOSUPPORT: number
  static readonly EAFNOSUPPORT: number
  static readonly EADDRINUSE: number
  static readonly EADDRNOTAVAIL: number
  static readonly ENETDOWN: number
  static readonly ENETUNREACH: number
  static readonly ENETRESET: number
  static readonly ECONNABORTED: number
  static readonly ECONNRESET: number
  static readonly ENOBUFS: number
  static readonly EISCONN: number
  static readonly ENOTCONN: number
  static readonly ESHUTDOWN: number
  static readonly ETOOMANYREFS: number
  static readonly ETIMEDOUT: number
  static readonly ECONNREFUSED: number
  static readonly EHOSTDOWN: number
  static readonly EHOSTUNREACH: number
  static readonly EALREADY: number
  static readonly EINPROGRESS: number
  static readonly ESTALE: number
  static readonly EUCLEAN: number
  static readonly ENOTNAM: number
  static readonly ENAVAIL: number
  static readonly EISNAM: number
  static readonly EREMOTEIO: number
  static readonly EDQUOT: number
  static readonly ENOMEDIUM: number
  static readonly EMEDIUMTYPE: number
}

export = Fuse
