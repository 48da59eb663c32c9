// The read path of a ball: local bins (memory level, then disk level), then a
// peer holding it, then the cloud tier, each read counted as one outcome;
// read-ahead, the balls fetched lately kept whole in memory, and promotions
// of balls read often from the disk level into the memory level. Every byte
// handed out is checked against the ball's hash.
import type { CloudTier } from '../cloud/cloud-tier.ts'
import { ChaacError, isChaacError } from '../errors.ts'
import { checkWholeBall } from '../store/ball-check.ts'
import { headerLength, type BallHeader } from '../store/ball-codec.ts'
import type { Bin } from '../store/bin.ts'
import { Lru } from '../store/lru.ts'
import type { BallSource, VerifiedReader } from '../store/verified-reader.ts'
import type { LocalBalls } from './local.ts'
import type { ReadOutcome, RemoteBalls, RemoteSource } from './types.ts'

// Fetches a reader may have running ahead of it at once.
const MAX_FETCHES_AHEAD = 4
// Balls fetched lately are kept whole in memory up to this many bytes: a
// sequential reader reads each in many pieces right after it arrives.
const RECENT_BYTES = 32 * 1024 * 1024

export interface BallReaderOptions {
  local: LocalBalls
  /** Checks every block read (shared with the writer: one cache of headers). */
  verified: VerifiedReader
  cloud?: CloudTier
  /** The data plane, in a cluster: peers holding balls. */
  remote?: RemoteBalls
  /**
   * Reads of a disk copy before the ball enters the memory level (default 64,
   * about two sequential passes of a 4 MiB ball): one pass over a large file,
   * or scattered random reads, must not churn the memory level.
   */
  promoteAfterReads?: number
  log?: { warn: (obj: object, msg: string) => void }
}

export class BallReader {
  readonly outcomes: Record<ReadOutcome, number> = { localHit: 0, remoteHit: 0, miss: 0, skip: 0 }
  private readonly local: LocalBalls
  private readonly verified: VerifiedReader
  private readonly fetches = new Map<string, Promise<Fetched>>()
  // Fetches whose bytes have not arrived yet (those being cached no longer count against read-ahead).
  private fetching = 0
  // Balls fetched lately, whole and checked, oldest first.
  private readonly recent = new Map<string, Buffer>()
  private recentBytes = 0
  // Balls fetched ahead of a reader, and where they came from.
  private readonly fetchedAhead = new Lru<string, ReadOutcome>(1024)
  private readonly promotions = new Map<string, Promise<void>>()
  // Bytes read from the disk level not yet spent on promotions. Copying a
  // ball into the memory level costs its whole size, so the memory level
  // takes at most as many bytes as readers took from the disk level: random
  // reads of a few pages each over a file larger than the memory level would
  // otherwise copy whole balls in and out (measured: 4 KiB random reads at a
  // tenth of the rate with the memory level than without).
  private promoteCredit = 0

  constructor (private readonly opts: BallReaderOptions) {
    this.local = opts.local
    this.verified = opts.verified
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
    for (const bin of this.local.bins) {
      if (!bin.has(id)) continue
      try {
        const data = await this.verified.read(bin, id, offset, length, into)
        this.count(id, 'localHit')
        if (bin.level === 'disk' && !skipCache) this.readFromDisk(bin, id, data.length)
        return data
      } catch (err) {
        failure = err
        // A copy that could not be read (e.g. EMFILE) may well be good: keep it, it may be the only one.
        if (isChaacError(err, 'CHAAC_IO')) continue
        if (!isChaacError(err, 'CHAAC_BALL_CORRUPT') && !isChaacError(err, 'CHAAC_BALL_MISSING')) throw err
        this.opts.log?.warn({ ball: id, bin: bin.dir, err: (err as Error).message }, 'dropping a bad copy of a ball')
        await this.local.dropCopy(bin, id)
      }
    }
    if (skipCache) return await this.readUncached(id, offset, length, into, failure)
    if (!this.opts.cloud && !this.opts.remote) throw failure ?? new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no copy in any bin and no cloud tier`, { ball: id })
    const { raw, outcome } = await this.fetchIntoCache(id)
    this.count(id, outcome)
    return await this.slice(id, raw, offset, length)
  }

  // Data bytes of a whole stored ball that was checked when it was fetched: no need to hash them again.
  private async slice (id: string, raw: Buffer, offset: number, length: number): Promise<Buffer> {
    const h = await this.verified.header(rawSource(raw), id)
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
    for (const source of this.opts.remote?.sources(id) ?? []) {
      try {
        const data = await this.verified.read(source, id, offset, length, into)
        this.outcomes.remoteHit++
        return data
      } catch (err) {
        failure = err
        this.peerFailed(id, source, err)
      }
    }
    if (!this.opts.cloud) throw aboutBall(failure, id) ?? new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no copy in any bin, on any peer, and no cloud tier`, { ball: id })
    const data = await this.verified.read(this.opts.cloud, id, offset, length, into)
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
    const bin = this.local.bins.find((b) => b.has(id))
    if (!bin) return undefined
    try {
      const header = await this.verified.header(bin, id)
      return { path: bin.pathOf(id), header, readsToPromote: this.readsToPromote(bin, id) }
    } catch {
      return undefined
    }
  }

  // Reads of a disk copy after which it is promoted into the memory level (0: never).
  private readsToPromote (bin: Bin, id: string): number {
    if (bin.level !== 'disk' || !this.local.bins.some((b) => b.level === 'mem')) return 0
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
    const bin = this.local.bins.find((b) => b.has(id))
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
    const room = this.local.bins.reduce((sum, b) => b.level === 'mem' ? sum + b.capacity : sum, 0)
    this.promoteCredit = Math.min(room, this.promoteCredit + bytes)
  }

  /** Whether a bin of this agent holds the ball. */
  isLocal (id: string): boolean {
    return this.local.bins.some((b) => b.has(id))
  }

  /**
   * Read-ahead: fetches a ball from a peer or the cloud tier before a
   * sequential reader asks for it, so that the next request overlaps the
   * reading of this one.
   */
  prefetch (id: string): void {
    if ((!this.opts.cloud && !this.opts.remote) || this.fetches.has(id) || this.fetching >= MAX_FETCHES_AHEAD || this.local.isLocal(id)) return
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

  /** Waits for the fetches of the moment and the copies into the cache. */
  async settle (): Promise<void> {
    await Promise.allSettled([...this.fetches.values()])
    await Promise.allSettled([...this.promotions.values()])
  }

  // Copies a ball read from the disk level into the memory level, in the background.
  private promote (id: string): void {
    const mem = this.local.bins.find((b) => b.level === 'mem' && !b.has(id))
    const disk = this.local.diskBins.find((b) => b.has(id))
    const bytes = disk?.entries.get(id)?.bytes
    // Readers read the data, not the header in front of it (headerLength of the stored size is a little more than it).
    const data = bytes === undefined ? 0 : bytes - headerLength(bytes)
    if (!mem || !disk || bytes === undefined || this.promotions.has(id) || this.promoteCredit < data) return
    this.promoteCredit -= data
    this.promotions.set(id, (async () => {
      if (mem.has(id) || !await this.local.makeRoom(mem, bytes)) return
      await mem.copyFrom(disk, id, bytes)
      this.local.noteLater(mem, id, bytes, true, { cached: true })
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
        const h = await this.verified.header(rawSource(raw), id)
        // A ball from a peer goes to the disk level only: a peer is near, and one
        // pass over a large file must not churn the memory level (it takes balls read often).
        const levels = outcome === 'remoteHit' && this.local.diskBins.length > 0 ? ['disk'] : ['mem', 'disk']
        for (const level of levels) {
          for (const bin of this.local.bins.filter((b) => b.level === level)) {
            await this.local.cacheCopy(bin, id, raw.subarray(0, h.length), raw.subarray(h.length, h.length + h.size)).catch(() => {})
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
    for (const source of this.opts.remote?.sources(id) ?? []) {
      try {
        const raw = await source.readBall(id)
        if (await checkWholeBall(id, raw) === null) throw new ChaacError('CHAAC_BALL_CORRUPT', `ball ${id}: the copy on peer ${source.agent} fails its hash`, { ball: id })
        return { raw, outcome: 'remoteHit' }
      } catch (err) {
        failure = err
        this.peerFailed(id, source, err)
      }
    }
    if (!this.opts.cloud) throw aboutBall(failure, id) ?? new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no copy in any bin, on any peer, and no cloud tier`, { ball: id })
    // One request for the whole ball: the header comes with it.
    const raw = await this.opts.cloud.readBall(id)
    if (await checkWholeBall(id, raw) === null) throw new ChaacError('CHAAC_BALL_CORRUPT', `ball ${id}: the cloud tier's copy fails its hash`, { ball: id })
    return { raw, outcome: 'miss' }
  }
}

interface Fetched { raw: Buffer, outcome: ReadOutcome }

const rawSource = (raw: Buffer): BallSource => ({ readRaw: async (_, start, len) => raw.subarray(start, start + len) })

// A peer's error does not know which ball it was asked for; the log line of the failed read names it.
function aboutBall (err: unknown, id: string): unknown {
  return err instanceof ChaacError && err.ball === undefined ? new ChaacError(err.code, err.message, { cause: err, ball: id }) : err
}
