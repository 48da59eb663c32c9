// The data pool: the namespace (inodes, directory entries, each file's ball
// list), the map of balls, the upload queue and the map of agents, persisted
// in LevelDB. In a cluster one agent runs it; the others keep replicas.
//
// The whole namespace is also held in memory (as MooseFS's master does), so
// lookups never wait on disk; every change is applied in memory and written
// as one atomic LevelDB batch, and the caller is answered once it is stored.
// Each stored batch is numbered and announced ('change'), in order: the
// change stream that replicas follow.
import { join } from 'node:path'
import { Level } from 'level'
import { ChaacError } from '../errors.ts'
import { BatchWriter, type BatchOp } from './batch-writer.ts'
import { JOURNAL_SEQ_KEY, Journal } from './journal.ts'
import type { Pool } from './pool.ts'
import { PoolChanges, type Change, type RunOptions } from './pool-changes.ts'
import { NEXT_INO_KEY, ROOT_INO, inlineHash, inlineKey, pooledKey, isBytesKey } from './schema.ts'

export class DataPool extends PoolChanges implements Pool {
  readonly reachable = true
  private readonly writer: BatchWriter
  // Changes made lazily: they go out with the next batch.
  private lazy: BatchOp[] = []
  private lastSeq = 0
  private origin: string

  private constructor (
    private readonly db: Level<string, Buffer>,
    private readonly journal: Journal,
    journalSeq: number,
    private readonly agentId: string,
    private readonly lazyCreates: boolean
  ) {
    super()
    this.writer = new BatchWriter(db, journal, journalSeq)
    this.origin = agentId
  }

  /**
   * Opens the pool in `dir`. `agentId` tags the changes made here in the
   * change stream. `lazyCreates` (default true) lets creates wait for the
   * next batch; a cluster turns it off, as a name must be visible to every
   * agent from the moment it is taken.
   */
  static async open (dir: string, opts: { agentId?: string, lazyCreates?: boolean } = {}): Promise<DataPool> {
    const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
    await db.open()
    const journal = Journal.open(join(dir, JOURNAL_FILE))
    const pool = new DataPool(db, journal, await replayJournal(db, journal), opts.agentId ?? '', opts.lazyCreates ?? true)
    await pool.load()
    return pool
  }

  private async load (): Promise<void> {
    // Inodes first: an entry is only kept when the inode it names exists.
    const rest: Array<[string, Buffer]> = []
    for await (const [key, value] of this.db.iterator()) {
      if (key[0] === 'i') this.apply(key, value)
      else rest.push([key, value])
    }
    const repairs: BatchOp[] = []
    for (const [key, value] of rest) if (!this.apply(key, value)) repairs.push({ type: 'del', key })
    if (!this.inodes.has(ROOT_INO)) repairs.push(this.makeRoot())
    if (repairs.length > 0) await this.writer.write(repairs, true)
  }

  /** The number of the last batch announced in the change stream. */
  get seq (): number {
    return this.lastSeq
  }

  /**
   * Runs `change` for agent `origin`: its batch is tagged with that agent in
   * the change stream. Every change here calls persist before its first
   * await, so the tag set around the call is the one persist sees.
   */
  onBehalfOf<T> (origin: string, change: () => Promise<T>): Promise<T> {
    this.origin = origin
    try {
      return change()
    } finally {
      this.origin = this.agentId
    }
  }

  /**
   * Stored records in key order after `after`, about `maxBytes` of them; `next`
   * is where the next page starts (null at the end). Read from LevelDB, so a
   * page holds only stored changes, each also in the change stream. Inline
   * file bytes stay here: replicas ask for them when a file is opened.
   */
  async records (after: string, maxBytes: number): Promise<{ records: Array<[string, Buffer]>, next: string | null }> {
    const records: Array<[string, Buffer]> = []
    let bytes = 0
    await this.writer.applied()
    for await (const [key, value] of this.db.iterator({ gt: after })) {
      if (isBytesKey(key)) continue
      if (bytes >= maxBytes) return { records, next: records[records.length - 1][0] }
      records.push([key, value])
      bytes += key.length + value.length
    }
    return { records, next: null }
  }

  /**
   * Every stored record, file bytes included, in key order, as LevelDB held
   * them at one moment after every change made so far (for `chaac meta dump`),
   * and the number of the last journal record they include.
   */
  async snapshot (): Promise<{ revision: number, records: AsyncIterable<[string, Buffer]> }> {
    await this.writer.applied()
    const snapshot = this.db.snapshot()
    const seq = await this.db.get(JOURNAL_SEQ_KEY, { snapshot })
    const db = this.db
    async function * records (): AsyncGenerator<[string, Buffer]> {
      try {
        yield * db.iterator({ snapshot })
      } finally {
        await snapshot.close()
      }
    }
    return { revision: seq === undefined ? 0 : Number(seq.toString()), records: records() }
  }

  /** The data pool answers for itself: everything stored is visible here already. */
  async revalidate (): Promise<void> {}

  /**
   * Resolves once every change made so far is stored and announced: a
   * change is visible here before it is stored, and what a replica is told
   * (e.g. that a name is taken) must not run ahead of what it can see.
   */
  async settled (): Promise<void> {
    await this.persist([])
  }

  // ---- how changes are stored ----

  protected async run<T> (change: () => Change<T>, opts: RunOptions = {}): Promise<T> {
    const { ops, value } = change()
    if (opts.lazy === true && this.lazyCreates) this.lazy.push(...ops)
    else if (ops.length > 0 || opts.sync === true) await this.persist(ops, opts.sync)
    return value
  }

  protected takeIno (): { ino: number, ops: BatchOp[] } {
    const ino = this.nextIno++
    return { ino, ops: [{ type: 'put', key: NEXT_INO_KEY, value: Buffer.from(String(this.nextIno)) }] }
  }

  /**
   * Numbers up to `ino` are not given to new files: an agent that died may
   * have given them to files it never stored, which the kernel still knows
   * (a mount taken over keeps the kernel's inodes).
   */
  skipInodes (ino: number): void {
    if (this.nextIno <= ino) this.nextIno = ino + 1
  }

  /** Stores changes made lazily, if any are waiting. */
  async flushLazy (): Promise<void> {
    if (this.lazy.length > 0) await this.persist([])
  }

  async readInline (ino: number): Promise<Buffer> {
    // A commit may land while LevelDB answers: then the bytes read are the old ones, and a second look finds the new.
    for (let tries = 0; tries < 3; tries++) {
      if (this.mustGet(ino).inline === undefined) throw new ChaacError('CHAAC_INVALID', `inode ${ino} is not kept inline`)
      const data = await this.stored(inlineKey(ino))
      if (data !== undefined && inlineHash(data) === this.mustGet(ino).inline) return data
    }
    throw new ChaacError('CHAAC_IO', `inode ${ino}: its inline bytes are missing or corrupt`)
  }

  async readPooled (id: string): Promise<Buffer> {
    const data = this.balls.get(id)?.pooled === true ? await this.stored(pooledKey(id)) : undefined
    if (data === undefined) throw new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: not in the data pool`)
    return data
  }

  async sync (): Promise<void> {
    await this.persist([], true)
  }

  async close (): Promise<void> {
    await this.writer.flush()
    // LevelDB holds every record on stable storage now.
    this.journal.clear()
    this.journal.close()
    await this.db.close()
  }

  // ---- helpers ----

  // A stored value, as last written: LevelDB gets the journal's batches a little later.
  private async stored (key: string): Promise<Buffer | undefined> {
    const pending = this.writer.pending(key)
    return pending === undefined ? await this.db.get(key) : pending ?? undefined
  }

  private async persist (ops: BatchOp[], sync = false): Promise<void> {
    const origin = this.origin
    const batch = this.lazy.length > 0 ? [...this.lazy.splice(0), ...ops] : ops
    try {
      await this.writer.write(batch, sync)
    } catch (err) {
      throw err instanceof ChaacError ? err : new ChaacError('CHAAC_META_FAILED', 'the data pool could not store a change', { cause: err })
    }
    if (batch.length > 0) this.emit('change', ++this.lastSeq, batch, origin)
  }
}

// The journal's files (chaac-journal.0 and .1), in the LevelDB folder (LevelDB leaves files it does not name alone).
export const JOURNAL_FILE = 'chaac-journal'

/**
 * Writes to LevelDB the journal records it does not hold yet (the agent
 * stopped before they got there), then empties the journal. Returns the
 * number of the last record.
 */
async function replayJournal (db: Level<string, Buffer>, journal: Journal): Promise<number> {
  const stored = await db.get(JOURNAL_SEQ_KEY)
  let last = stored === undefined ? 0 : Number(stored.toString())
  const records = journal.records()
  for (const r of records) {
    if (r.seq <= last) continue
    await db.batch([...r.ops, { type: 'put', key: JOURNAL_SEQ_KEY, value: Buffer.from(String(r.seq)) }])
    last = r.seq
  }
  if (journal.bytes > 0) {
    // On stable storage before the journal goes.
    await db.batch([{ type: 'put', key: JOURNAL_SEQ_KEY, value: Buffer.from(String(last)) }], { sync: true })
    journal.clear()
  }
  return last
}
