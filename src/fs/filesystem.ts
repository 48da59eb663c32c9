// POSIX semantics on top of the data pool and the ball store, addressed as the
// kernel addresses them: by inode number (and a parent plus a name for names).
// Keeps the kernel's references to inodes (lookup counts), file and directory
// handles and open-file state; an inode without names lives on while the
// kernel or a handle still holds it, as on a local disk, and its balls are
// released when the last one lets go.
import { ChaacError, isChaacError, notFound } from '../errors.ts'
import type { AttrPatch, Pool } from '../meta/pool.ts'
import { ROOT_INO, S_IFDIR, S_IFLNK, S_IFMT, S_IFREG, inlineHash, isDir, isDirentKey, isFile, isSymlink, parseDirentKey, type Inode } from '../meta/schema.ts'
import type { Slice } from '../meta/slices.ts'
import type { Balls } from '../balls/balls.ts'
import { OpenFile } from './open-file.ts'
import type { UncommittedLog } from './uncommitted-log.ts'
import type { AttrChanges, Caller, DirEntry, Opened, PlanChunk, ReadPlan, Stat, StatFs } from './types.ts'

const S_ISGID = 0o2000
const NAME_MAX = 255
const PATH_MAX = 4096
const O_ACCMODE = 3
const O_RDWR = 2
const O_EXCL = 0o200
const O_TRUNC = 0o1000
// Chunks a read plan covers at most (16 GiB in 4 MiB chunks).
const MAX_PLAN_BALLS = 4096

// A directory handle lists the entries it had when read from the start, so
// that offsets stay valid while the directory changes.
interface Handle { ino: number, flags: number, entries?: DirEntry[], lost?: true }

export interface FilesystemOptions {
  pool: Pool
  store: Balls
  chunkSize: number
  /** Files larger than this are read without being cached (cache skip). */
  cacheSkipOver: number
  /** Files up to this size are kept inline in the data pool instead of balls (0: never). */
  inlineMax: number
  /**
   * The first handle number given out (default 1). Handles below it may be
   * an earlier agent's, on a connection taken over: see `adopt`.
   */
  firstHandle?: number
  /** Where the files with acknowledged, uncommitted changes are written down (none: nowhere). */
  uncommitted?: UncommittedLog
  /** Files an earlier agent left with uncommitted changes: its handles of them are adopted broken (EIO). */
  lostChanges?: Set<number>
  log: { warn: (obj: object, msg: string) => void, error: (obj: object, msg: string) => void }
}

export class Filesystem {
  private readonly pool: Pool
  private readonly store: Balls
  private readonly handles = new Map<number, Handle>()
  private readonly open = new Map<number, OpenFile>()
  // How many references the kernel holds to each inode (entries it was given, minus forgets).
  private readonly lookups = new Map<number, number>()
  // Each file's content (size and balls) when the kernel last saw it, for keepCache.
  private readonly seen = new Map<number, string>()
  // The same for listings: how often each directory's entries changed
  // (here or on another agent), how many fresh snapshots a replica took
  // (anything may have changed), and where both stood when the kernel last
  // listed a directory.
  private readonly dirChanges = new Map<number, number>()
  private snapshots = 0
  private readonly listed = new Map<number, string>()
  private nextFd: number
  private readonly firstHandle: number
  /** Bytes read and written through the mount since the start. */
  readonly traffic = { bytesRead: 0, bytesWritten: 0 }

  constructor (private readonly opts: FilesystemOptions) {
    this.pool = opts.pool
    this.store = opts.store
    this.firstHandle = opts.firstHandle ?? 1
    this.nextFd = this.firstHandle
    this.pool.on('change', (_seq, ops) => {
      for (const op of ops) {
        if (!isDirentKey(op.key)) continue
        const { parent } = parseDirentKey(op.key)
        this.dirChanges.set(parent, (this.dirChanges.get(parent) ?? 0) + 1)
      }
    })
    this.pool.on('synced', () => { this.snapshots++ })
  }

  // ---- the kernel's references ----

  /**
   * The entry `name` in directory `parent`, which the kernel holds a
   * reference to from now on; undefined when there is none (not an error to
   * build: the lookup before most creates finds nothing).
   */
  lookup (parent: number, name: string): Stat | undefined {
    checkName(name)
    if (!isDir(this.node(parent))) throw new ChaacError('CHAAC_NOT_DIR', `inode ${parent} is not a directory`)
    const ino = this.pool.lookup(parent, name)
    return ino === undefined ? undefined : this.remember(ino)
  }

  /** The kernel dropped `count` references to an inode. */
  async forget (ino: number, count: number): Promise<void> {
    const left = (this.lookups.get(ino) ?? 0) - count
    if (left > 0) {
      this.lookups.set(ino, left)
      return
    }
    this.lookups.delete(ino)
    // The kernel dropped its pages of the file (its listings) along with the inode.
    this.seen.delete(ino)
    this.listed.delete(ino)
    const node = this.pool.get(ino)
    if (node) await this.dropIfUnused(node)
  }

  /** Whether the kernel holds a reference to the inode (so may cache its attributes). */
  knows (ino: number): boolean {
    return this.lookups.has(ino)
  }

  knownInodes (): IterableIterator<number> {
    return this.lookups.keys()
  }

  // ---- attributes ----

  getattr (ino: number): Stat {
    return this.stat(ino)
  }

  /** chmod, chown, truncate and utimens in one; `fd` is the handle of an ftruncate. */
  async setattr (ino: number, changes: AttrChanges, fd?: number): Promise<Stat> {
    const node = this.node(ino)
    if (changes.size !== undefined) {
      if (isDir(node)) throw new ChaacError('CHAAC_IS_DIR', `inode ${ino} is a directory`)
      if (!isFile(node)) throw new ChaacError('CHAAC_INVALID', `inode ${ino} is not a regular file`)
      if (fd !== undefined && this.handles.get(fd)?.ino === ino) await this.changed(ino, this.fileOf(fd).truncate(changes.size))
      else await this.truncate(node, changes.size)
    }
    const patch: AttrPatch = {}
    if (changes.mode !== undefined) patch.mode = (node.mode & S_IFMT) | (changes.mode & 0o7777)
    if (changes.uid !== undefined) patch.uid = changes.uid
    if (changes.gid !== undefined) patch.gid = changes.gid
    if (changes.atime !== undefined) patch.atime = changes.atime
    if (changes.mtime !== undefined) {
      patch.mtime = changes.mtime
      const file = this.open.get(ino)
      if (file) file.mtime = changes.mtime
    }
    if (Object.keys(patch).length > 0) await this.pool.setattr(ino, patch)
    return this.stat(ino)
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

  /** keepCache: the kernel may list the directory from what it cached (nothing changed since it last listed it). */
  async opendir (ino: number): Promise<Opened> {
    // A listing shows every change stored before it started, wherever it was made.
    await this.pool.revalidate()
    const node = this.node(ino)
    if (!isDir(node)) throw new ChaacError('CHAAC_NOT_DIR', `inode ${ino} is not a directory`)
    const fd = this.openHandle(node, 0)
    const now = `${this.snapshots}:${this.dirChanges.get(ino) ?? 0}`
    const keepCache = this.listed.get(ino) === now
    this.listed.set(ino, now)
    return { fd, keepCache }
  }

  isDirectory (ino: number): boolean {
    const node = this.pool.get(ino)
    return node !== undefined && isDir(node)
  }

  /** At most `max` entries from position `offset`; position 0 starts over with a fresh listing. */
  readdir (fd: number, offset: number, max: number): DirEntry[] {
    const h = this.handle(fd)
    if (offset === 0 || !h.entries) h.entries = this.listing(h.ino)
    return h.entries.slice(offset, offset + max)
  }

  releasedir (fd: number): void {
    this.handles.delete(fd)
  }

  /** fsync of a directory: its entries are in the data pool; make them durable. */
  async syncMetadata (): Promise<void> {
    await this.pool.sync()
  }

  async mkdir (parent: number, name: string, mode: number, caller: Caller): Promise<Stat> {
    const node = await this.pool.create(parent, name, this.ownership(parent, S_IFDIR | (mode & 0o7777), caller))
    return this.remember(node.ino)
  }

  async rmdir (parent: number, name: string): Promise<void> {
    await this.pool.rmdir(parent, name)
  }

  // ---- names ----

  async mknod (parent: number, name: string, mode: number, rdev: number, caller: Caller): Promise<Stat> {
    const node = await this.pool.create(parent, name, { ...this.ownership(parent, mode, caller), rdev })
    return this.remember(node.ino)
  }

  async symlink (target: string, parent: number, name: string, caller: Caller): Promise<Stat> {
    if (Buffer.byteLength(target) > PATH_MAX) throw new ChaacError('CHAAC_NAME_TOO_LONG', 'symbolic link target too long')
    const node = await this.pool.create(parent, name, { ...this.ownership(parent, S_IFLNK | 0o777, caller), target })
    return this.remember(node.ino)
  }

  readlink (ino: number): string {
    const node = this.node(ino)
    if (!isSymlink(node)) throw new ChaacError('CHAAC_INVALID', `inode ${ino} is not a symbolic link`)
    return node.target ?? ''
  }

  async link (ino: number, parent: number, name: string): Promise<Stat> {
    await this.pool.link(ino, parent, name)
    return this.remember(ino)
  }

  async unlink (parent: number, name: string): Promise<void> {
    const node = await this.pool.unlink(parent, name)
    await this.dropIfUnused(node)
  }

  async rename (parent: number, name: string, newParent: number, newName: string): Promise<void> {
    const replaced = await this.pool.rename(parent, name, newParent, newName)
    if (replaced) await this.dropIfUnused(replaced)
  }

  // ---- files ----

  async create (parent: number, name: string, mode: number, flags: number, caller: Caller): Promise<{ stat: Stat, fd: number }> {
    let node: Inode
    try {
      // Stored with the file's first commit (flush, close or fsync), or by the next change to the namespace.
      node = await this.pool.create(parent, name, this.ownership(parent, S_IFREG | (mode & 0o7777), caller), { lazy: true })
    } catch (err) {
      // Another agent made the name since the kernel looked it up: open(O_CREAT) opens that file, unless O_EXCL.
      const ino = (flags & O_EXCL) === 0 && isChaacError(err, 'CHAAC_EXISTS') ? this.pool.lookup(parent, name) : undefined
      if (ino === undefined) throw err
      const { fd } = await this.openFile(ino, flags)
      return { stat: this.remember(ino), fd }
    }
    // Not stored yet: lost if the agent dies before the first commit.
    this.opts.uncommitted?.mark(node.ino)
    const stat = this.remember(node.ino)
    return { stat, fd: this.openHandle(node, flags) }
  }

  async openFile (ino: number, flags: number): Promise<Opened> {
    // Close-to-open: every version closed anywhere before this open is the one it sees.
    await this.pool.revalidate()
    const node = this.node(ino)
    if (isDir(node) && (flags & O_ACCMODE) !== 0) throw new ChaacError('CHAAC_IS_DIR', `inode ${ino} is a directory`)
    const fd = this.openHandle(node, flags)
    if (isFile(node) && (flags & O_TRUNC) !== 0 && (flags & O_ACCMODE) !== 0) {
      const file = this.open.get(node.ino) as OpenFile
      try {
        if (file.size > 0) await this.changed(ino, file.truncate(0))
      } catch (err) {
        await this.release(fd)
        throw err
      }
    }
    return { fd, keepCache: this.keepCache(ino) }
  }

  async read (fd: number, target: Buffer, length: number, offset: number): Promise<number> {
    const file = this.fileOf(fd)
    const n = await file.read(target, length, offset, file.size > this.opts.cacheSkipOver)
    this.traffic.bytesRead += n
    return n
  }

  /** A read's bytes without a copy where they lie whole in one ball (see OpenFile.readView); undefined: use read. */
  async readView (fd: number, length: number, offset: number): Promise<Buffer | undefined> {
    const file = this.fileOf(fd)
    const data = await file.readView(length, offset, file.size > this.opts.cacheSkipOver)
    if (data) this.traffic.bytesRead += data.length
    return data
  }

  /**
   * A plan for reading the handle's file outside JS, when every chunk with
   * data is one ball with a copy in a local bin and nothing is pending;
   * chunks whose ball is not here are left out. Undefined when the file is
   * not that simple, or changed while the plan was being made.
   */
  async readPlan (fd: number): Promise<ReadPlan | undefined> {
    const h = this.handles.get(fd)
    const file = h && this.open.get(h.ino)
    // Beyond the first MAX_PLAN_BALLS chunks reads stay on the JS path: an open reads the header of every ball it plans.
    const plain = file?.plainBalls()?.filter((c) => c.index < MAX_PLAN_BALLS)
    if (!h || !file || !plain || plain.length === 0) return undefined
    const epoch = file.epoch
    const copies = await Promise.all(plain.map(async (c) => await this.store.localCopy(c.ball)))
    if (!this.handles.has(fd) || file.epoch !== epoch || file.busy) return undefined
    const chunks: PlanChunk[] = []
    const skipCache = file.size > this.opts.cacheSkipOver
    plain.forEach((c, i) => {
      const copy = copies[i]
      // A ball cut shorter than its chunk reads as zeros past its end: the JS path does that.
      if (copy && copy.header.size === c.length) {
        chunks.push({
          index: c.index,
          id: c.ball,
          path: copy.path,
          headerLength: copy.header.length,
          blockSize: copy.header.blockSize,
          size: c.length,
          hashes: copy.header.hashes,
          reportAt: skipCache ? 0 : copy.readsToPromote
        })
      }
    })
    if (chunks.length === 0) return undefined
    return { ino: h.ino, epoch, size: file.size, chunkSize: file.chunkSize, skipCache, chunks }
  }

  /** Reads of balls served outside JS (by read plans), `bytes` in all: the store's use counts take them. */
  noteBallReads (ids: string[], counts: Float64Array, bytes: number): void {
    this.store.noteLocalBytes(bytes)
    ids.forEach((id, i) => this.store.noteLocalReads(id, counts[i]))
  }

  /** The content epoch of an open file (-1 when not open): it changes with every write, truncate and reload. */
  epochOf (ino: number): number {
    return this.open.get(ino)?.epoch ?? -1
  }

  /** Whether a file or directory handle is open. */
  isOpen (fd: number): boolean {
    return this.handles.has(fd)
  }

  /** `data` may be lent only until the first await (the kernel's request buffer): it is copied before. */
  async write (fd: number, data: Buffer, offset: number): Promise<number> {
    const n = data.length
    await this.changed(this.handle(fd).ino, this.fileOf(fd).write(data, offset))
    this.traffic.bytesWritten += n
    return n
  }

  async flush (fd: number): Promise<void> {
    const h = this.handle(fd)
    if (writes(h)) await this.commit(h.ino, false)
    await this.pool.flushLazy()
    await this.stored(h.ino)
  }

  async fsync (fd: number): Promise<void> {
    await this.commit(this.handle(fd).ino, true)
  }

  async release (fd: number): Promise<void> {
    // A broken handle (adopted after its changes were lost) is released as any other.
    const h = this.handles.get(fd) ?? this.handle(fd)
    const { ino } = h
    this.handles.delete(fd)
    const file = this.open.get(ino)
    if (!file) return
    // The kernel's last handle is gone (its close returned): attributes are the committed ones from now on.
    if (file.handles === 1) file.closing = true
    try {
      if (writes(h)) await this.commit(ino, false)
      await this.pool.flushLazy()
      await this.stored(ino)
    } finally {
      if (--file.handles === 0) {
        this.open.delete(ino)
        // A merge still running would leave its ball pinned with nobody to commit it.
        await file.drain()
        // Balls of a commit that failed (e.g. ENOSPC) would stay pinned, and take room, until a restart.
        const pins = file.takePins()
        for (const id of pins) this.store.unpin(id)
        await this.releaseBalls(pins)
        const node = this.pool.get(ino)
        if (node) await this.dropIfUnused(node)
      }
    }
  }

  /** Commits every open file's pending writes (used at shutdown). */
  async commitAll (): Promise<void> {
    await Promise.all([...this.open.keys()].map(async (ino) => await this.commit(ino, true)))
  }

  /** Deletes files unlinked while open before a crash (unless `orphans` is false: another agent may hold them), and balls nothing references. */
  async collectGarbage (opts: { orphans?: boolean } = {}): Promise<void> {
    if (opts.orphans !== false) {
      for (const node of this.pool.orphans()) {
        if (!this.open.has(node.ino) && !this.lookups.has(node.ino)) await this.releaseBalls(await this.pool.purge(node.ino))
      }
    }
    const candidates = new Set(this.store.localBalls())
    for (const [id, rec] of this.pool.balls) if (rec.refs <= 0) candidates.add(id)
    await this.releaseBalls([...candidates])
  }

  /** Files no name refers to any more that this agent still holds open (another agent may not delete them yet). */
  heldOrphans (): number[] {
    return [...this.open.keys()].filter((ino) => this.pool.get(ino)?.nlink === 0)
  }

  /**
   * Deletes files no name refers to that nobody holds: not this agent, and
   * not one in `held` (the agents alive hold those). For a cluster on etcd,
   * where an agent that held such a file may have died with it open.
   */
  async purgeOrphans (held: Set<number>): Promise<number> {
    let purged = 0
    for (const node of this.pool.orphans()) {
      if (held.has(node.ino) || this.open.has(node.ino) || this.lookups.has(node.ino)) continue
      await this.releaseBalls(await this.pool.purge(node.ino))
      purged++
    }
    return purged
  }

  /** The inode a path names (for the HTTP API; the kernel never sends paths). */
  resolve (path: string): number {
    let ino = ROOT_INO
    for (const name of path.split('/').filter((p) => p.length > 0)) {
      checkName(name)
      if (!isDir(this.node(ino))) throw new ChaacError('CHAAC_NOT_DIR', `${path}: a component is not a directory`)
      const child = this.pool.lookup(ino, name)
      if (child === undefined) throw notFound(path)
      ino = child
    }
    return ino
  }

  /**
   * A path that names the inode, for log lines; best effort: undefined for a
   * file with no name left (unlinked while open), or when not found within
   * `budget` entries (the kernel names files by inode, and files have no parent link).
   */
  pathOf (ino: number, budget = 100_000): string | undefined {
    if (ino === ROOT_INO) return '/'
    const dirs: Array<[number, string]> = [[ROOT_INO, '']]
    for (let i = 0; i < dirs.length; i++) {
      const [dir, path] = dirs[i]
      for (const [name, child] of this.pool.entries(dir)) {
        if (child === ino) return `${path}/${name}`
        if (--budget <= 0) return undefined
        const node = this.pool.get(child)
        if (node && isDir(node)) dirs.push([child, `${path}/${name}`])
      }
    }
    return undefined
  }

  /**
   * Takes on a handle an earlier agent gave out (this agent took its
   * connection over): a handle of `ino`, read-write for a file, so that the
   * process holding it goes on using it. Handles this agent could have
   * given out are refused, as any unknown handle.
   */
  adopt (fd: number, ino: number): void {
    if (fd >= this.firstHandle || this.handles.has(fd)) throw new ChaacError('CHAAC_BAD_HANDLE', `no open file with handle ${fd}`)
    const node = this.pool.get(ino)
    // Created by that agent and never stored: lost with it, as the changes below.
    if (!node) throw new ChaacError('CHAAC_IO', `inode ${ino} of handle ${fd} was lost with the agent that died before storing it`, { ino })
    this.openHandle(node, isFile(node) ? O_RDWR : 0, fd)
    if (this.opts.lostChanges?.has(ino) === true) (this.handles.get(fd) as Handle).lost = true
  }

  // ---- internals ----

  private async commit (ino: number, sync: boolean): Promise<void> {
    const file = this.open.get(ino)
    if (!file) {
      if (sync) await this.pool.sync()
      return
    }
    // Nothing written since the last commit (the usual release after a flush).
    if (!sync && !file.busy) return
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
          file.markPooled(snap)
          // The kernel's pages already hold these writes: they went through it.
          const stamp = contentStamp(snap, snap.inline && inlineHash(snap.inline))
          this.seen.set(ino, stamp)
          file.base = stamp
          await this.releaseBalls(released)
        } else if (sync) {
          await this.pool.sync()
        }
      } finally {
        for (const id of snap.pinned) this.store.unpin(id)
        await this.releaseBalls(snap.pinned)
      }
    })
    // Its creation may still be waiting (a lazy create with nothing to commit).
    await this.pool.flushLazy()
    await this.stored(ino)
  }

  // Everything of the file is stored (its creation included, after flushLazy):
  // changes made meanwhile keep it marked (checked and cleared in one turn).
  private async stored (ino: number): Promise<void> {
    if (this.open.get(ino)?.busy !== true) this.opts.uncommitted?.clear(ino)
  }

  private async releaseBalls (ids: string[]): Promise<void> {
    for (const id of ids) {
      // A ball an open file still refers to is not garbage, committed or not.
      if (this.pool.inUse(id) || this.heldOpen(id)) continue
      try {
        if (!await this.store.forget(id)) continue
        // The cloud copy goes after a grace period (CloudCollector); copies on
        // other agents go as their agents see the ball unreferenced, and the
        // record with the last of them.
        const rec = this.pool.balls.get(id)
        if (this.pool.inCloud(id)) await this.pool.markGarbage(id, Date.now())
        else if (rec !== undefined && rec.bins.length === 0) await this.pool.dropBall(id)
      } catch (err) {
        this.opts.log.warn({ ball: id, err: (err as Error).message }, 'could not delete an unreferenced ball')
      }
    }
  }

  private heldOpen (id: string): boolean {
    for (const file of this.open.values()) if (file.refersTo(id)) return true
    return false
  }

  private async dropIfUnused (node: Inode): Promise<void> {
    if (node.nlink > 0 || this.open.has(node.ino) || this.lookups.has(node.ino)) return
    await this.releaseBalls(await this.pool.purge(node.ino))
  }

  private openHandle (node: Inode, flags: number, fd = this.nextFd++): number {
    this.handles.set(fd, { ino: node.ino, flags })
    if (isFile(node)) {
      const ino = node.ino
      const fetchInline = node.inline !== undefined ? async () => await this.pool.readInline(ino) : undefined
      let file = this.open.get(ino)
      if (file) {
        file.closing = false
        // Close-to-open with a handle still open here: a version another agent
        // committed since is what this open sees (unless this agent has writes
        // of its own not yet committed: then the last close wins).
        const stamp = contentStamp({ size: node.size, balls: node.balls ?? [], slices: node.slices }, node.inline)
        if (file.base !== stamp && !file.busy) {
          file.reload(node, fetchInline)
          file.base = stamp
        }
      } else {
        file = new OpenFile(ino, node, {
          chunkSize: this.opts.chunkSize,
          store: this.store,
          inlineMax: this.opts.inlineMax,
          fetchInline,
          readPooled: async (id) => await this.pool.readPooled(id)
        })
        file.base = contentStamp({ size: node.size, balls: node.balls ?? [], slices: node.slices }, node.inline)
        this.open.set(ino, file)
      }
      file.handles++
    }
    return fd
  }

  private handle (fd: number): Handle {
    const h = this.handles.get(fd)
    if (!h) throw new ChaacError('CHAAC_BAD_HANDLE', `no open file with handle ${fd}`)
    if (h.lost) throw new ChaacError('CHAAC_IO', `changes made through handle ${fd} of inode ${h.ino} were lost with the agent that died before committing them`, { ino: h.ino })
    return h
  }

  // A change of a file's bytes is answered once the file is written down as
  // uncommitted (its bytes were copied before: the change's first await comes first).
  private async changed (ino: number, change: Promise<void>): Promise<void> {
    try {
      this.opts.uncommitted?.mark(ino)
    } finally {
      await change
    }
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
    const open = this.open.get(ino)
    // An open file with nothing of its own to commit shows the stored version,
    // which may be newer (committed on another agent while a handle was open here).
    const file = open?.closing === false && open.busy ? open : undefined
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

  // Counts a reference the kernel takes to an inode by getting its entry.
  private remember (ino: number): Stat {
    const stat = this.stat(ino)
    this.lookups.set(ino, (this.lookups.get(ino) ?? 0) + 1)
    return stat
  }

  // The kernel may keep its cached pages of a file when the content is as it
  // last saw it. Balls are named by their content, so the same size and ball
  // list are the same bytes; a commit from another handle or host changes them.
  private keepCache (ino: number): boolean {
    const node = this.node(ino)
    const now = contentStamp({ size: node.size, balls: node.balls ?? [], slices: node.slices }, node.inline)
    const keep = this.seen.get(ino) === now
    this.seen.set(ino, now)
    return keep
  }

  private listing (ino: number): DirEntry[] {
    const node = this.pool.get(ino)
    // A removed directory still open reads as empty.
    if (!node || !isDir(node)) return []
    const up = this.pool.parent(ino) ?? ino
    const list: DirEntry[] = [
      { name: '.', ino, mode: node.mode },
      { name: '..', ino: up, mode: this.pool.get(up)?.mode ?? node.mode }
    ]
    for (const [name, child] of this.pool.entries(ino)) list.push({ name, ino: child, mode: this.pool.get(child)?.mode ?? 0 })
    return list
  }

  private async truncate (node: Inode, size: number): Promise<void> {
    const fd = this.openHandle(node, 1)
    try {
      await this.fileOf(fd).truncate(size)
    } finally {
      await this.release(fd)
    }
  }
}

// A reader's close does not commit another handle's writes in progress: a
// crash must leave a file's old version or its new one, never a part of it.
function writes (h: Handle): boolean {
  return (h.flags & O_ACCMODE) !== 0
}

function checkName (name: string): void {
  if (Buffer.byteLength(name) > NAME_MAX) throw new ChaacError('CHAAC_NAME_TOO_LONG', `name too long: ${name.slice(0, 32)}...`)
}

function contentStamp (c: { size: number, balls: Array<string | null>, slices?: Array<Slice[] | null> }, inline: string | undefined): string {
  // Chunks without slices leave no trace: an open file's list and the stored one differ in trailing empties only.
  let slices = ''
  for (const [i, list] of (c.slices ?? []).entries()) if (list !== null && list.length > 0) slices += `${i}@${listStamp(list)},`
  return `${c.size}:${c.balls.join(',')}:${slices}:${inline ?? ''}`
}

// Slice lists are never changed in place: each one's part of a stamp is worked out once.
const listStamps = new WeakMap<Slice[], string>()
function listStamp (list: Slice[]): string {
  let stamp = listStamps.get(list)
  if (stamp === undefined) {
    stamp = list.map((s) => `${s.at}+${s.len}=${s.ball}`).join(' ')
    listStamps.set(list, stamp)
  }
  return stamp
}

function isDirMode (mode: number): boolean {
  return (mode & S_IFMT) === S_IFDIR
}

// Bytes that hold data: holes (chunks never written, or all zeros) take none.
function allocated (node: Inode, size: number): number {
  if (!isFile(node) || !node.balls || node.inline !== undefined) return isDir(node) ? 4096 : size
  const C = node.chunkSize ?? size
  let bytes = 0
  const chunks = Math.max(node.balls.length, node.slices?.length ?? 0)
  for (let i = 0; i < chunks; i++) {
    const length = Math.max(0, Math.min(C, size - i * C))
    const sliced = (node.slices?.[i] ?? []).reduce((sum, s) => sum + s.len, 0)
    bytes += (node.balls[i] ?? null) !== null ? length : Math.min(length, sliced)
  }
  return bytes
}
