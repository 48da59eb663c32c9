// POSIX semantics on top of the data pool and the ball store: path
// resolution, file handles, open-file state, unlink of open files, and
// garbage collection of balls no file references any more.
import { ChaacError, notFound } from '../errors.ts'
import type { DataPool } from '../meta/data-pool.ts'
import { ROOT_INO, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, isDir, isFile, isSymlink, type Inode } from '../meta/schema.ts'
import type { BallStore } from '../store/ball-store.ts'
import { OpenFile } from './open-file.ts'

const S_ISGID = 0o2000
const NAME_MAX = 255
const PATH_MAX = 4096
const O_ACCMODE = 3
const O_TRUNC = 0o1000

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

interface Handle { ino: number, flags: number }

export interface FilesystemOptions {
  pool: DataPool
  store: BallStore
  chunkSize: number
  /** Files larger than this are read without being cached (cache skip). */
  cacheSkipOver: number
  log: { warn: (obj: object, msg: string) => void, error: (obj: object, msg: string) => void }
}

export class Filesystem {
  private readonly pool: DataPool
  private readonly store: BallStore
  private readonly handles = new Map<number, Handle>()
  private readonly open = new Map<number, OpenFile>()
  private nextFd = 1

  constructor (private readonly opts: FilesystemOptions) {
    this.pool = opts.pool
    this.store = opts.store
  }

  // ---- attributes ----

  getattr (path: string): Stat {
    return this.stat(this.resolve(path))
  }

  fgetattr (fd: number): Stat {
    return this.stat(this.handle(fd).ino)
  }

  access (path: string): void {
    this.resolve(path)
  }

  async chmod (path: string, mode: number): Promise<void> {
    const node = this.node(this.resolve(path))
    await this.pool.setattr(node.ino, { mode: (node.mode & S_IFMT) | (mode & 0o7777) })
  }

  async chown (path: string, uid: number, gid: number): Promise<void> {
    const node = this.node(this.resolve(path))
    // -1 (as an unsigned 32-bit number) leaves that id unchanged.
    const patch: { uid?: number, gid?: number } = {}
    if (uid !== -1 && uid !== 0xffffffff) patch.uid = uid
    if (gid !== -1 && gid !== 0xffffffff) patch.gid = gid
    await this.pool.setattr(node.ino, patch)
  }

  /** Times in milliseconds; undefined leaves that time as it is. */
  async utimens (path: string, atime: number | undefined, mtime: number | undefined): Promise<void> {
    const ino = this.resolve(path)
    const patch: { atime?: number, mtime?: number } = {}
    if (atime !== undefined) patch.atime = atime
    if (mtime !== undefined) {
      patch.mtime = mtime
      const file = this.open.get(ino)
      if (file) file.mtime = mtime
    }
    await this.pool.setattr(ino, patch)
  }

  statfs (): StatFs {
    const bsize = 4096
    const bins = this.store.diskBins.length > 0 ? this.store.diskBins : this.store.bins
    const capacity = bins.reduce((sum, b) => sum + b.capacity, 0)
    const free = bins.reduce((sum, b) => sum + b.free, 0)
    const files = 0xffffffff
    return {
      bsize,
      frsize: bsize,
      blocks: Math.min(0xffffffff, Math.floor(capacity / bsize)),
      bfree: Math.min(0xffffffff, Math.floor(free / bsize)),
      bavail: Math.min(0xffffffff, Math.floor(free / bsize)),
      files,
      ffree: files - this.pool.inodeCount,
      favail: files - this.pool.inodeCount,
      fsid: 0x63686163,
      flag: 0,
      namemax: NAME_MAX
    }
  }

  // ---- directories ----

  readdir (path: string): { names: string[], stats: Stat[] } {
    const ino = this.resolve(path)
    const entries = this.pool.entries(ino)
    const names = ['.', '..']
    const stats = [this.stat(ino), this.stat(ino)]
    for (const [name, child] of entries) {
      names.push(name)
      stats.push(this.stat(child))
    }
    return { names, stats }
  }

  async mkdir (path: string, mode: number, caller: Caller): Promise<void> {
    const { parent, name } = this.parentOf(path)
    await this.pool.create(parent, name, this.ownership(parent, S_IFDIR | (mode & 0o7777), caller))
  }

  async rmdir (path: string): Promise<void> {
    const { parent, name } = this.parentOf(path)
    await this.pool.rmdir(parent, name)
  }

  // ---- names ----

  async mknod (path: string, mode: number, rdev: number, caller: Caller): Promise<void> {
    const { parent, name } = this.parentOf(path)
    await this.pool.create(parent, name, { ...this.ownership(parent, mode, caller), rdev })
  }

  async symlink (target: string, path: string, caller: Caller): Promise<void> {
    if (Buffer.byteLength(target) > PATH_MAX) throw new ChaacError('CHAAC_NAME_TOO_LONG', 'symbolic link target too long')
    const { parent, name } = this.parentOf(path)
    await this.pool.create(parent, name, { ...this.ownership(parent, S_IFLNK | 0o777, caller), target })
  }

  readlink (path: string): string {
    const node = this.node(this.resolve(path))
    if (!isSymlink(node)) throw new ChaacError('CHAAC_INVALID', `${path} is not a symbolic link`)
    return node.target ?? ''
  }

  async link (existing: string, path: string): Promise<void> {
    const ino = this.resolve(existing)
    const { parent, name } = this.parentOf(path)
    await this.pool.link(ino, parent, name)
  }

  async unlink (path: string): Promise<void> {
    const { parent, name } = this.parentOf(path)
    const node = await this.pool.unlink(parent, name)
    await this.dropIfUnused(node)
  }

  async rename (from: string, to: string): Promise<void> {
    const src = this.parentOf(from)
    const dst = this.parentOf(to)
    const replaced = await this.pool.rename(src.parent, src.name, dst.parent, dst.name)
    if (replaced) await this.dropIfUnused(replaced)
  }

  // ---- files ----

  async create (path: string, mode: number, flags: number, caller: Caller): Promise<number> {
    const { parent, name } = this.parentOf(path)
    const node = await this.pool.create(parent, name, this.ownership(parent, S_IFREG | (mode & 0o7777), caller))
    return this.openHandle(node, flags)
  }

  async openFile (path: string, flags: number): Promise<number> {
    const node = this.node(this.resolve(path))
    if (isDir(node) && (flags & O_ACCMODE) !== 0) throw new ChaacError('CHAAC_IS_DIR', `${path} is a directory`)
    const fd = this.openHandle(node, flags)
    if (isFile(node) && (flags & O_TRUNC) !== 0 && (flags & O_ACCMODE) !== 0) {
      const file = this.open.get(node.ino) as OpenFile
      if (file.size > 0) await file.truncate(0)
    }
    return fd
  }

  async read (fd: number, target: Buffer, length: number, offset: number): Promise<number> {
    const file = this.fileOf(fd)
    return await file.read(target, length, offset, file.size > this.opts.cacheSkipOver)
  }

  async write (fd: number, data: Buffer, offset: number): Promise<number> {
    await this.fileOf(fd).write(data, offset)
    return data.length
  }

  async truncate (path: string, size: number): Promise<void> {
    const node = this.node(this.resolve(path))
    if (isDir(node)) throw new ChaacError('CHAAC_IS_DIR', `${path} is a directory`)
    const fd = this.openHandle(node, 1)
    try {
      await this.fileOf(fd).truncate(size)
    } finally {
      await this.release(fd)
    }
  }

  async ftruncate (fd: number, size: number): Promise<void> {
    await this.fileOf(fd).truncate(size)
  }

  async flush (fd: number): Promise<void> {
    await this.commit(this.handle(fd).ino, false)
  }

  async fsync (fd: number): Promise<void> {
    await this.commit(this.handle(fd).ino, true)
  }

  async release (fd: number): Promise<void> {
    const { ino } = this.handle(fd)
    this.handles.delete(fd)
    const file = this.open.get(ino)
    if (!file) return
    try {
      await this.commit(ino, false)
    } finally {
      if (--file.handles === 0) {
        this.open.delete(ino)
        const node = this.pool.get(ino)
        if (node) await this.dropIfUnused(node)
      }
    }
  }

  /** Commits every open file's pending writes (used at shutdown). */
  async commitAll (): Promise<void> {
    await Promise.all([...this.open.keys()].map(async (ino) => await this.commit(ino, true)))
  }

  /** Deletes files unlinked while open before a crash, and balls nothing references. */
  async collectGarbage (): Promise<void> {
    for (const node of this.pool.orphans()) {
      if (!this.open.has(node.ino)) await this.releaseBalls(await this.pool.purge(node.ino))
    }
    const candidates = new Set(this.store.localBalls())
    for (const [id, rec] of this.pool.balls) if (rec.refs <= 0) candidates.add(id)
    await this.releaseBalls([...candidates])
  }

  // ---- internals ----

  private async commit (ino: number, sync: boolean): Promise<void> {
    const file = this.open.get(ino)
    if (!file) {
      if (sync) await this.pool.sync()
      return
    }
    await file.serially(async (version) => {
      const snap = await file.settle()
      try {
        // Data before metadata: on fsync the balls reach stable storage before the ball list.
        if (sync) {
          await this.store.sync(snap.unsynced)
          file.markSynced(snap)
        }
        if (file.changed) {
          const released = await this.pool.commitFile(ino, snap, { sync, upload: this.store.writePolicy === 'async' })
          file.markCommitted(version)
          await this.releaseBalls(released)
        } else if (sync) {
          await this.pool.sync()
        }
      } finally {
        for (const id of snap.pinned) this.store.unpin(id)
        await this.releaseBalls(snap.pinned)
      }
    })
  }

  private async releaseBalls (ids: string[]): Promise<void> {
    for (const id of ids) {
      if (this.pool.isReferenced(id)) continue
      try {
        if (await this.store.forget(id)) await this.pool.dropBall(id)
      } catch (err) {
        this.opts.log.warn({ ball: id, err: (err as Error).message }, 'could not delete an unreferenced ball')
      }
    }
  }

  private async dropIfUnused (node: Inode): Promise<void> {
    if (node.nlink > 0 || this.open.has(node.ino)) return
    await this.releaseBalls(await this.pool.purge(node.ino))
  }

  private openHandle (node: Inode, flags: number): number {
    const fd = this.nextFd++
    if (this.nextFd > 0x7fffffff) this.nextFd = 1
    this.handles.set(fd, { ino: node.ino, flags })
    if (isFile(node)) {
      let file = this.open.get(node.ino)
      if (!file) {
        file = new OpenFile(node.ino, node, this.opts.chunkSize, this.store)
        this.open.set(node.ino, file)
      }
      file.handles++
    }
    return fd
  }

  private handle (fd: number): Handle {
    const h = this.handles.get(fd)
    if (!h) throw new ChaacError('CHAAC_BAD_HANDLE', `no open file with handle ${fd}`)
    return h
  }

  private fileOf (fd: number): OpenFile {
    const file = this.open.get(this.handle(fd).ino)
    if (!file) throw new ChaacError('CHAAC_IS_DIR', `handle ${fd} is not a regular file`)
    return file
  }

  private node (ino: number): Inode {
    const node = this.pool.get(ino)
    if (!node) throw notFound(`inode ${ino}`)
    return node
  }

  private stat (ino: number): Stat {
    const node = this.node(ino)
    const file = this.open.get(ino)
    const size = file ? file.size : node.size
    return {
      ino,
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      nlink: node.nlink,
      size,
      rdev: node.rdev,
      blksize: 4096,
      blocks: Math.ceil(allocated(node, size) / 512),
      atime: node.atime,
      mtime: file ? file.mtime : node.mtime,
      ctime: node.ctime
    }
  }

  // New entries belong to the caller; a set-group-ID directory passes on its group.
  private ownership (parent: number, mode: number, caller: Caller): { mode: number, uid: number, gid: number } {
    const dir = this.node(parent)
    if ((dir.mode & S_ISGID) === 0) return { mode, uid: caller.uid, gid: caller.gid }
    return { mode: isDirMode(mode) ? mode | S_ISGID : mode, uid: caller.uid, gid: dir.gid }
  }

  /** The inode a path names. */
  resolve (path: string): number {
    let ino = ROOT_INO
    for (const name of components(path)) {
      const node = this.node(ino)
      if (!isDir(node)) throw new ChaacError('CHAAC_NOT_DIR', `${path}: a component is not a directory`)
      const child = this.pool.lookup(ino, name)
      if (child === undefined) throw notFound(path)
      ino = child
    }
    return ino
  }

  private parentOf (path: string): { parent: number, name: string } {
    const parts = components(path)
    const name = parts.pop()
    if (name === undefined) throw new ChaacError('CHAAC_EXISTS', 'the root directory exists')
    const parent = this.resolve('/' + parts.join('/'))
    if (!isDir(this.node(parent))) throw new ChaacError('CHAAC_NOT_DIR', `${path}: parent is not a directory`)
    return { parent, name }
  }
}

function components (path: string): string[] {
  const parts = path.split('/').filter((p) => p.length > 0)
  for (const p of parts) {
    if (Buffer.byteLength(p) > NAME_MAX) throw new ChaacError('CHAAC_NAME_TOO_LONG', `name too long: ${p.slice(0, 32)}...`)
  }
  return parts
}

function isDirMode (mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR
}

// Bytes that hold data: holes (chunks never written, or all zeros) take none.
function allocated (node: Inode, size: number): number {
  if (!isFile(node) || !node.balls) return isDir(node) ? 4096 : size
  const C = node.chunkSize ?? size
  let bytes = 0
  node.balls.forEach((id, i) => {
    if (id !== null) bytes += Math.max(0, Math.min(C, size - i * C))
  })
  return bytes
}
