// Group commit for LevelDB behind the data pool's journal. A batch is
// appended to the journal at once (safe from a crash of the agent from then
// on) and queued for LevelDB; batches queued while one is being written go
// out together in the next one, in order, each LevelDB batch naming the last
// journal record it holds. A caller's promise settles when its batch is in
// the journal, or, when it asked for sync, once the journal is on stable
// storage (fdatasync). LevelDB writes with sync only when a file of the
// journal is to be emptied, and for `flush`.
import type { Level } from 'level'
import { ChaacError } from '../errors.ts'
import { JOURNAL_SEQ_KEY, type Journal } from './journal.ts'

export type BatchOp = { type: 'put', key: string, value: Buffer } | { type: 'del', key: string }

// `sync`: only a LevelDB batch written with sync settles it (one already on its way without does not).
interface Waiter { seq: number, sync: boolean, resolve: () => void, reject: (err: unknown) => void }

// The last operation on each key, in their order: within one atomic batch an
// earlier operation on the same key is void (a file created and committed in
// one batch, the parent directory of many creates).
function latest (ops: BatchOp[]): BatchOp[] {
  const last = new Map<string, number>()
  ops.forEach((op, i) => last.set(op.key, i))
  return last.size === ops.length ? ops : ops.filter((op, i) => last.get(op.key) === i)
}

export class BatchWriter {
  private ops: BatchOp[] = []
  private sync = false
  private running = false
  // Journal records appended, and written to LevelDB.
  private seq: number
  private appliedSeq: number
  // The last journal record LevelDB holds on stable storage.
  private storedSeq: number
  // Callers waiting for LevelDB: sync writes, and `applied`.
  private waiters: Waiter[] = []
  private failure?: ChaacError

  /** `lastSeq`: the number of the last journal record, all of them already in LevelDB. */
  constructor (private readonly db: Level<string, Buffer>, private readonly journal: Journal, lastSeq: number) {
    this.seq = lastSeq
    this.appliedSeq = lastSeq
    this.storedSeq = lastSeq
  }

  async write (ops: BatchOp[], sync = false): Promise<void> {
    if (this.failure) throw this.failure
    if (ops.length > 0) {
      this.journal.append(this.seq + 1, ops)
      this.seq++
      this.ops.push(...ops)
    }
    if (this.appliedSeq !== this.seq) this.kick(false)
    if (sync) await this.journal.sync()
  }

  /** Resolves once LevelDB holds every batch written so far on stable storage (before the journal goes). */
  async flush (): Promise<void> {
    if (this.failure) throw this.failure
    this.sync = true
    const done = this.whenApplied(true)
    this.kick(true)
    await done
  }

  // Starts writing to LevelDB. Handing a batch to LevelDB takes the agent's
  // thread a while (encoding every operation): unless a caller waits for it,
  // that happens after the current callback, so the answer that the journal
  // made possible goes out first.
  private kick (now: boolean): void {
    if (this.running) return
    this.running = true
    if (now) void this.drain()
    else setImmediate(() => { void this.drain() })
  }

  /** Resolves once LevelDB holds every batch written so far (readers of LevelDB itself wait for this). */
  async applied (): Promise<void> {
    if (this.failure) throw this.failure
    if (this.appliedSeq < this.seq) await this.whenApplied(false)
  }

  private async whenApplied (sync: boolean): Promise<void> {
    await new Promise<void>((resolve, reject) => this.waiters.push({ seq: this.seq, sync, resolve, reject }))
  }

  private async drain (): Promise<void> {
    while (this.appliedSeq < this.seq || this.sync) {
      const ops = this.ops
      const seq = this.seq
      // With sync when asked to flush, and when that lets a full file of the journal go.
      const sync = this.sync || this.journal.waiting(seq)
      this.ops = []
      this.sync = false
      try {
        await this.db.batch([...latest(ops), { type: 'put', key: JOURNAL_SEQ_KEY, value: Buffer.from(String(seq)) }], { sync })
      } catch (err) {
        // The journal still holds these batches: the next start writes them again.
        this.failure = new ChaacError('CHAAC_META_FAILED', 'the data pool could not write to LevelDB', { cause: err })
        for (const w of this.waiters.splice(0)) w.reject(this.failure)
        break
      }
      this.appliedSeq = seq
      if (sync) this.storedSeq = seq
      const done = (w: Waiter): boolean => w.seq <= seq && (sync || !w.sync)
      const ready = this.waiters.filter(done)
      this.waiters = this.waiters.filter((w) => !done(w))
      for (const w of ready) w.resolve()
      this.journal.applied(this.storedSeq)
    }
    this.running = false
  }
}
