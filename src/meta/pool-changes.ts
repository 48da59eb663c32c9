// Every change of the namespace and the maps, worked out in memory: what a
// change reads, how it changes the records held in memory and which stored
// records it writes. How those records are stored is the engine's: one
// LevelDB batch on the data pool (DataPool), or an etcd transaction that
// holds only if nothing it read changed meanwhile (EtcdPool), which may run
// a change again on fresher records.
import { ChaacError, notFound } from '../errors.ts'
import type { BatchOp } from './batch-writer.ts'
import type { AttrPatch, CopyOptions, FileContent, NewNode } from './pool.ts'
import { PoolState } from './pool-state.ts'
import { encodeSettings, type ClusterSettings } from './settings.ts'
import { MAX_POOLED_SLICE, badSlices, ballsOf, chunkDiff, diffBalls, type Slice } from './slices.ts'
import {
  MAX_INLINE_BYTES, ROOT_INO, SETTINGS_KEY, S_IFDIR, S_IFMT, agentKey, ballKey, direntKey, encode, garbageKey, inlineHash,
  inlineKey, inodeKey, pooledKey, sliceKey, encodeSlices, isDir, isFile, uploadKey, durableCopies, type AgentReport, type BallRecord, type Inode
} from './schema.ts'

/** How long an agent that stopped reporting keeps its bins to itself. */
const BIN_CLAIM_MS = 30_000

/** A change worked out in memory: the records to store, and the answer once they are stored. */
export interface Change<T> {
  ops: BatchOp[]
  value: T
}

export interface RunOptions {
  /** On stable storage before the answer (fsync). */
  sync?: boolean
  /** May wait for the next batch (a file counts as written once closed). */
  lazy?: boolean
}

export abstract class PoolChanges extends PoolState {
  /**
   * Works out `change` on the records in memory (synchronously, so that no
   * other change interleaves) and stores what it writes; resolves with its
   * answer once stored. An engine may run it again after a conflict.
   */
  protected abstract run<T> (change: () => Change<T>, opts?: RunOptions): Promise<T>

  /** A new inode number, and the records that keep it taken. */
  protected abstract takeIno (): { ino: number, ops: BatchOp[] }

  /**
   * When set, the ball records whose reference count a change moved, and by
   * how much: an engine that must store a large change in several steps
   * stores the increases first and the decreases last, so that no step
   * leaves a ball referenced with a count of zero.
   */
  protected refMoves?: Map<string, number>

  // ---- namespace changes ----

  /**
   * Creates a node. With `lazy`, the change may be stored with the next batch
   * (for a new file: its commit at flush, close or fsync) instead of on its
   * own before answering.
   */
  async create (parent: number, name: string, spec: NewNode, opts: { lazy?: boolean } = {}): Promise<Inode> {
    return await this.run(() => {
      const dir = this.dirForChange(parent, name)
      const { ino, ops } = this.takeIno()
      const now = Date.now()
      const node: Inode = {
        ino,
        mode: spec.mode,
        uid: spec.uid,
        gid: spec.gid,
        nlink: (spec.mode & S_IFMT) === S_IFDIR ? 2 : 1,
        size: spec.target !== undefined ? Buffer.byteLength(spec.target) : 0,
        rdev: spec.rdev ?? 0,
        atime: now,
        mtime: now,
        ctime: now
      }
      if (spec.target !== undefined) node.target = spec.target
      const parentNode = this.inodes.get(parent) as Inode
      if (isDir(node)) {
        this.dirs.set(node.ino, new Map())
        this.parents.set(node.ino, parent)
        parentNode.nlink++
      }
      dir.set(name, node.ino)
      this.inodes.set(node.ino, node)
      this.touchDir(parentNode, now)
      ops.push(
        this.putInode(node),
        this.putInode(parentNode),
        { type: 'put', key: direntKey(parent, name), value: Buffer.from(String(node.ino)) }
      )
      return { ops, value: node }
    }, { lazy: opts.lazy })
  }

  async link (ino: number, parent: number, name: string): Promise<Inode> {
    return await this.run(() => {
      const node = this.mustGet(ino)
      if (isDir(node)) throw new ChaacError('CHAAC_NOT_PERMITTED', 'hard links to directories are not allowed')
      const dir = this.dirForChange(parent, name)
      const now = Date.now()
      const parentNode = this.inodes.get(parent) as Inode
      dir.set(name, ino)
      node.nlink++
      node.ctime = now
      this.touchDir(parentNode, now)
      return {
        ops: [this.putInode(node), this.putInode(parentNode), { type: 'put', key: direntKey(parent, name), value: Buffer.from(String(ino)) }],
        value: node
      }
    })
  }

  /** Removes a name of a non-directory; returns its inode (nlink may now be 0). */
  async unlink (parent: number, name: string): Promise<Inode> {
    return await this.run(() => {
      const node = this.mustGet(this.mustLookup(parent, name))
      if (isDir(node)) throw new ChaacError('CHAAC_IS_DIR', `${name} is a directory`)
      const now = Date.now()
      const parentNode = this.inodes.get(parent) as Inode
      this.entries(parent).delete(name)
      node.nlink--
      node.ctime = now
      this.touchDir(parentNode, now)
      return { ops: [this.putInode(node), this.putInode(parentNode), { type: 'del', key: direntKey(parent, name) }], value: node }
    })
  }

  async rmdir (parent: number, name: string): Promise<void> {
    await this.run(() => {
      const ino = this.mustLookup(parent, name)
      const node = this.mustGet(ino)
      if (!isDir(node)) throw new ChaacError('CHAAC_NOT_DIR', `${name} is not a directory`)
      if (this.entries(ino).size > 0) throw new ChaacError('CHAAC_NOT_EMPTY', `${name} is not empty`)
      const now = Date.now()
      const parentNode = this.inodes.get(parent) as Inode
      this.entries(parent).delete(name)
      this.dirs.delete(ino)
      this.parents.delete(ino)
      this.inodes.delete(ino)
      parentNode.nlink--
      this.touchDir(parentNode, now)
      return { ops: [{ type: 'del', key: inodeKey(ino) }, this.putInode(parentNode), { type: 'del', key: direntKey(parent, name) }], value: undefined }
    })
  }

  /**
   * Atomic rename, replacing an existing target as POSIX says; returns the
   * replaced inode when one lost a name (nlink may now be 0).
   */
  async rename (srcParent: number, srcName: string, dstParent: number, dstName: string): Promise<Inode | undefined> {
    return await this.run(() => {
      const ino = this.mustLookup(srcParent, srcName)
      const node = this.mustGet(ino)
      const dstDir = this.entries(dstParent)
      const existing = dstDir.get(dstName)
      if (existing === ino) return { ops: [], value: undefined }
      if (isDir(node) && this.isAncestor(ino, dstParent)) {
        throw new ChaacError('CHAAC_INVALID', `cannot move ${srcName} into itself`)
      }
      const ops: BatchOp[] = []
      let replaced: Inode | undefined
      if (existing !== undefined) {
        replaced = this.mustGet(existing)
        if (isDir(replaced)) {
          if (!isDir(node)) throw new ChaacError('CHAAC_IS_DIR', `${dstName} is a directory`)
          if (this.entries(existing).size > 0) throw new ChaacError('CHAAC_NOT_EMPTY', `${dstName} is not empty`)
          this.dirs.delete(existing)
          this.parents.delete(existing)
          this.inodes.delete(existing)
          this.mustGet(dstParent).nlink--
          ops.push({ type: 'del', key: inodeKey(existing) })
          replaced = undefined
        } else {
          if (isDir(node)) throw new ChaacError('CHAAC_NOT_DIR', `${dstName} is not a directory`)
          replaced.nlink--
          replaced.ctime = Date.now()
          ops.push(this.putInode(replaced))
        }
      } else {
        this.checkName(dstName)
      }
      const now = Date.now()
      const src = this.mustGet(srcParent)
      const dst = this.mustGet(dstParent)
      this.entries(srcParent).delete(srcName)
      dstDir.set(dstName, ino)
      if (isDir(node)) this.parents.set(ino, dstParent)
      if (isDir(node) && srcParent !== dstParent) {
        src.nlink--
        dst.nlink++
      }
      node.ctime = now
      this.touchDir(src, now)
      this.touchDir(dst, now)
      ops.push(
        this.putInode(node), this.putInode(src), this.putInode(dst),
        { type: 'del', key: direntKey(srcParent, srcName) },
        { type: 'put', key: direntKey(dstParent, dstName), value: Buffer.from(String(ino)) }
      )
      return { ops, value: replaced }
    })
  }

  async setattr (ino: number, patch: AttrPatch): Promise<Inode> {
    return await this.run(() => {
      const node = this.mustGet(ino)
      Object.assign(node, patch)
      node.ctime = Date.now()
      return { ops: [this.putInode(node)], value: node }
    })
  }

  /**
   * Commits a file's new content at once: its ball list, size and the
   * balls' reference counts, plus the upload queue entries for balls the
   * cloud tier does not hold yet. Returns the balls nothing references now.
   */
  async commitFile (ino: number, content: FileContent, opts: { sync?: boolean, upload?: boolean } = {}): Promise<string[]> {
    const released = await this.run(() => this.commitChange(ino, content, opts.upload === true), { sync: opts.sync })
    if (this.uploads.size > 0) this.emit('queued')
    return released
  }

  private commitChange (ino: number, content: FileContent, upload: boolean): Change<string[]> {
    const node = this.mustGet(ino)
    const inline = content.inline
    if (inline !== undefined && (!isFile(node) || content.balls.length > 0 || inline.length !== content.size || inline.length > MAX_INLINE_BYTES)) {
      throw new ChaacError('CHAAC_INVALID', `inode ${ino}: inline content must be a regular file's only bytes, at most ${MAX_INLINE_BYTES}`)
    }
    // Only what changed is checked and counted: a database's fsync changes one
    // chunk of a file whose other chunks may carry hundreds of slices.
    const diff = chunkDiff(node.balls ?? [], node.slices ?? [], content.balls, content.slices ?? [])
    const bad = badSlices(content.slices ?? [], content.chunkSize, node.chunkSize === content.chunkSize ? diff.slices : undefined) ?? this.badPooled(content, diff.added)
    if (bad !== undefined || (inline !== undefined && ballsOf([], content.slices).length > 0)) {
      throw new ChaacError('CHAAC_INVALID', `inode ${ino}: ${bad ?? 'a file kept inline has no slices'}`)
    }
    const ops: BatchOp[] = []
    const after = diffBalls(content.balls, diff, 'after')
    const released = this.adjustRefs(diffBalls(node.balls ?? [], diff, 'before'), after, ops)
    for (const { id, data } of content.pooled ?? []) {
      const rec = this.balls.get(id)
      if (rec === undefined || rec.pooled === true || rec.refs <= 0) continue
      rec.pooled = true
      rec.bytes = data.length
      ops.push({ type: 'put', key: pooledKey(id), value: data }, { type: 'put', key: ballKey(id), value: encode(rec) })
    }
    if (upload) {
      for (const id of after) {
        const rec = this.balls.get(id)
        // Pooled slices are as safe as the data pool: they go to the cloud tier merged into whole balls.
        if (rec?.cloud === true || rec?.pooled === true || this.uploads.has(id)) continue
        this.uploads.add(id)
        ops.push({ type: 'put', key: uploadKey(id), value: Buffer.alloc(0) })
      }
    }
    const sliceOps = this.sliceOps(node, content.slices ?? [], diff.slices)
    node.balls = content.balls
    node.size = content.size
    node.chunkSize = content.chunkSize
    if (content.mtime !== undefined) {
      node.mtime = content.mtime
      node.ctime = content.mtime
    }
    if (inline !== undefined) {
      node.inline = inlineHash(inline)
      ops.push({ type: 'put', key: inlineKey(ino), value: inline })
    } else if (node.inline !== undefined) {
      delete node.inline
      ops.push({ type: 'del', key: inlineKey(ino) })
    }
    ops.push(this.putInode(node), ...sliceOps)
    return { ops, value: released }
  }

  // A pooled slice the commit adds must be held already or come with its bytes.
  private badPooled (content: FileContent, added: Slice[]): string | undefined {
    const brought = new Map((content.pooled ?? []).map(({ id, data }) => [id, data]))
    for (const s of added) {
      if (s.pooled !== true) continue
      const data = brought.get(s.ball)
      if (data === undefined && this.balls.get(s.ball)?.pooled !== true) return `slice ${s.ball}: its bytes are not in the data pool`
      if (data !== undefined && (data.length !== s.len || data.length > MAX_POOLED_SLICE)) return `slice ${s.ball}: ${data.length} bytes for a slice of ${s.len}`
    }
    return undefined
  }

  /** Deletes an inode no name refers to and no handle holds; returns the balls released. */
  async purge (ino: number): Promise<string[]> {
    return await this.run(() => {
      const node = this.inodes.get(ino)
      if (!node || node.nlink > 0) return { ops: [], value: [] }
      const all = chunkDiff(node.balls ?? [], node.slices ?? [], [], [])
      const ops: BatchOp[] = [{ type: 'del', key: inodeKey(ino) }, ...this.sliceOps(node, [], all.slices)]
      if (node.inline !== undefined) ops.push({ type: 'del', key: inlineKey(ino) })
      const released = this.adjustRefs(diffBalls(node.balls ?? [], all, 'before'), [], ops)
      this.inodes.delete(ino)
      return { ops, value: released }
    })
  }

  // ---- the map of balls ----

  /**
   * A bin gained or lost a copy. `cached` says the copy is a cache; `writer`
   * names an agent whose uncommitted file holds the ball, added to its writers.
   */
  async recordCopy (binId: string, id: string, bytes: number, present: boolean, opts: CopyOptions = {}): Promise<void> {
    await this.run(() => {
      const rec = this.balls.get(id) ?? { bytes, refs: 0, cloud: false, bins: [] }
      const has = rec.bins.includes(binId)
      const cached = present && opts.cached === true
      const newWriter = opts.writer !== undefined && !(rec.writers ?? []).includes(opts.writer)
      if (present === has && cached === (rec.cached?.includes(binId) ?? false) && !newWriter) return { ops: [], value: undefined }
      // A commit may have made the record before any copy was seen, without a size.
      rec.bytes ||= bytes
      if (present !== has) rec.bins = present ? [...rec.bins, binId] : rec.bins.filter((b) => b !== binId)
      rec.cached = withMember(rec.cached, binId, cached)
      if (newWriter) rec.writers = [...(rec.writers ?? []), opts.writer as string]
      return { ops: this.ballOps(id, rec), value: undefined }
    })
  }

  /**
   * Removes a bin's copy from the map if the ball is garbage (no file and no
   * writer needs it); true when the holder may delete it. Checked here, one
   * change at a time, so that a writer who just counted on the copy keeps it.
   */
  async releaseCopy (binId: string, id: string): Promise<boolean> {
    return await this.run(() => {
      const rec = this.balls.get(id)
      if (!rec) return { ops: [], value: true }
      if (this.inUse(id)) return { ops: [], value: false }
      if (!rec.bins.includes(binId)) return { ops: [], value: true }
      rec.bins = rec.bins.filter((b) => b !== binId)
      rec.cached = withMember(rec.cached, binId, false)
      return { ops: this.ballOps(id, rec), value: true }
    })
  }

  /**
   * Agent `agentId` writes files naming these balls: none of their copies is
   * garbage until it unpins them. Returns each ball's durable copies (bin ids)
   * at this moment, which stay.
   */
  async pinBalls (agentId: string, ids: string[]): Promise<string[][]> {
    return await this.run(() => {
      const ops: BatchOp[] = []
      const value = ids.map((id) => {
        const rec = this.balls.get(id) ?? { bytes: 0, refs: 0, cloud: false, bins: [] }
        rec.writers = withMember(rec.writers, agentId, true)
        this.balls.set(id, rec)
        ops.push(...this.ballOps(id, rec))
        return durableCopies(rec)
      })
      return { ops, value }
    })
  }

  /** The agent's files naming these balls are committed or given up. */
  async unpinBalls (agentId: string, ids: string[]): Promise<void> {
    await this.run(() => {
      const ops: BatchOp[] = []
      for (const id of ids) {
        const rec = this.balls.get(id)
        if (!rec?.writers?.includes(agentId)) continue
        rec.writers = withMember(rec.writers, agentId, false)
        ops.push(...this.ballOps(id, rec))
      }
      return { ops, value: undefined }
    })
  }

  /** The cloud tier holds the ball now; `garbage` when nothing references or is about to reference it. */
  async markInCloud (id: string, bytes: number, garbage = false): Promise<void> {
    await this.run(() => {
      const rec = this.balls.get(id) ?? { bytes, refs: 0, cloud: true, bins: [] }
      rec.bytes ||= bytes
      rec.cloud = true
      this.balls.set(id, rec)
      this.uploads.delete(id)
      const ops: BatchOp[] = [{ type: 'del', key: uploadKey(id) }, { type: 'put', key: ballKey(id), value: encode(rec) }]
      // An upload that finished after its file was deleted left a copy nothing references.
      if (garbage && rec.refs <= 0 && !this.garbage.has(id)) {
        const at = Date.now()
        this.garbage.set(id, at)
        ops.push({ type: 'put', key: garbageKey(id), value: Buffer.from(String(at)) })
      }
      return { ops, value: undefined }
    })
  }

  async dropUpload (id: string): Promise<void> {
    await this.run(() => {
      this.uploads.delete(id)
      return { ops: [{ type: 'del', key: uploadKey(id) }], value: undefined }
    })
  }

  /** Forgets a ball whose every copy is gone. */
  async dropBall (id: string): Promise<void> {
    await this.run(() => {
      this.balls.delete(id)
      this.uploads.delete(id)
      this.garbage.delete(id)
      return { ops: dropOps(id), value: undefined }
    })
  }

  /** Notes that no file references a ball the cloud tier holds: it is deleted there after a grace period. */
  async markGarbage (id: string, at: number): Promise<void> {
    await this.run(() => {
      if (this.garbage.has(id)) return { ops: [], value: undefined }
      this.garbage.set(id, at)
      return { ops: [{ type: 'put', key: garbageKey(id), value: Buffer.from(String(at)) }], value: undefined }
    })
  }

  /** A file references the ball again: its cloud copy stays. */
  async keepBall (id: string): Promise<void> {
    await this.run(() => {
      if (!this.garbage.delete(id)) return { ops: [], value: undefined }
      return { ops: [{ type: 'del', key: garbageKey(id) }], value: undefined }
    })
  }

  /**
   * The cloud copy is about to be deleted: from now on a writer of the same
   * content uploads it again rather than counting on that copy.
   */
  async markNotInCloud (id: string): Promise<void> {
    await this.run(() => {
      const rec = this.balls.get(id)
      if (!rec) return { ops: [], value: undefined }
      rec.cloud = false
      return { ops: [{ type: 'put', key: ballKey(id), value: encode(rec) }], value: undefined }
    })
  }

  // ---- the map of agents ----

  /** An agent's registration and periodic report: its peer address, bins and context. */
  async reportAgent (report: AgentReport): Promise<void> {
    await this.run(() => {
      const now = Date.now()
      const ops: BatchOp[] = []
      for (const bin of report.bins) {
        for (const other of this.agents.values()) {
          if (other.id === report.id || !other.bins.some((b) => b.id === bin.id)) continue
          // Bin ids are random and kept in the bin's directory: two agents naming one is a copied directory.
          if (now - other.seenAt < BIN_CLAIM_MS) {
            throw new ChaacError('CHAAC_EXISTS', `bin ${bin.id} (${bin.dir}) belongs to agent ${other.id}: give each agent bin directories of its own`)
          }
          this.agents.delete(other.id)
          ops.push({ type: 'del', key: agentKey(other.id) })
        }
      }
      const before = this.agents.get(report.id)
      // A restarted agent's uncommitted files died with the process that wrote them.
      if (before !== undefined && before.startedAt !== report.startedAt) ops.push(...this.dropWriter(report.id))
      const rec = { ...report, seenAt: now }
      this.agents.set(report.id, rec)
      ops.push({ type: 'put', key: agentKey(report.id), value: encode(rec) })
      return { ops, value: undefined }
    })
  }

  /** The agent is out of touch: it stops counting as alive until it reports again. */
  async markGone (agentId: string): Promise<void> {
    await this.run(() => {
      const rec = this.agents.get(agentId)
      if (!rec || rec.goneAt !== undefined) return { ops: [], value: undefined }
      rec.goneAt = Date.now()
      return { ops: [{ type: 'put', key: agentKey(agentId), value: encode(rec) }], value: undefined }
    })
  }

  // ---- the cluster's settings ----

  /**
   * Stores `settings` unless the cluster has settings already; returns the
   * stored ones. On etcd the write holds only while the record is absent, so
   * agents that start together for the first time all end up with the first one's.
   */
  async claimSettings (settings: ClusterSettings): Promise<ClusterSettings> {
    return await this.run(() => {
      if (this.settings !== undefined) return { ops: [], value: this.settings }
      this.settings = settings
      return { ops: [{ type: 'put', key: SETTINGS_KEY, value: encodeSettings(settings) }], value: settings }
    }, { sync: true })
  }

  /**
   * Changes the allocator policy of the stored settings (every agent
   * follows them); returns the settings now stored, or undefined when the
   * engine holds none (an agent alone that was never formatted).
   */
  async changePolicy (policy: string, by: string): Promise<ClusterSettings | undefined> {
    return await this.run(() => {
      const stored = this.settings
      if (stored === undefined || stored.problem !== undefined || stored.policy === policy) return { ops: [], value: stored }
      const next = { ...stored, policy, setBy: by }
      this.settings = next
      return { ops: [{ type: 'put', key: SETTINGS_KEY, value: encodeSettings(next) }], value: next }
    }, { sync: true })
  }

  // ---- helpers ----

  /** The root directory, made when the namespace has none. */
  protected makeRoot (): BatchOp {
    const now = Date.now()
    const root: Inode = { ino: ROOT_INO, mode: S_IFDIR | 0o755, uid: 0, gid: 0, nlink: 2, size: 0, rdev: 0, atime: now, mtime: now, ctime: now }
    this.inodes.set(ROOT_INO, root)
    this.dirs.set(ROOT_INO, new Map())
    return this.putInode(root)
  }

  // A ball's record as it is now: stored, or deleted with its queue and
  // garbage entries once nothing is left to say (no copy, reference or writer).
  private ballOps (id: string, rec: BallRecord): BatchOp[] {
    if (rec.refs > 0 || rec.cloud || rec.bins.length > 0 || (rec.writers?.length ?? 0) > 0) {
      if (rec.cached === undefined) delete rec.cached
      if (rec.writers === undefined) delete rec.writers
      this.balls.set(id, rec)
      return [{ type: 'put', key: ballKey(id), value: encode(rec) }]
    }
    this.balls.delete(id)
    this.uploads.delete(id)
    this.garbage.delete(id)
    return dropOps(id)
  }

  private dropWriter (agentId: string): BatchOp[] {
    const ops: BatchOp[] = []
    for (const [id, rec] of this.balls) {
      if (!rec.writers?.includes(agentId)) continue
      rec.writers = withMember(rec.writers, agentId, false)
      ops.push(...this.ballOps(id, rec))
    }
    return ops
  }

  private adjustRefs (before: string[], after: string[], ops: BatchOp[]): string[] {
    const delta = new Map<string, number>()
    for (const id of before) delta.set(id, (delta.get(id) ?? 0) - 1)
    for (const id of after) delta.set(id, (delta.get(id) ?? 0) + 1)
    const released: string[] = []
    for (const [id, d] of delta) {
      if (d === 0) continue
      const rec = this.balls.get(id) ?? { bytes: 0, refs: 0, cloud: false, bins: [] }
      rec.refs += d
      this.balls.set(id, rec)
      this.refMoves?.set(ballKey(id), d)
      ops.push({ type: 'put', key: ballKey(id), value: encode(rec) })
      if (rec.refs <= 0) released.push(id)
    }
    return released
  }

  protected putInode (node: Inode): BatchOp {
    const { slices, ...record } = node
    return { type: 'put', key: inodeKey(node.ino), value: encode(record) }
  }

  // Makes a file's slices `after`: the records of the chunks `changed`.
  private sliceOps (node: Inode, after: Array<Slice[] | null>, changed: number[]): BatchOp[] {
    const ops: BatchOp[] = []
    for (const i of changed) {
      const now = after[i] ?? []
      ops.push(now.length > 0 ? { type: 'put', key: sliceKey(node.ino, i), value: encodeSlices(now) } : { type: 'del', key: sliceKey(node.ino, i) })
    }
    const kept = Array.from(after, (list) => list != null && list.length > 0 ? list : null)
    while (kept.length > 0 && kept[kept.length - 1] === null) kept.pop()
    if (kept.length > 0) node.slices = kept
    else delete node.slices
    return ops
  }

  private touchDir (dir: Inode, now: number): void {
    dir.mtime = now
    dir.ctime = now
  }

  protected mustGet (ino: number): Inode {
    const node = this.inodes.get(ino)
    if (!node) throw notFound(`inode ${ino}`)
    return node
  }

  private mustLookup (parent: number, name: string): number {
    const ino = this.entries(parent).get(name)
    if (ino === undefined) throw notFound(name)
    return ino
  }

  private checkName (name: string): void {
    if (Buffer.byteLength(name) > 255) throw new ChaacError('CHAAC_NAME_TOO_LONG', `name too long: ${name.slice(0, 32)}...`)
  }

  private dirForChange (parent: number, name: string): Map<string, number> {
    this.checkName(name)
    const dir = this.entries(parent)
    if (dir.has(name)) throw new ChaacError('CHAAC_EXISTS', `${name} exists`)
    return dir
  }

  private isAncestor (ino: number, of: number): boolean {
    for (let cur: number | undefined = of; cur !== undefined && cur !== ROOT_INO; cur = this.parents.get(cur)) {
      if (cur === ino) return true
    }
    return false
  }
}

/** `list` with `item` in it or not; undefined for an empty list, so records stay small. */
function withMember (list: string[] | undefined, item: string, member: boolean): string[] | undefined {
  const has = list?.includes(item) ?? false
  if (has === member) return list
  const next = member ? [...(list ?? []), item] : (list ?? []).filter((x) => x !== item)
  return next.length > 0 ? next : undefined
}

// The records of a ball nothing needs any more, its pooled bytes with them.
function dropOps (id: string): BatchOp[] {
  return [{ type: 'del', key: ballKey(id) }, { type: 'del', key: uploadKey(id) }, { type: 'del', key: garbageKey(id) }, { type: 'del', key: pooledKey(id) }]
}
