// Deletes cloud copies of balls that no file has referenced for a grace
// period. The grace period covers writers of the same content that count on
// the cloud copy while their file is not committed yet; at deletion time the
// ball is checked again, under the same rules as local garbage.
import type { Pool } from '../meta/pool.ts'
import type { Balls } from '../balls/balls.ts'

const MAX_INTERVAL_MS = 60_000

export class CloudCollector {
  private timer?: NodeJS.Timeout
  private running = Promise.resolve()
  private closed = false

  constructor (
    private readonly pool: Pool,
    private readonly store: Balls,
    private readonly graceMs: number,
    private readonly log: { warn: (obj: object, msg: string) => void }
  ) {}

  /** Balls whose cloud copy waits for its grace period to end. */
  get pending (): number {
    return this.pool.garbage.size
  }

  start (): void {
    const interval = Math.max(100, Math.min(this.graceMs / 4, MAX_INTERVAL_MS))
    this.timer = setInterval(() => {
      this.running = this.running.then(async () => { await this.collect() })
    }, interval)
    this.timer.unref()
  }

  /** Stops collecting (it may start again: the background worker of a cluster on etcd moves between agents). */
  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.running
  }

  async close (): Promise<void> {
    this.closed = true
    await this.stop()
  }

  /** Deletes the cloud copies whose grace period has ended; returns how many went. */
  async collect (now = Date.now()): Promise<number> {
    let deleted = 0
    for (const [id, since] of [...this.pool.garbage]) {
      if (this.closed) break
      if (now - since < this.graceMs) continue
      if (this.inUse(id)) {
        await this.pool.keepBall(id)
        continue
      }
      // Both start before anything is awaited: from here on a writer of the
      // same content uploads it again, and its upload queues behind this delete.
      const unmarked = this.pool.markNotInCloud(id)
      const deleting = this.store.deleteFromCloud(id)
      try {
        await unmarked
        await deleting
      } catch (err) {
        await deleting.catch(() => {})
        this.log.warn({ ball: id, err: (err as Error).message }, 'could not delete a ball from the cloud tier; will try again')
        continue
      }
      deleted++
      // Copies left in bins go as their agents see the ball unreferenced; the record with the last of them.
      if (this.inUse(id) || (this.pool.balls.get(id)?.bins.length ?? 0) > 0) await this.pool.keepBall(id)
      else await this.pool.dropBall(id)
    }
    return deleted
  }

  private inUse (id: string): boolean {
    return this.pool.inUse(id) || this.store.isPinned(id)
  }
}
