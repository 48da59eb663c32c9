// This agent's bins by level, shared by the reader and the writer (and
// served to peers by the data plane): durable copies and caches, the pins of
// balls written for content not yet committed, new balls staged while they
// are placed, and eviction within each bin's hard capacity. It keeps the map
// of balls in step through the callbacks it is given (record, release).
import { EventEmitter } from 'node:events'
import { ChaacError, isChaacError } from '../errors.ts'
import { checkWholeBall } from '../store/ball-check.ts'
import type { Bin, EvictionPolicy } from '../store/bin.ts'
import type { CopyKind, NewBall } from './types.ts'

export interface LocalBallsOptions {
  bins: Bin[]
  eviction: EvictionPolicy
  /** Whether the cloud tier is known to hold the ball (kept by the data pool). */
  inCloud: (id: string) => boolean
  /** Whether an agent alive holds a copy of the ball that is not a cache (in a cluster; kept by the data pool). */
  durableElsewhere?: (id: string) => boolean
  /** Keeps the map of balls in step with the bins; awaited where a copy must be known before a commit. */
  record?: (binId: string, id: string, bytes: number, present: boolean, kind?: CopyKind) => Promise<void>
  /** Whether a copy of a ball no file references may go: the data pool takes it off the map if so. */
  release?: (binId: string, id: string) => Promise<boolean>
  log?: { warn: (obj: object, msg: string) => void }
}

export interface LocalEvents {
  /** A bin gained or lost a copy of a ball. */
  copy: [binId: string, ballId: string, bytes: number, present: boolean]
}

export class LocalBalls extends EventEmitter<LocalEvents> {
  readonly bins: Bin[]
  // New balls being placed: peers fetch them from here meanwhile.
  private readonly staged = new Map<string, { ball: NewBall, n: number }>()
  // Balls written for content not yet committed: garbage collection leaves them alone.
  private readonly pins = new Map<string, number>()

  constructor (private readonly opts: LocalBallsOptions) {
    super()
    this.bins = [...opts.bins]
    this.sortBins()
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
          const ball = await checkWholeBall(id, raw)
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

  /** Takes one pin off the ball; true when the last pin went. */
  dropPin (id: string): boolean {
    const n = (this.pins.get(id) ?? 0) - 1
    if (n > 0) this.pins.set(id, n)
    else this.pins.delete(id)
    return n <= 0
  }

  isPinned (id: string): boolean {
    return this.pins.has(id)
  }

  /** A writer is storing the ball: it stays (forget refuses it) until its pins go. */
  pin (id: string): void {
    this.pins.set(id, (this.pins.get(id) ?? 0) + 1)
  }

  /** Whether a bin of this agent holds the ball. */
  isLocal (id: string): boolean {
    return this.bins.some((b) => b.has(id))
  }

  /** Makes this agent's durable copies of the balls safe from a power loss. */
  async syncLocal (ids: string[]): Promise<void> {
    await Promise.all(this.durableBins().map(async (b) => await b.sync(ids)))
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

  durableBins (): Bin[] {
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
    return bin.entries.get(id)?.cached === true && (this.opts.durableElsewhere?.(id) ?? false)
  }

  // Concurrent writers may take the room freed for this one, so victims are
  // chosen again until the reservation holds or nothing more may go.
  async makeRoom (bin: Bin, bytes: number): Promise<boolean> {
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
      const ball = await checkWholeBall(id, raw)
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
  async storeLocal (ball: NewBall, opts: { bin?: string, writer?: string } = {}): Promise<string> {
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

  async cacheCopy (bin: Bin, id: string, header: Buffer, data: Buffer): Promise<void> {
    const bytes = header.length + data.length
    if (bin.has(id) || !await this.makeRoom(bin, bytes)) return
    await bin.write(id, header, data, true)
    this.noteLater(bin, id, bytes, true, { cached: true })
  }

  async dropCopy (bin: Bin, id: string): Promise<void> {
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
  noteLater (bin: Bin, id: string, bytes: number, present: boolean, kind: CopyKind = {}): void {
    this.note(bin, id, bytes, present, kind).catch((err) => {
      this.opts.log?.warn({ ball: id, bin: bin.dir, err: (err as Error).message }, 'could not update the map of balls')
    })
  }

  /** Serves a new ball to peers (rawRange) while it is being placed; stages of one ball nest. */
  stage (ball: NewBall): void {
    const staged = this.staged.get(ball.id) ?? { ball, n: 0 }
    staged.n++
    this.staged.set(ball.id, staged)
  }

  unstage (id: string): void {
    const staged = this.staged.get(id)
    if (staged && --staged.n === 0) this.staged.delete(id)
  }

  /** Closes the bins. */
  async close (): Promise<void> {
    await Promise.all(this.bins.map(async (b) => await b.close()))
  }
}
