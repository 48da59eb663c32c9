// Group commit for LevelDB: operations queued while a batch is being written
// go out together in the next one, in order. A caller's promise settles when
// the batch holding its operations is on disk (fsync'ed when any asked for it).
import type { Level } from 'level'

export type BatchOp = { type: 'put', key: string, value: Buffer } | { type: 'del', key: string }

interface Waiter { resolve: () => void, reject: (err: unknown) => void }

export class BatchWriter {
  private ops: BatchOp[] = []
  private waiters: Waiter[] = []
  private sync = false
  private running = false

  constructor (private readonly db: Level<string, Buffer>) {}

  write (ops: BatchOp[], sync = false): Promise<void> {
    this.ops.push(...ops)
    this.sync ||= sync
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }))
    if (!this.running) void this.drain()
    return done
  }

  private async drain (): Promise<void> {
    this.running = true
    while (this.waiters.length > 0) {
      const ops = this.ops
      const waiters = this.waiters
      const sync = this.sync
      this.ops = []
      this.waiters = []
      this.sync = false
      try {
        if (ops.length > 0) await this.db.batch(ops, { sync })
        for (const w of waiters) w.resolve()
      } catch (err) {
        for (const w of waiters) w.reject(err)
      }
    }
    this.running = false
  }
}
