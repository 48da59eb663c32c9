// The agent's local store: its bins by level, the cloud tier behind them, the
// read path (memory level, then disk level, then cloud tier) with its
// outcomes, and cache eviction within each bin's hard capacity.
import { EventEmitter } from 'node:events'
import type { CloudTier } from '../cloud/cloud-tier.ts'
import { ChaacError, isChaacError } from '../errors.ts'
import { encodeBall } from './ball-codec.ts'
import type { Bin, EvictionPolicy } from './bin.ts'
import { Lru } from './lru.ts'
import { VerifiedReader, type BallSource } from './verified-reader.ts'

// Cloud fetches a reader may have running ahead of it at once.
const MAX_FETCHES_AHEAD = 4

export type ReadOutcome = 'localHit' | 'remoteHit' | 'miss' | 'skip'
export type WritePolicy = 'through' | 'async' | 'none'

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
  private readonly reader = new VerifiedReader()
  private readonly fetches = new Map<string, Promise<Buffer>>()
  // Fetched balls whose bytes are at hand while they are being cached.
  private readonly fetched = new Set<string>()
  private readonly fetchedAhead = new Lru<string, true>(1024)
  private readonly promotions = new Map<string, Promise<void>>()
  private readonly cloudOps = new Map<string, Promise<void>>()
  // Balls written for content not yet committed: garbage collection leaves them alone.
  private readonly pins = new Map<string, number>()

  constructor (private readonly opts: BallStoreOptions) {
    super()
    // Faster levels first: that is the order reads try them in.
    this.bins = [...opts.bins].sort((a, b) => Number(a.level === 'disk') - Number(b.level === 'disk'))
    this.cloud = opts.cloud
    this.writePolicy = opts.cloud ? opts.writePolicy : 'none'
  }

  get diskBins (): Bin[] {
    return this.bins.filter((b) => b.level === 'disk')
  }

  binsHolding (id: string): Bin[] {
    return this.bins.filter((b) => b.has(id))
  }

  /**
   * Stores a new ball in a bin (and, with the `through` policy, in the cloud
   * tier) and returns its id. Identical content is stored once.
   */
  async put (data: Buffer): Promise<string> {
    const { id, header } = encodeBall(data)
    this.pin(id)
    try {
      const upload = this.writePolicy === 'through' && !this.opts.inCloud(id) ? this.uploadBall(id, header, data) : undefined
      const local = this.durableBins().some((b) => b.has(id)) ? undefined : this.storeLocal(id, header, data)
      await Promise.all([local, upload])
    } catch (err) {
      this.unpin(id)
      throw err
    }
    return id
  }

  /** Every put pins its ball; the writer unpins it once its file is committed (or given up). */
  unpin (id: string): void {
    const n = (this.pins.get(id) ?? 0) - 1
    if (n > 0) this.pins.set(id, n)
    else this.pins.delete(id)
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
    let failure: unknown
    for (const bin of this.bins) {
      if (!bin.has(id)) continue
      try {
        const data = await this.reader.read(bin, id, offset, length, into)
        this.count(id, 'localHit')
        if (bin.level === 'disk' && !skipCache && (bin.entries.get(id)?.uses ?? 0) >= (this.opts.promoteAfterReads ?? 64)) this.promote(id)
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
    if (!this.cloud) throw failure ?? new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no copy in any bin and no cloud tier`)
    if (skipCache) {
      const data = await this.reader.read(this.cloud, id, offset, length, into)
      this.outcomes.skip++
      return data
    }
    // Bytes fetched a moment ago and not yet in a bin are in this agent's memory: a local cache hit.
    const ready = this.fetched.has(id)
    const whole = await this.fetchIntoCache(id)
    this.count(id, ready ? 'localHit' : 'miss')
    return await this.reader.read(rawSource(whole), id, offset, length)
  }

  /** Whether a bin of this agent holds the ball. */
  isLocal (id: string): boolean {
    return this.bins.some((b) => b.has(id))
  }

  /**
   * Read-ahead: fetches a ball from the cloud tier before a sequential reader
   * asks for it, so that the next request overlaps the reading of this one.
   */
  prefetch (id: string): void {
    if (!this.cloud || this.fetches.has(id) || this.fetches.size >= MAX_FETCHES_AHEAD || this.isLocal(id)) return
    this.fetchedAhead.set(id, true)
    this.fetchIntoCache(id).catch(() => {})
  }

  // A ball fetched ahead came from the cloud tier for this reader: its first read is a miss wherever it finds it now.
  private count (id: string, outcome: ReadOutcome): void {
    if (this.fetchedAhead.get(id) !== undefined) {
      this.fetchedAhead.delete(id)
      outcome = 'miss'
    }
    this.outcomes[outcome]++
  }

  /** Makes the local durable copies of balls safe from a power loss (fsync). */
  async sync (ids: string[]): Promise<void> {
    await Promise.all(this.durableBins().map(async (b) => await b.sync(ids)))
  }

  /** Copies a ball from a local bin to the cloud tier (the background uploader's job). */
  async upload (id: string): Promise<void> {
    if (!this.cloud) return
    const bin = this.bins.find((b) => b.has(id))
    if (!bin) throw new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no local copy to upload`)
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
    await Promise.all(this.bins.map(async (b) => await this.dropCopy(b, id)))
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

  /** Waits for background work, then closes the bins and the cloud tier. */
  async close (): Promise<void> {
    await this.settle()
    await Promise.all(this.bins.map(async (b) => await b.close()))
    await this.cloud?.close()
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

  // A copy may be dropped when another durable copy exists: in the cloud
  // tier or another disk bin; a memory-level copy when any disk copy exists.
  private evictable (bin: Bin, id: string): boolean {
    if (this.opts.inCloud(id)) return true
    return this.diskBins.some((b) => b !== bin && b.has(id))
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
    return this.durableBins()
      .filter((b) => b.capacity >= bytes)
      .sort((a, b) => b.free / b.capacity - a.free / a.capacity)
  }

  private async storeLocal (id: string, header: Buffer, data: Buffer): Promise<void> {
    const bytes = header.length + data.length
    for (const bin of this.placementFor(bytes)) {
      if (!await this.makeRoom(bin, bytes)) continue
      await bin.write(id, header, data)
      this.emit('copy', bin.id, id, bytes, true)
      return
    }
    throw new ChaacError('CHAAC_NO_SPACE', `no bin has room for a ball of ${bytes} bytes`)
  }

  private async cacheCopy (bin: Bin, id: string, header: Buffer, data: Buffer): Promise<void> {
    const bytes = header.length + data.length
    if (bin.has(id) || !await this.makeRoom(bin, bytes)) return
    await bin.write(id, header, data)
    this.emit('copy', bin.id, id, bytes, true)
  }

  private async dropCopy (bin: Bin, id: string): Promise<void> {
    const entry = bin.entries.get(id)
    if (!entry) return
    await bin.delete(id)
    this.emit('copy', bin.id, id, entry.bytes, false)
  }

  // Copies a ball read from the disk level into the memory level, in the background.
  private promote (id: string): void {
    const mem = this.bins.find((b) => b.level === 'mem' && !b.has(id))
    const disk = this.diskBins.find((b) => b.has(id))
    if (!mem || !disk || this.promotions.has(id)) return
    this.promotions.set(id, (async () => {
      const bytes = disk.entries.get(id)?.bytes
      if (bytes === undefined || mem.has(id) || !await this.makeRoom(mem, bytes)) return
      await mem.copyFrom(disk, id, bytes)
      this.emit('copy', mem.id, id, bytes, true)
    })().catch((err) => {
      this.opts.log?.warn({ ball: id, err: (err as Error).message }, 'could not cache a ball in the memory level')
    }).finally(() => this.promotions.delete(id)))
  }

  // One fetch per ball however many readers want it; the whole ball is
  // verified and handed to the readers, then kept in each level (the first
  // bin of the level with room) in the background. Until it is kept, later
  // readers are served from the fetched bytes rather than fetching again.
  private async fetchIntoCache (id: string): Promise<Buffer> {
    let pending = this.fetches.get(id)
    if (!pending) {
      const fetched = this.fetchVerified(id)
      pending = fetched
      this.fetches.set(id, fetched)
      this.promotions.set(id, fetched.then(async (raw) => {
        this.fetched.add(id)
        const h = await this.reader.header(rawSource(raw), id)
        for (const level of ['mem', 'disk']) {
          for (const bin of this.bins.filter((b) => b.level === level)) {
            await this.cacheCopy(bin, id, raw.subarray(0, h.length), raw.subarray(h.length, h.length + h.size)).catch(() => {})
            if (bin.has(id)) break
          }
        }
      }).catch(() => {}).finally(() => {
        this.fetched.delete(id)
        this.fetches.delete(id)
        this.promotions.delete(id)
      }))
    }
    return await pending
  }

  private async fetchVerified (id: string): Promise<Buffer> {
    // One request for the whole ball: the header comes with it.
    const raw = await (this.cloud as CloudTier).readBall(id)
    const h = await this.reader.header(rawSource(raw), id)
    await this.reader.read(rawSource(raw), id, 0, h.size)
    return raw
  }
}

const rawSource = (raw: Buffer): BallSource => ({ readRaw: async (_, start, len) => raw.subarray(start, start + len) })
