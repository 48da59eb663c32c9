// The agent's local store: its bins by level, the peers and the cloud tier
// behind them, the read path (memory level, then disk level, then a peer
// holding the ball, then the cloud tier) with its outcomes, and cache
// eviction within each bin's hard capacity. In a cluster, new balls go where
// the data plane places them (RemoteBalls).
import { EventEmitter } from 'node:events'
import type { CloudTier } from '../cloud/cloud-tier.ts'
import { ChaacError, isChaacError } from '../errors.ts'
import { checkBall, headerLength, type BallHeader } from './ball-codec.ts'
import type { Bin, EvictionPolicy } from './bin.ts'
import { Hasher } from './hasher.ts'
import { Lru } from './lru.ts'
import { VerifiedReader, type BallSource } from './verified-reader.ts'

// Fetches a reader may have running ahead of it at once.
const MAX_FETCHES_AHEAD = 4
// Balls fetched lately are kept whole in memory up to this many bytes: a
// sequential reader reads each in many pieces right after it arrives.
const RECENT_BYTES = 32 * 1024 * 1024

export type ReadOutcome = 'localHit' | 'remoteHit' | 'miss' | 'skip'
export type WritePolicy = 'through' | 'async' | 'none'

/** How a bin holds a copy: a cache, or for a writer whose file is not committed yet. */
export interface CopyKind { cached?: boolean, writer?: string }

/** A copy of a ball on another agent. */
export interface RemoteSource extends BallSource {
  readonly agent: string
  /** The whole stored ball (header ++ data), within one deadline. */
  readBall: (id: string) => Promise<Buffer>
}

/** A new ball, whole, while it is being placed. */
export interface NewBall { id: string, header: Buffer, data: Buffer }

/** The cluster's side of the store (the data plane): peers holding balls, and where new balls go. */
export interface RemoteBalls {
  /** Copies on other agents that are alive, best first. */
  sources: (id: string) => RemoteSource[]
  /** Whether an agent alive holds a copy that is not a cache. */
  hasDurableCopy: (id: string) => boolean
  /** Stores the copies of a new ball where the allocator says; resolves once they are stored. */
  place: (ball: NewBall) => Promise<void>
  /** Brings the copies on other agents to stable storage. */
  sync: (ids: string[]) => Promise<void>
  /** No file this agent writes names the ball any more. */
  unpinned: (id: string) => void
}

export interface BallStoreOptions {
  bins: Bin[]
  cloud?: CloudTier
  writePolicy: WritePolicy
  eviction: EvictionPolicy
  /** Whether the cloud tier is known to hold the ball (kept by the data pool). */
  inCloud: (id: string) => boolean
  /**
   * Reads of a disk copy before the ball enters the memory level (default 64,
   * about two sequential passes of a 4 MiB ball): one pass over a large file,
   * or scattered random reads, must not churn the memory level.
   */
  promoteAfterReads?: number
  /** Keeps the map of balls in step with the bins; awaited where a copy must be known before a commit. */
  record?: (binId: string, id: string, bytes: number, present: boolean, kind?: CopyKind) => Promise<void>
  /** Whether a copy of a ball no file references may go: the data pool takes it off the map if so. */
  release?: (binId: string, id: string) => Promise<boolean>
  log?: { warn: (obj: object, msg: string) => void }
}

export interface StoreEvents {
  /** A bin gained or lost a copy of a ball. */
  copy: [binId: string, ballId: string, bytes: number, present: boolean]
  /** The cloud tier now holds the ball. */
  uploaded: [ballId: string, bytes: number]
}

export class BallStore extends EventEmitter<StoreEvents> {
  readonly outcomes: Record<ReadOutcome, number> = { localHit: 0, remoteHit: 0, miss: 0, skip: 0 }
  readonly bins: Bin[]
  readonly cloud?: CloudTier
  readonly writePolicy: WritePolicy
  private readonly reader = new VerifiedReader({ blockHashes: async (data) => await this.hasher.blockHashes(data) })
  private readonly hasher = new Hasher()
  /** The data plane, in a cluster. */
  remote?: RemoteBalls
  private readonly fetches = new Map<string, Promise<Fetched>>()
  // Fetches whose bytes have not arrived yet (those being cached no longer count against read-ahead).
  private fetching = 0
  // Balls fetched lately, whole and checked, oldest first.
  private readonly recent = new Map<string, Buffer>()
  private recentBytes = 0
  // Balls fetched ahead of a reader, and where they came from.
  private readonly fetchedAhead = new Lru<string, ReadOutcome>(1024)
  // New balls being placed: peers fetch them from here meanwhile.
  private readonly staged = new Map<string, { ball: NewBall, n: number }>()
  private readonly promotions = new Map<string, Promise<void>>()
  // Bytes read from the disk level not yet spent on promotions. Copying a
  // ball into the memory level costs its whole size, so the memory level
  // takes at most as many bytes as readers took from the disk level: random
  // reads of a few pages each over a file larger than the memory level would
  // otherwise copy whole balls in and out (measured: 4 KiB random reads at a
  // tenth of the rate with the memory level than without).
  private promoteCredit = 0
  private readonly cloudOps = new Map<string, Promise<void>>()
  // Balls written for content not yet committed: garbage collection leaves them alone.
  private readonly pins = new Map<string, number>()

  constructor (private readonly opts: BallStoreOptions) {
    super()
    this.bins = [...opts.bins]
    this.sortBins()
    this.cloud = opts.cloud
    this.writePolicy = opts.cloud ? opts.writePolicy : 'none'
  }

  // Faster levels first: that is the order reads try them in.
  private sortBins (): void {
    this.bins.sort((a, b) => Number(a.level === 'disk') - Number(b.level === 'disk'))
  }

  /** Takes an open bin into the store (a data container that started); reconcile then tells the map of balls what it holds. */
  addBin (bin: Bin): void {
    if (this.bins.some((b) => b.id === bin.id)) throw new ChaacError('CHAAC_EXISTS', `bin ${bin.id} (${bin.dir}) is already one of this agent's bins`)
    this.bins.push(bin)
    this.sortBins()
  }

  /**
   * Takes a bin out of the store (its container stopped): its balls stay on
   * the map of balls, where the cluster sees the bin offline.
   */
  async removeBin (bin: Bin): Promise<void> {
    const at = this.bins.indexOf(bin)
    if (at >= 0) this.bins.splice(at, 1)
    await bin.close()
  }

  /**
   * Empties a bin before it is removed: every durable copy it holds first
   * gets another, in another bin of this agent with room or else through
   * `elsewhere` (the data plane: another host's), so that no ball has fewer
   * copies; then the bin's copies go. No new ball goes to it meanwhile.
   */
  async drain (bin: Bin, elsewhere?: (ball: NewBall) => Promise<void>): Promise<{ moved: number, dropped: number }> {
    bin.draining = true
    let moved = 0
    let dropped = 0
    try {
      for (const [id, entry] of [...bin.entries]) {
        if (!entry.cached) {
          const raw = await bin.readRaw(id, 0, entry.bytes)
          const ball = checkBall(id, raw)
          if (!ball) throw new ChaacError('CHAAC_BALL_CORRUPT', `ball ${id}: the copy in bin ${bin.dir} fails its hash`, { ball: id })
          await this.copyAway({ id, ...ball }, elsewhere)
          moved++
        } else {
          dropped++
        }
        await bin.delete(id)
        await this.note(bin, id, entry.bytes, false)
      }
    } catch (err) {
      bin.draining = false
      throw err
    }
    return { moved, dropped }
  }

  private async copyAway (ball: NewBall, elsewhere?: (ball: NewBall) => Promise<void>): Promise<void> {
    try {
      await this.storeDurable(ball)
    } catch (err) {
      if (!isChaacError(err, 'CHAAC_NO_SPACE') || !elsewhere) throw err
      await elsewhere(ball)
    }
  }

  get diskBins (): Bin[] {
    return this.bins.filter((b) => b.level === 'disk')
  }

  binsHolding (id: string): Bin[] {
    return this.bins.filter((b) => b.has(id))
  }

  /**
   * Stores a new ball in a bin (and, with the `through` policy, in the cloud
   * tier) and returns its id. Identical content is stored once. `data` must
   * not change until this settles.
   */
  async put (data: Buffer): Promise<string> {
    const { id, header } = await this.hasher.encode(data)
    this.pin(id)
    try {
      const upload = this.writePolicy === 'through' && !this.opts.inCloud(id) ? this.uploadBall(id, header, data) : undefined
      await Promise.all([this.storeCopies({ id, header, data }), upload])
    } catch (err) {
      this.unpin(id)
      throw err
    }
    return id
  }

  private async storeCopies (ball: NewBall): Promise<void> {
    const remote = this.remote
    if (!remote) {
      if (!this.durableBins().some((b) => b.has(ball.id))) await this.storeLocal(ball)
      return
    }
    const staged = this.staged.get(ball.id) ?? { ball, n: 0 }
    staged.n++
    this.staged.set(ball.id, staged)
    try {
      await remote.place(ball)
    } finally {
      if (--staged.n === 0) this.staged.delete(ball.id)
    }
  }

  /** Every put pins its ball; the writer unpins it once its file is committed (or given up). */
  unpin (id: string): void {
    if (this.dropPin(id)) this.remote?.unpinned(id)
  }

  // True when the last pin went.
  private dropPin (id: string): boolean {
    const n = (this.pins.get(id) ?? 0) - 1
    if (n > 0) this.pins.set(id, n)
    else this.pins.delete(id)
    return n <= 0
  }

  isPinned (id: string): boolean {
    return this.pins.has(id)
  }

  private pin (id: string): void {
    this.pins.set(id, (this.pins.get(id) ?? 0) + 1)
  }

  private async uploadBall (id: string, header: Buffer, data: Buffer): Promise<void> {
    await this.cloudOp(id, async (cloud) => await cloud.put(id, header, data))
    this.emit('uploaded', id, header.length + data.length)
  }

  // Uploads and deletes of one ball run one after the other, so a delete
  // that was decided before a writer brought the same content back cannot
  // land after that writer's upload.
  private async cloudOp (id: string, fn: (cloud: CloudTier) => Promise<void>): Promise<void> {
    const cloud = this.cloud
    if (!cloud) return
    const before = this.cloudOps.get(id) ?? Promise.resolve()
    const op = before.catch(() => {}).then(async () => await fn(cloud))
    const settled = op.catch(() => {})
    this.cloudOps.set(id, settled)
    void settled.then(() => { if (this.cloudOps.get(id) === settled) this.cloudOps.delete(id) })
    await op
  }

  /**
   * Verified bytes of a ball, from the nearest copy; counts the read outcome.
   * `into` is where the caller wants the bytes; the result may be a view of it.
   */
  async read (id: string, offset: number, length: number, skipCache: boolean, into?: Buffer): Promise<Buffer> {
    // Bytes fetched a moment ago are in this agent's memory: a local cache hit.
    const held = this.recent.get(id)
    if (held) {
      this.count(id, 'localHit')
      return await this.slice(id, held, offset, length)
    }
    let failure: unknown
    for (const bin of this.bins) {
      if (!bin.has(id)) continue
      try {
        const data = await this.reader.read(bin, id, offset, length, into)
        this.count(id, 'localHit')
        if (bin.level === 'disk' && !skipCache) this.readFromDisk(bin, id, data.length)
        return data
      } catch (err) {
        failure = err
        // A copy that could not be read (e.g. EMFILE) may well be good: keep it, it may be the only one.
        if (isChaacError(err, 'CHAAC_IO')) continue
        if (!isChaacError(err, 'CHAAC_BALL_CORRUPT') && !isChaacError(err, 'CHAAC_BALL_MISSING')) throw err
        this.opts.log?.warn({ ball: id, bin: bin.dir, err: (err as Error).message }, 'dropping a bad copy of a ball')
        await this.dropCopy(bin, id)
      }
    }
    if (skipCache) return await this.readUncached(id, offset, length, into, failure)
    if (!this.cloud && !this.remote) throw failure ?? new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no copy in any bin and no cloud tier`, { ball: id })
    const { raw, outcome } = await this.fetchIntoCache(id)
    this.count(id, outcome)
    return await this.slice(id, raw, offset, length)
  }

  // Data bytes of a whole stored ball that was checked when it was fetched: no need to hash them again.
  private async slice (id: string, raw: Buffer, offset: number, length: number): Promise<Buffer> {
    const h = await this.reader.header(rawSource(raw), id)
    return raw.subarray(h.length + Math.min(offset, h.size), h.length + Math.min(h.size, offset + Math.max(0, length)))
  }

  private keepRecent (id: string, raw: Buffer): void {
    if (this.recent.has(id)) return
    this.recent.set(id, raw)
    this.recentBytes += raw.length
    for (const [old, bytes] of this.recent) {
      if (this.recentBytes <= RECENT_BYTES || old === id) break
      this.recent.delete(old)
      this.recentBytes -= bytes.length
    }
  }

  // Cache skip: only the blocks the read needs, from a peer or the cloud tier, and nothing kept.
  private async readUncached (id: string, offset: number, length: number, into: Buffer | undefined, failure: unknown): Promise<Buffer> {
    for (const source of this.remote?.sources(id) ?? []) {
      try {
        const data = await this.reader.read(source, id, offset, length, into)
        this.outcomes.remoteHit++
        return data
      } catch (err) {
        failure = err
        this.peerFailed(id, source, err)
      }
    }
    if (!this.cloud) throw aboutBall(failure, id) ?? new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no copy in any bin, on any peer, and no cloud tier`, { ball: id })
    const data = await this.reader.read(this.cloud, id, offset, length, into)
    this.outcomes.skip++
    return data
  }

  private peerFailed (id: string, source: RemoteSource, err: unknown): void {
    this.opts.log?.warn({ ball: id, peer: source.agent, err: (err as Error).message }, 'could not read a ball from a peer; trying the next copy')
  }

  /**
   * The file of the copy a read would take first (the fastest level's) with
   * the ball's checked header, for a reader that reads and verifies the
   * blocks itself (the binding's native read path), and after how many of its
   * reads the store would promote the copy; undefined when no bin holds the
   * ball or its header cannot be read.
   */
  async localCopy (id: string): Promise<{ path: string, header: BallHeader, readsToPromote: number } | undefined> {
    const bin = this.bins.find((b) => b.has(id))
    if (!bin) return undefined
    try {
      const header = await this.reader.header(bin, id)
      return { path: bin.pathOf(id), header, readsToPromote: this.readsToPromote(bin, id) }
    } catch {
      return undefined
    }
  }

  // Reads of a disk copy after which it is promoted into the memory level (0: never).
  private readsToPromote (bin: Bin, id: string): number {
    if (bin.level !== 'disk' || !this.bins.some((b) => b.level === 'mem')) return 0
    return Math.max(1, (this.opts.promoteAfterReads ?? 64) - (bin.entries.get(id)?.uses ?? 0))
  }

  /**
   * Reads of a ball's local copy served outside the store (the binding's
   * native read path, from the copy localCopy named): counted in the bin's
   * use counts, which order eviction and promote a ball read often into the
   * memory level, as the store's own reads are. Their outcomes are counted
   * where they were served.
   */
  noteLocalReads (id: string, reads: number): void {
    const bin = this.bins.find((b) => b.has(id))
    if (!bin) return
    bin.noteUses(id, reads)
    if (bin.level === 'disk') this.readFromDisk(bin, id, 0)
  }

  /** Bytes read from local copies outside the store (noteLocalReads counts the reads of each ball). */
  noteLocalBytes (bytes: number): void {
    this.earnCredit(bytes)
  }

  // A read of `bytes` from a disk copy earns promotion credit; a ball read often enough is promoted.
  private readFromDisk (bin: Bin, id: string, bytes: number): void {
    this.earnCredit(bytes)
    if ((bin.entries.get(id)?.uses ?? 0) >= (this.opts.promoteAfterReads ?? 64)) this.promote(id)
  }

  private earnCredit (bytes: number): void {
    const room = this.bins.reduce((sum, b) => b.level === 'mem' ? sum + b.capacity : sum, 0)
    this.promoteCredit = Math.min(room, this.promoteCredit + bytes)
  }

  /** Whether a bin of this agent holds the ball. */
  isLocal (id: string): boolean {
    return this.bins.some((b) => b.has(id))
  }

  /**
   * Read-ahead: fetches a ball from a peer or the cloud tier before a
   * sequential reader asks for it, so that the next request overlaps the
   * reading of this one.
   */
  prefetch (id: string): void {
    if ((!this.cloud && !this.remote) || this.fetches.has(id) || this.fetching >= MAX_FETCHES_AHEAD || this.isLocal(id)) return
    this.fetchedAhead.set(id, 'miss')
    this.fetchIntoCache(id).then(({ outcome }) => {
      if (this.fetchedAhead.get(id) !== undefined) this.fetchedAhead.set(id, outcome)
    }, () => this.fetchedAhead.delete(id))
  }

  // A ball fetched ahead came from a peer or the cloud tier for this reader:
  // its first read counts as that, wherever it finds the ball now.
  private count (id: string, outcome: ReadOutcome): void {
    const ahead = this.fetchedAhead.get(id)
    if (ahead !== undefined) {
      this.fetchedAhead.delete(id)
      outcome = ahead
    }
    this.outcomes[outcome]++
  }

  /** Makes every durable copy of the balls safe from a power loss (fsync), here and on peers. */
  async sync (ids: string[]): Promise<void> {
    await Promise.all([this.syncLocal(ids), this.remote?.sync(ids)])
  }

  /** Makes this agent's durable copies of the balls safe from a power loss. */
  async syncLocal (ids: string[]): Promise<void> {
    await Promise.all(this.durableBins().map(async (b) => await b.sync(ids)))
  }

  /** Copies a ball from a local bin to the cloud tier (the background uploader's job). */
  async upload (id: string): Promise<void> {
    if (!this.cloud) return
    const bin = this.bins.find((b) => b.has(id))
    if (!bin) throw new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no local copy to upload`, { ball: id })
    const h = await this.reader.header(bin, id)
    const data = await this.reader.read(bin, id, 0, h.size)
    await this.uploadBall(id, await bin.readRaw(id, 0, h.length), data)
  }

  /**
   * Removes the local copies of a ball that no file references any more;
   * false if it is pinned (a writer is storing the same content). The cloud
   * copy goes later, after a grace period (deleteFromCloud).
   */
  async forget (id: string): Promise<boolean> {
    if (this.isPinned(id)) return false
    for (const bin of this.binsHolding(id)) {
      if (this.opts.release && !await this.opts.release(bin.id, id)) return false
      // A writer or a pull may have taken the ball up meanwhile: the copy stays, back on the map.
      if (this.isPinned(id)) {
        const entry = bin.entries.get(id)
        if (entry) await this.note(bin, id, entry.bytes, true, { cached: entry.cached })
        return false
      }
      await this.dropCopy(bin, id)
    }
    return true
  }

  async deleteFromCloud (id: string): Promise<void> {
    await this.cloudOp(id, async (cloud) => await cloud.delete(id))
  }

  /** Waits for the background work of the moment: cloud fetches and operations, copies into the cache. */
  async settle (): Promise<void> {
    await Promise.allSettled([...this.fetches.values(), ...this.cloudOps.values()])
    await Promise.allSettled([...this.promotions.values()])
  }

  /** Waits for background work, then closes the bins, the cloud tier and the hash workers. */
  async close (): Promise<void> {
    await this.settle()
    await Promise.all(this.bins.map(async (b) => await b.close()))
    await this.cloud?.close()
    await this.hasher.close()
  }

  /**
   * Drops cached copies from bins that hold more than their capacity (a bin
   * reopened with a smaller one), so the capacity holds from the start; a
   * ball's only copy stays, with a warning.
   */
  async fitCapacity (): Promise<void> {
    for (const bin of this.bins) {
      const over = bin.used - bin.capacity
      if (over <= 0) continue
      const victims = bin.victims(over, this.opts.eviction, (id) => this.evictable(bin, id))
      if (victims.length === 0) {
        this.opts.log?.warn({ bin: bin.dir, used: bin.used, capacity: bin.capacity }, 'a bin holds more than its capacity in balls with no other copy')
      }
      for (const id of victims) await this.dropCopy(bin, id)
    }
  }

  /** Balls held in the local bins. */
  localBalls (): Set<string> {
    const ids = new Set<string>()
    for (const bin of this.bins) for (const id of bin.entries.keys()) ids.add(id)
    return ids
  }

  private durableBins (): Bin[] {
    const disk = this.diskBins
    return disk.length > 0 ? disk : this.bins
  }

  // Where new durable copies may go: the durable bins not being emptied.
  private targetBins (): Bin[] {
    return this.durableBins().filter((b) => !b.draining)
  }

  // A copy may be dropped when another durable copy exists: in the cloud
  // tier or another disk bin; a memory-level copy when any disk copy exists;
  // a cache also when an agent alive holds a copy that is not one.
  private evictable (bin: Bin, id: string): boolean {
    if (this.opts.inCloud(id)) return true
    if (this.diskBins.some((b) => b !== bin && b.has(id))) return true
    return bin.entries.get(id)?.cached === true && (this.remote?.hasDurableCopy(id) ?? false)
  }

  // Concurrent writers may take the room freed for this one, so victims are
  // chosen again until the reservation holds or nothing more may go.
  private async makeRoom (bin: Bin, bytes: number): Promise<boolean> {
    while (!bin.tryReserve(bytes)) {
      const victims = bin.victims(bytes, this.opts.eviction, (id) => this.evictable(bin, id))
      if (victims.length === 0) return false
      await Promise.all(victims.map(async (id) => await this.dropCopy(bin, id)))
    }
    return true
  }

  /** The bins a new ball of `bytes` would go to now, best first: the freest durable bins. */
  placementFor (bytes: number): Bin[] {
    return this.targetBins()
      .filter((b) => b.capacity >= bytes)
      .sort((a, b) => b.free / b.capacity - a.free / a.capacity)
  }

  /**
   * Makes a bin of this agent hold a durable copy of the ball (bin `bin`
   * if it has room, else the freest) and returns that bin's id, once the
   * map of balls lists the copy. A cache already here becomes durable.
   */
  async storeDurable (ball: NewBall, opts: { bin?: string, writer?: string } = {}): Promise<string> {
    this.pin(ball.id)
    try {
      return await this.storeLocal(ball, opts)
    } finally {
      this.dropPin(ball.id)
    }
  }

  /**
   * As storeDurable, for a ball this agent does not have at hand: `fetch`
   * brings its stored bytes (from a peer, the cloud tier), checked here
   * against its id before they are kept.
   */
  async pull (id: string, fetch: () => Promise<Buffer>, opts: { bin?: string, writer?: string } = {}): Promise<string> {
    this.pin(id)
    try {
      if (this.targetBins().some((b) => b.has(id))) return await this.storeLocal({ id, header: Buffer.alloc(0), data: Buffer.alloc(0) }, opts)
      const raw = await fetch()
      const ball = checkBall(id, raw)
      if (!ball) throw new ChaacError('CHAAC_BALL_CORRUPT', `ball ${id}: the fetched copy fails its hash`, { ball: id })
      return await this.storeLocal({ id, ...ball }, opts)
    } finally {
      this.dropPin(id)
    }
  }

  /**
   * Raw stored bytes of a ball for a peer: from a bin of this agent, or from
   * a new ball being placed right now. Unchecked: the reader checks them.
   */
  async rawRange (id: string, start: number, length: number): Promise<Buffer> {
    let failure: unknown
    for (const bin of this.bins) {
      if (!bin.has(id)) continue
      try {
        return await bin.readRaw(id, start, length)
      } catch (err) {
        failure = err
      }
    }
    const staged = this.staged.get(id)?.ball
    if (staged) return Buffer.concat([staged.header, staged.data]).subarray(start, start + length)
    throw failure ?? new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no copy here`, { ball: id })
  }

  /**
   * Brings the map of balls in step with the bins, which are the truth about
   * which copies exist, and takes from it which local copies are caches.
   */
  async reconcile (balls: ReadonlyMap<string, { bytes: number, bins: string[], cached?: string[] }>, bins: Bin[] = this.bins): Promise<void> {
    const durable = this.durableBins()
    for (const bin of bins) {
      for (const [id, entry] of bin.entries) {
        const rec = balls.get(id)
        // A copy the map does not list (its record was lost in a crash) is a cache until a placement says otherwise.
        entry.cached = !durable.includes(bin) || rec === undefined || !rec.bins.includes(bin.id) || (rec.cached?.includes(bin.id) ?? false)
        await this.note(bin, id, entry.bytes, true, { cached: entry.cached })
      }
    }
    const local = new Map(bins.map((b) => [b.id, b]))
    for (const [id, rec] of balls) {
      for (const binId of rec.bins) {
        const bin = local.get(binId)
        if (bin && !bin.has(id)) await this.note(bin, id, rec.bytes, false)
      }
    }
  }

  // A durable copy in the preferred bin if it has room, else in the freest durable bin.
  private async storeLocal (ball: NewBall, opts: { bin?: string, writer?: string } = {}): Promise<string> {
    const { id, header, data } = ball
    const kind = { writer: opts.writer }
    const held = this.targetBins().find((b) => b.has(id))
    const entry = held?.entries.get(id)
    if (held && entry) {
      entry.cached = false
      await this.note(held, id, entry.bytes, true, kind)
      return held.id
    }
    const bytes = header.length + data.length
    const bins = this.placementFor(bytes)
    const preferred = bins.findIndex((b) => b.id === opts.bin)
    if (preferred > 0) bins.unshift(...bins.splice(preferred, 1))
    for (const bin of bins) {
      if (!await this.makeRoom(bin, bytes)) continue
      await bin.write(id, header, data)
      await this.note(bin, id, bytes, true, kind)
      return bin.id
    }
    throw new ChaacError('CHAAC_NO_SPACE', `no bin has room for a ball of ${bytes} bytes`)
  }

  private async cacheCopy (bin: Bin, id: string, header: Buffer, data: Buffer): Promise<void> {
    const bytes = header.length + data.length
    if (bin.has(id) || !await this.makeRoom(bin, bytes)) return
    await bin.write(id, header, data, true)
    this.noteLater(bin, id, bytes, true, { cached: true })
  }

  private async dropCopy (bin: Bin, id: string): Promise<void> {
    const entry = bin.entries.get(id)
    if (!entry) return
    await bin.delete(id)
    this.noteLater(bin, id, entry.bytes, false)
  }

  // Tells the map of balls about a copy; the caller waits when the copy must be known.
  private async note (bin: Bin, id: string, bytes: number, present: boolean, kind: CopyKind = {}): Promise<void> {
    this.emit('copy', bin.id, id, bytes, present)
    await this.opts.record?.(bin.id, id, bytes, present, kind)
  }

  // A cache copy or a dropped copy: the map may learn of it a little later.
  private noteLater (bin: Bin, id: string, bytes: number, present: boolean, kind: CopyKind = {}): void {
    this.note(bin, id, bytes, present, kind).catch((err) => {
      this.opts.log?.warn({ ball: id, bin: bin.dir, err: (err as Error).message }, 'could not update the map of balls')
    })
  }

  // Copies a ball read from the disk level into the memory level, in the background.
  private promote (id: string): void {
    const mem = this.bins.find((b) => b.level === 'mem' && !b.has(id))
    const disk = this.diskBins.find((b) => b.has(id))
    const bytes = disk?.entries.get(id)?.bytes
    // Readers read the data, not the header in front of it (headerLength of the stored size is a little more than it).
    const data = bytes === undefined ? 0 : bytes - headerLength(bytes)
    if (!mem || !disk || bytes === undefined || this.promotions.has(id) || this.promoteCredit < data) return
    this.promoteCredit -= data
    this.promotions.set(id, (async () => {
      if (mem.has(id) || !await this.makeRoom(mem, bytes)) return
      await mem.copyFrom(disk, id, bytes)
      this.noteLater(mem, id, bytes, true, { cached: true })
    })().catch((err) => {
      this.opts.log?.warn({ ball: id, err: (err as Error).message }, 'could not cache a ball in the memory level')
    }).finally(() => this.promotions.delete(id)))
  }

  // One fetch per ball however many readers want it; the whole ball is
  // verified and handed to the readers, then kept in each level (the first
  // bin of the level with room; from a peer, the disk level) in the background. Until it is kept, later
  // readers are served from the fetched bytes (and for a while after) rather than fetching again.
  private async fetchIntoCache (id: string): Promise<Fetched> {
    let pending = this.fetches.get(id)
    if (!pending) {
      this.fetching++
      const fetched = this.fetchVerified(id).finally(() => { this.fetching-- })
      pending = fetched
      this.fetches.set(id, fetched)
      this.promotions.set(id, fetched.then(async ({ raw, outcome }) => {
        this.keepRecent(id, raw)
        const h = await this.reader.header(rawSource(raw), id)
        // A ball from a peer goes to the disk level only: a peer is near, and one
        // pass over a large file must not churn the memory level (it takes balls read often).
        const levels = outcome === 'remoteHit' && this.diskBins.length > 0 ? ['disk'] : ['mem', 'disk']
        for (const level of levels) {
          for (const bin of this.bins.filter((b) => b.level === level)) {
            await this.cacheCopy(bin, id, raw.subarray(0, h.length), raw.subarray(h.length, h.length + h.size)).catch(() => {})
            if (bin.has(id)) break
          }
        }
      }).catch(() => {}).finally(() => {
        this.fetches.delete(id)
        this.promotions.delete(id)
      }))
    }
    return await pending
  }

  // The whole ball, checked: from the peers holding it, best first, then the cloud tier.
  private async fetchVerified (id: string): Promise<Fetched> {
    let failure: unknown
    for (const source of this.remote?.sources(id) ?? []) {
      try {
        const raw = await source.readBall(id)
        if (!checkBall(id, raw)) throw new ChaacError('CHAAC_BALL_CORRUPT', `ball ${id}: the copy on peer ${source.agent} fails its hash`, { ball: id })
        return { raw, outcome: 'remoteHit' }
      } catch (err) {
        failure = err
        this.peerFailed(id, source, err)
      }
    }
    if (!this.cloud) throw aboutBall(failure, id) ?? new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no copy in any bin, on any peer, and no cloud tier`, { ball: id })
    // One request for the whole ball: the header comes with it.
    const raw = await this.cloud.readBall(id)
    if (!checkBall(id, raw)) throw new ChaacError('CHAAC_BALL_CORRUPT', `ball ${id}: the cloud tier's copy fails its hash`, { ball: id })
    return { raw, outcome: 'miss' }
  }
}

interface Fetched { raw: Buffer, outcome: ReadOutcome }

const rawSource = (raw: Buffer): BallSource => ({ readRaw: async (_, start, len) => raw.subarray(start, start + len) })

// A peer's error does not know which ball it was asked for; the log line of the failed read names it.
function aboutBall (err: unknown, id: string): unknown {
  return err instanceof ChaacError && err.ball === undefined ? new ChaacError(err.code, err.message, { cause: err, ball: id }) : err
}
