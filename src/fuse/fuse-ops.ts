// fuse-native operations -> Filesystem calls. Translation only: arguments in,
// errno out. Every callback is answered exactly once, through `answer`.
import { constants } from 'node:os'
import type Fuse from '../../native/fuse/index.cjs'
import { ChaacError } from '../errors.ts'
import type { Filesystem } from '../fs/filesystem.ts'

export interface OpLog {
  error: (obj: object, msg: string) => void
  debug: (obj: object, msg: string) => void
}

const EIO = -constants.errno.EIO

/** The negative errno for an error: ChaacErrors map by their code; anything else is EIO and logged. */
export function errnoOf (err: unknown, log: OpLog, op: string): number {
  if (err instanceof ChaacError) {
    log.debug({ op, code: err.code, msg: err.message }, 'operation failed')
    return -(constants.errno[err.errno as keyof typeof constants.errno] ?? constants.errno.EIO)
  }
  log.error({ op, err }, 'unexpected error in a file operation')
  return EIO
}

// Settles a callback with the work's result, or with the errno of its failure.
function answer<T> (log: OpLog, op: string, work: () => T | Promise<T>, reply: (err: number, value?: T) => void): void {
  let result: T | Promise<T>
  try {
    result = work()
  } catch (err) {
    reply(errnoOf(err, log, op))
    return
  }
  if (!(result instanceof Promise)) {
    reply(0, result)
    return
  }
  result.then((value) => reply(0, value), (err) => reply(errnoOf(err, log, op)))
}

export function fuseOps (fs: Filesystem, log: OpLog): Fuse.Operations {
  const done = (cb: Fuse.Callback) => (err: number) => cb(err)
  const bytes = (cb: (n: number) => void) => (err: number, n?: number) => cb(err !== 0 ? err : n ?? 0)
  return {
    init: (cb) => cb(0),
    access: (path, _mode, cb) => answer(log, 'access', () => fs.access(path), done(cb)),
    statfs: (_path, cb) => answer(log, 'statfs', () => fs.statfs(), cb),
    getattr: (path, cb) => answer(log, 'getattr', () => fs.getattr(path), cb),
    fgetattr: (_path, fd, cb) => answer(log, 'fgetattr', () => fs.fgetattr(fd), cb),
    flush: (_path, fd, cb) => answer(log, 'flush', async () => await fs.flush(fd), done(cb)),
    fsync: (_path, _datasync, fd, cb) => answer(log, 'fsync', async () => await fs.fsync(fd), done(cb)),
    fsyncdir: (_path, _datasync, _fd, cb) => cb(0),
    readdir: (path, cb) => answer(log, 'readdir', () => fs.readdir(path), (err, v) => cb(err, v?.names, v?.stats)),
    opendir: (path, _flags, cb) => answer(log, 'opendir', () => { fs.access(path); return 0 }, cb),
    releasedir: (_path, _fd, cb) => cb(0),
    truncate: (path, size, cb) => answer(log, 'truncate', async () => await fs.truncate(path, size), done(cb)),
    ftruncate: (_path, fd, size, cb) => answer(log, 'ftruncate', async () => await fs.ftruncate(fd, size), done(cb)),
    utimens: (path, atime, mtime, cb) =>
      answer(log, 'utimens', async () => await fs.utimens(path, atime ?? undefined, mtime ?? undefined), done(cb)),
    readlink: (path, cb) => answer(log, 'readlink', () => fs.readlink(path), cb),
    chown: (path, uid, gid, cb) => answer(log, 'chown', async () => await fs.chown(path, uid, gid), done(cb)),
    chmod: (path, mode, cb) => answer(log, 'chmod', async () => await fs.chmod(path, mode), done(cb)),
    mknod: (path, mode, dev, uid, gid, cb) =>
      answer(log, 'mknod', async () => await fs.mknod(path, mode, dev, { uid, gid }), done(cb)),
    open: (path, flags, cb) => answer(log, 'open', async () => await fs.openFile(path, flags), cb),
    create: (path, mode, uid, gid, cb) =>
      answer(log, 'create', async () => await fs.create(path, mode, 0, { uid, gid }), cb),
    read: (_path, fd, buf, len, pos, cb) =>
      answer(log, 'read', async () => await fs.read(fd, buf, len, pos), bytes(cb)),
    // The kernel's buffer is only lent for this call: Filesystem.write copies it before its first await.
    write: (_path, fd, buf, len, pos, cb) =>
      answer(log, 'write', async () => await fs.write(fd, buf.subarray(0, len), pos), bytes(cb)),
    release: (_path, fd, cb) => answer(log, 'release', async () => await fs.release(fd), done(cb)),
    unlink: (path, cb) => answer(log, 'unlink', async () => await fs.unlink(path), done(cb)),
    rename: (src, dest, cb) => answer(log, 'rename', async () => await fs.rename(src, dest), done(cb)),
    link: (src, dest, cb) => answer(log, 'link', async () => await fs.link(src, dest), done(cb)),
    symlink: (target, linkPath, uid, gid, cb) =>
      answer(log, 'symlink', async () => await fs.symlink(target, linkPath, { uid, gid }), done(cb)),
    mkdir: (path, mode, uid, gid, cb) => answer(log, 'mkdir', async () => await fs.mkdir(path, mode, { uid, gid }), done(cb)),
    rmdir: (path, cb) => answer(log, 'rmdir', async () => await fs.rmdir(path), done(cb))
  }
}
