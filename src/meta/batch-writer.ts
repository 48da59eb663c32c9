// Group commit for LevelDB behind the data pool's journal. A batch is
// appended to the journal at once (safe from a crash of the agent from then
// on) and queued for LevelDB; batches queued while one is being written go
// out together in the next one, in order, each LevelDB batch naming the last
// journal record it holds. A caller's promise settles when its batch is in
// the journal, or, when it asked for sync, once the journal is on stable
// storage (fdatasync). LevelDB writes with sync only when a file of the
// journal is to be emptied, and for `flush`.
//
// LevelDB gets the batches a little later (APPLY_DELAY_MS), gathered: handing
// a batch to LevelDB costs the agent's thread about as much as the rest of a
// small commit, and a file committed again and again (a database's fsyncs)
// puts the same keys each time, of which LevelDB then gets only the last.
// Until then `pending` answers for the keys written.
import type { Level } from 'level'
import { ChaacError } from '../errors.ts'
import { JOURNAL_SEQ_KEY, type Journal } from './journal.ts'

export type BatchOp = { type: 'put', key: string, value: Buffer } | { type: 'del', key: string }

// `sync`: only a LevelDB batch written with sync settles it (one already on its way without does not).
interface Waiter { seq: number, sync: boolean, resolve: () => void, reject: (err: unknown) => void }

// How long batches gather before they go to LevelDB, and how many bytes at most.
const APPLY_DELAY_MS = 20
const APPLY_BYTES = 16 * 1024 * 1024

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
  private opsBytes = 0
  // The last operation on each key not yet in LevelDB: those gathering, then those being written.
  private gathering = new Map<string, BatchOp>()
  private writing = new Map<string, BatchOp>()
  private timer?: NodeJS.Timeout
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
      for (const op of ops) {
        this.ops.push(op)
        this.gathering.set(op.key, op)
        this.opsBytes += op.key.length + (op.type === 'put' ? op.value.length : 0)
      }
    }
    if (this.appliedSeq !== this.seq) this.kick(this.opsBytes >= APPLY_BYTES)
    if (sync) await this.journal.sync()
  }

  /**
   * A key's value as last written and not in LevelDB yet: its bytes, null
   * when it was deleted, undefined when LevelDB answers for it.
   */
  pending (key: string): Buffer | null | undefined {
    const op = this.gathering.get(key) ?? this.writing.get(key)
    return op === undefined ? undefined : op.type === 'put' ? op.value : null
  }

  /** Resolves once LevelDB holds every batch written so far on stable storage (before the journal goes). */
  async flush (): Promise<void> {
    if (this.failure) throw this.failure
    this.sync = true
    const done = this.whenApplied(true)
    this.kick(true)
    await done
  }

  // Starts writing to LevelDB: at once when a caller waits for it (or enough
  // has gathered), else after APPLY_DELAY_MS, so that the answers the journal
  // made possible go out first and later batches join.
  private kick (now: boolean): void {
    // A drain under way takes what gathers meanwhile.
    if (this.running) return
    if (now) {
      clearTimeout(this.timer)
      this.timer = undefined
      this.running = true
      void this.drain()
    } else {
      this.timer ??= setTimeout(() => {
        this.timer = undefined
        this.kick(true)
      }, APPLY_DELAY_MS)
    }
  }

  /** Resolves once LevelDB holds every batch written so far (readers of LevelDB itself wait for this). */
  async applied (): Promise<void> {
    if (this.failure) throw this.failure
    if (this.appliedSeq < this.seq) {
      const done = this.whenApplied(false)
      this.kick(true)
      await done
    }
  }

  private async whenApplied (sync: boolean): Promise<void> {
    await new Promise<void>((resolve, reject) => this.waiters.push({ seq: this.seq, sync, resolve, reject }))
  }

  private async drain (): Promise<void> {
    // Batches that gathered while one was written go at once only when someone waits for them.
    while (this.sync || (this.appliedSeq < this.seq && (this.waiters.length > 0 || this.opsBytes >= APPLY_BYTES))) {
      const ops = this.ops
      const seq = this.seq
      // With sync when asked to flush, and when that lets a full file of the journal go.
      const sync = this.sync || this.journal.waiting(seq)
      this.ops = []
      this.opsBytes = 0
      this.writing = this.gathering
      this.gathering = new Map()
      this.sync = false
      try {
        await this.db.batch([...latest(ops), { type: 'put', key: JOURNAL_SEQ_KEY, value: Buffer.from(String(seq)) }], { sync })
      } catch (err) {
        // The journal still holds these batches: the next start writes them again.
        this.failure = new ChaacError('CHAAC_META_FAILED', 'the data pool could not write to LevelDB', { cause: err })
        for (const w of this.waiters.splice(0)) w.reject(this.failure)
        break
      }
      this.writing = new Map()
      this.appliedSeq = seq
      if (sync) this.storedSeq = seq
      const done = (w: Waiter): boolean => w.seq <= seq && (sync || !w.sync)
      const ready = this.waiters.filter(done)
      this.waiters = this.waiters.filter((w) => !done(w))
      for (const w of ready) w.resolve()
      this.journal.applied(this.storedSeq)
    }
    this.running = false
    if (this.failure === undefined && this.appliedSeq < this.seq) this.kick(false)
  }
}
