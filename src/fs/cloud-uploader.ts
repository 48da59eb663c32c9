// The `async` write policy: balls committed to files are copied to the cloud
// tier in the background. The queue lives in the data pool (LevelDB), written
// in the same batch as the file's ball list, so it survives a crash. In a
// cluster the queue is shared: each agent uploads the balls its bins hold.
import type { Pool } from '../meta/pool.ts'
import type { Balls } from '../balls/balls.ts'

const CONCURRENCY = 2
const MAX_BACKOFF_MS = 30_000

export class CloudUploader {
  private readonly inFlight = new Set<string>()
  private backoffMs = 0
  private timer?: NodeJS.Timeout
  private closed = false
  private idle = Promise.resolve()

  constructor (
    private readonly pool: Pool,
    private readonly store: Balls,
    private readonly log: { warn: (obj: object, msg: string) => void }
  ) {
    pool.on('queued', () => this.pump())
  }

  get depth (): number {
    return this.pool.uploads.size
  }

  start (): void {
    this.pump()
  }

  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.timer)
    await this.idle
  }

  private pump (): void {
    if (this.closed || this.timer) return
    const running: Array<Promise<void>> = []
    for (const id of this.pool.uploads) {
      if (this.inFlight.size >= CONCURRENCY) break
      // Another agent's ball: that agent uploads it (one nothing references is dropped by any).
      if (this.inFlight.has(id) || (this.pool.isReferenced(id) && this.store.binsHolding(id).length === 0)) continue
      this.inFlight.add(id)
      running.push(this.uploadOne(id).finally(() => {
        this.inFlight.delete(id)
        this.pump()
      }))
    }
    if (running.length > 0) this.idle = Promise.allSettled([this.idle, ...running]).then(() => {})
  }

  private async uploadOne (id: string): Promise<void> {
    if (!this.pool.isReferenced(id)) {
      await this.pool.dropUpload(id)
      return
    }
    try {
      await this.store.upload(id)
      this.backoffMs = 0
    } catch (err) {
      // The ball stays queued; try again later, waiting longer each time.
      this.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(500, this.backoffMs * 2))
      this.log.warn({ ball: id, err: (err as Error).message, retryInMs: this.backoffMs }, 'upload to the cloud tier failed')
      this.timer = setTimeout(() => {
        this.timer = undefined
        this.pump()
      }, this.backoffMs)
    }
  }
}
