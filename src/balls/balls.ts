// What fs/ sees of a ball's way: the reader and the writer over this agent's
// bins, given the cloud tier and, in a cluster, the data plane at
// construction. One object so that a file handle needs one thing.
import type { CloudTier } from '../cloud/cloud-tier.ts'
import type { BallHeader } from '../store/ball-codec.ts'
import type { Bin } from '../store/bin.ts'
import { Hasher } from '../store/hasher.ts'
import { VerifiedReader } from '../store/verified-reader.ts'
import type { LocalBalls } from './local.ts'
import { BallReader } from './reader.ts'
import type { ReadOutcome, RemoteBalls, WritePolicy } from './types.ts'
import { BallWriter } from './writer.ts'

export interface BallsOptions {
  local: LocalBalls
  cloud?: CloudTier
  writePolicy: WritePolicy
  /** Whether the cloud tier is known to hold the ball (kept by the data pool). */
  inCloud: (id: string) => boolean
  /** The data plane, in a cluster: peers holding balls, and where new balls go. */
  remote?: RemoteBalls
  /** Reads of a disk copy before the ball enters the memory level (BallReader's option). */
  promoteAfterReads?: number
  log?: { warn: (obj: object, msg: string) => void }
}

export class Balls {
  readonly local: LocalBalls
  readonly reader: BallReader
  readonly writer: BallWriter
  readonly cloud?: CloudTier
  private readonly hasher = new Hasher()

  constructor (opts: BallsOptions) {
    const { local, cloud, remote } = opts
    const verified = new VerifiedReader({ blockHashes: async (data) => await this.hasher.blockHashes(data) })
    this.local = local
    this.cloud = cloud
    this.reader = new BallReader({ local, verified, cloud, remote, promoteAfterReads: opts.promoteAfterReads, log: opts.log })
    this.writer = new BallWriter({ local, hasher: this.hasher, verified, cloud, remote, writePolicy: opts.writePolicy, inCloud: opts.inCloud })
  }

  get bins (): Bin[] { return this.local.bins }
  get diskBins (): Bin[] { return this.local.diskBins }
  get writePolicy (): WritePolicy { return this.writer.writePolicy }
  get outcomes (): Record<ReadOutcome, number> { return this.reader.outcomes }

  binsHolding (id: string): Bin[] { return this.local.binsHolding(id) }
  isLocal (id: string): boolean { return this.local.isLocal(id) }
  isPinned (id: string): boolean { return this.local.isPinned(id) }
  localBalls (): Set<string> { return this.local.localBalls() }
  async forget (id: string): Promise<boolean> { return await this.local.forget(id) }

  async read (id: string, offset: number, length: number, skipCache: boolean, into?: Buffer): Promise<Buffer> {
    return await this.reader.read(id, offset, length, skipCache, into)
  }

  prefetch (id: string): void { this.reader.prefetch(id) }
  async localCopy (id: string): Promise<{ path: string, header: BallHeader, readsToPromote: number } | undefined> {
    return await this.reader.localCopy(id)
  }

  noteLocalReads (id: string, reads: number): void { this.reader.noteLocalReads(id, reads) }
  noteLocalBytes (bytes: number): void { this.reader.noteLocalBytes(bytes) }

  async put (data: Buffer): Promise<string> { return await this.writer.put(data) }
  unpin (id: string): void { this.writer.unpin(id) }
  async sync (ids: string[]): Promise<void> { await this.writer.sync(ids) }
  async upload (id: string): Promise<void> { await this.writer.upload(id) }
  async deleteFromCloud (id: string): Promise<void> { await this.writer.deleteFromCloud(id) }

  /** Waits for the background work of the moment: cloud fetches and operations, copies into the cache. */
  async settle (): Promise<void> {
    await Promise.all([this.reader.settle(), this.writer.settle()])
  }

  /** Waits for background work, then closes the bins, the cloud tier and the hash workers. */
  async close (): Promise<void> {
    await this.settle()
    await this.local.close()
    await this.cloud?.close()
    await this.hasher.close()
  }
}
