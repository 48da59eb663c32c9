// The write path of a ball: hash it, place it (this agent's bins, or where
// the data plane places it, staged here meanwhile for the peers that pull
// it), pin it until its file is committed, and copy it to the cloud tier by
// the write policy (through: before put resolves; async: the uploader's job).
import { EventEmitter } from 'node:events'
import type { CloudTier } from '../cloud/cloud-tier.ts'
import { ChaacError } from '../errors.ts'
import type { Hasher } from '../store/hasher.ts'
import type { VerifiedReader } from '../store/verified-reader.ts'
import type { LocalBalls } from './local.ts'
import type { NewBall, RemoteBalls, WritePolicy } from './types.ts'

export interface BallWriterOptions {
  local: LocalBalls
  hasher: Hasher
  /** Reads back a local copy to upload (shared with the reader). */
  verified: VerifiedReader
  cloud?: CloudTier
  writePolicy: WritePolicy
  /** Whether the cloud tier is known to hold the ball (kept by the data pool). */
  inCloud: (id: string) => boolean
  /** The data plane, in a cluster: where new balls go. */
  remote?: RemoteBalls
}

export interface WriterEvents {
  /** The cloud tier now holds the ball. */
  uploaded: [ballId: string, bytes: number]
}

export class BallWriter extends EventEmitter<WriterEvents> {
  readonly writePolicy: WritePolicy
  private readonly local: LocalBalls
  private readonly hasher: Hasher
  private readonly cloudOps = new Map<string, Promise<void>>()

  constructor (private readonly opts: BallWriterOptions) {
    super()
    this.local = opts.local
    this.hasher = opts.hasher
    this.writePolicy = opts.cloud ? opts.writePolicy : 'none'
  }

  /**
   * Stores a new ball in a bin (and, with the `through` policy, in the cloud
   * tier) and returns its id. Identical content is stored once. `data` must
   * not change until this settles.
   */
  async put (data: Buffer): Promise<string> {
    const { id, header } = await this.hasher.encode(data)
    this.local.pin(id)
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
    const remote = this.opts.remote
    if (!remote) {
      if (!this.local.durableBins().some((b) => b.has(ball.id))) await this.local.storeLocal(ball)
      return
    }
    // Peers asked to pull the ball fetch it from here meanwhile.
    this.local.stage(ball)
    try {
      await remote.place(ball)
    } finally {
      this.local.unstage(ball.id)
    }
  }

  /** Every put pins its ball; the writer unpins it once its file is committed (or given up). */
  unpin (id: string): void {
    if (this.local.dropPin(id)) this.opts.remote?.unpinned(id)
  }

  private async uploadBall (id: string, header: Buffer, data: Buffer): Promise<void> {
    await this.cloudOp(id, async (cloud) => await cloud.put(id, header, data))
    this.emit('uploaded', id, header.length + data.length)
  }

  // Uploads and deletes of one ball run one after the other, so a delete
  // that was decided before a writer brought the same content back cannot
  // land after that writer's upload.
  private async cloudOp (id: string, fn: (cloud: CloudTier) => Promise<void>): Promise<void> {
    const cloud = this.opts.cloud
    if (!cloud) return
    const before = this.cloudOps.get(id) ?? Promise.resolve()
    const op = before.catch(() => {}).then(async () => await fn(cloud))
    const settled = op.catch(() => {})
    this.cloudOps.set(id, settled)
    void settled.then(() => { if (this.cloudOps.get(id) === settled) this.cloudOps.delete(id) })
    await op
  }

  /** Makes every durable copy of the balls safe from a power loss (fsync), here and on peers. */
  async sync (ids: string[]): Promise<void> {
    await Promise.all([this.local.syncLocal(ids), this.opts.remote?.sync(ids)])
  }

  /** Copies a ball from a local bin to the cloud tier (the background uploader's job). */
  async upload (id: string): Promise<void> {
    if (!this.opts.cloud) return
    const bin = this.local.bins.find((b) => b.has(id))
    if (!bin) throw new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: no local copy to upload`, { ball: id })
    const h = await this.opts.verified.header(bin, id)
    const data = await this.opts.verified.read(bin, id, 0, h.size)
    await this.uploadBall(id, await bin.readRaw(id, 0, h.length), data)
  }

  async deleteFromCloud (id: string): Promise<void> {
    await this.cloudOp(id, async (cloud) => await cloud.delete(id))
  }

  /** Waits for the cloud operations of the moment. */
  async settle (): Promise<void> {
    await Promise.allSettled([...this.cloudOps.values()])
  }
}
