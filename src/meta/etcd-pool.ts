// The data pool on etcd: every agent is equal. Each keeps every record in
// memory (a snapshot at one revision, then a watch from that revision), so
// lookups, stat and readdir never wait on the network; each change is worked
// out in memory and stored as an etcd transaction that holds only if no
// record it writes changed since this agent saw it (compared by mod
// revision), else the records are read afresh and the change runs again.
//
// Changes queue while transactions are on their way and go out together in
// the next one (group commit). Up to LANES transactions are in flight at
// once, each writing records no other in flight writes: a batch that writes
// a record one in flight writes too waits for it (and is worked out again if
// that one did not hold), so an agent's own changes never conflict with each
// other and land in the order they were made wherever they touch.
//
// Every transaction also writes its lane's operation key (o!<agent id>!<lane>)
// with the batch's id and compares its revision: when an answer is lost (a
// leader killed mid-call) the key says whether the batch was applied, and a
// batch sent again cannot apply twice. Every transaction writes m!last too,
// unguarded: its revision is the newest change of the cluster, which
// close-to-open waits for the watch to reach.
import { randomBytes } from 'node:crypto'
import { EtcdAuthenticationFailedError, EtcdPermissionDeniedError, type Etcd3, type IKeyValue, type IRequestOp, type IWatchResponse, type Watcher } from 'etcd3'
import { ChaacError, isChaacError } from '../errors.ts'
import type { BatchOp } from './batch-writer.ts'
import { connectEtcd, describeEtcd, type EtcdSpec } from './etcd-client.ts'
import type { Pool } from './pool.ts'
import { PoolChanges, type Change } from './pool-changes.ts'
import { NEXT_INO_KEY, ROOT_INO, inlineHash, inlineKey, isBytesKey, pooledKey } from './schema.ts'

export interface EtcdPoolOptions {
  spec: EtcdSpec
  agentId: string
  log: { info: (obj: object, msg: string) => void, warn: (obj: object, msg: string) => void, debug: (obj: object, msg: string) => void }
  /** How long one change may take, retries included, before it fails with EIO (ms). */
  changeTimeoutMs?: number
  /** Keys written in one transaction before a batch is closed (etcd's --max-txn-ops is 128 by default). */
  maxOps?: number
  /** How long the agent may go without an answer from etcd before its namespace answers EIO (ms). */
  cutOffAfterMs?: number
}

interface Entry {
  change: () => Change<unknown>
  resolve: (value: unknown) => void
  reject: (err: Error) => void
  deadline: number
  conflicts: number
  /** Resolves once the entry is answered, either way. */
  settled: Promise<void>
}

/** A transaction lane: its operation key and that key's mod revision as this agent last saw it. */
interface Lane { key: string, rev: number }

/** A batch on its way: the records it writes, and whether it held (false: worked out again or failed; `requeued` went back to the queue). */
interface Flight { keys: Set<string>, done: Promise<{ stored: boolean, requeued: Entry[] }> }

interface Waiter { rev: number, resolve: () => void, reject: (err: Error) => void }

interface Batch {
  entries: Entry[]
  values: unknown[]
  writes: Map<string, BatchOp>
  /** How much each ball record's reference count moved (see PoolChanges.refMoves). */
  moves: Map<string, number>
}

/** A record as a watch event shows it: no value once deleted. */
interface WatchedRecord { key: Buffer, value: Buffer | undefined }

/** The kinds of records, inodes first: an entry or a slice list is only kept when its inode exists. */
const SNAPSHOT_KINDS = ['i!', 's!', 'd!', 'b!', 'q!', 'g!', 'a!', 'm!', 'o!']
const PAGE_KEYS = 5_000
const INO_BLOCK = 1_024
const LAST_KEY = 'm!last'
const MAX_CONFLICTS = 50
const MAX_BATCH_BYTES = 512 * 1024
const PROBE_MS = 1_000
/** Transactions in flight at once from one agent. */
const LANES = 4

// Thrown by takeIno when this agent's block of inode numbers is used up: the committer reserves more and runs the change again.
const NO_INOS = new Error('no inode numbers reserved')

export class EtcdPool extends PoolChanges implements Pool {
  private readonly client: Etcd3
  private readonly prefix: string
  private readonly lanes: Lane[]
  private readonly freeLanes: Lane[]
  private readonly inflight = new Set<Flight>()
  private readonly pending = new Set<Entry>()
  // Records that changes worked out here write and etcd does not hold yet, by how many batches: memory shows
  // them ahead of etcd, so the watch's echo of an earlier transaction must not take them back.
  private readonly ahead = new Map<string, number>()
  // The mod revision of every record present, as this agent last saw it.
  private readonly modRevs = new Map<string, number>()
  // Records read afresh as absent while the watch is behind: older events for them are stale.
  private readonly tombstones = new Map<string, number>()
  private appliedRev = 0
  private batchSeq = 0
  private readonly runId = randomBytes(6).toString('hex')
  private queue: Entry[] = []
  private building?: Promise<void>
  private inoNext = 0
  private inoEnd = 0
  private watcher?: Watcher
  private readonly waiters = new Set<Waiter>()
  private lastContact = Date.now()
  private current = false
  private closed = false
  private probeTimer?: NodeJS.Timeout
  private probing = false
  // A revision that was the newest when a probe read it, while the watch had not reached it yet.
  private behind?: { rev: number, at: number }
  // The read of the newest revision on its way, and the one callers wait for next.
  private check?: Promise<number>
  private nextCheck?: Promise<number>
  private resyncing?: Promise<void>
  private readonly changeTimeoutMs: number
  private readonly maxOps: number
  private readonly cutOffAfterMs: number

  private constructor (private readonly opts: EtcdPoolOptions) {
    super()
    this.client = connectEtcd(opts.spec)
    this.prefix = opts.spec.prefix
    this.lanes = Array.from({ length: LANES }, (_, i) => ({ key: `o!${opts.agentId}!${i}`, rev: 0 }))
    this.freeLanes = [...this.lanes]
    this.changeTimeoutMs = opts.changeTimeoutMs ?? 10_000
    this.maxOps = opts.maxOps ?? 120
    this.cutOffAfterMs = opts.cutOffAfterMs ?? 2 * opts.spec.callTimeoutMs
  }

  /** Connects, takes the first snapshot and starts watching; tries again while etcd does not answer, up to `startTimeoutMs`. */
  static async open (opts: EtcdPoolOptions & { startTimeoutMs?: number }): Promise<EtcdPool> {
    const pool = new EtcdPool(opts)
    const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000)
    for (let backoff = 200; ; backoff = Math.min(2_000, backoff * 2)) {
      try {
        await pool.resync()
        break
      } catch (err) {
        // Refused credentials do not get better by waiting.
        if (err instanceof EtcdAuthenticationFailedError || err instanceof EtcdPermissionDeniedError) {
          pool.client.close()
          throw new ChaacError('CHAAC_AUTH_FAILED', `etcd at ${describeEtcd(opts.spec)} refused this agent: ${err.message} (--etcd-user, CHAAC_ETCD_PASSWORD)`, { cause: err })
        }
        if (Date.now() + backoff > deadline) {
          pool.client.close()
          throw new ChaacError('CHAAC_META_FAILED', `cannot reach etcd at ${describeEtcd(opts.spec)}: ${(err as Error).message}`, { cause: err })
        }
        await new Promise((resolve) => setTimeout(resolve, backoff))
      }
    }
    if (!pool.inodes.has(ROOT_INO)) await pool.run(() => pool.inodes.has(ROOT_INO) ? { ops: [], value: undefined } : { ops: [pool.makeRoot()], value: undefined })
    pool.probeTimer = setInterval(() => { void pool.probe() }, PROBE_MS)
    pool.probeTimer.unref()
    return pool
  }

  /** The etcd client, for what else an agent keeps there (its lease, the election of the background worker). */
  get etcd (): Etcd3 {
    return this.client
  }

  /** Where this cluster's keys live in etcd. */
  get keyPrefix (): string {
    return this.prefix
  }

  get reachable (): boolean {
    return this.current
  }

  protected override checkReachable (): void {
    if (!this.current) throw this.unreachable()
  }

  // ---- storing changes ----

  protected async run<T> (change: () => Change<T>): Promise<T> {
    if (this.closed) throw new ChaacError('CHAAC_IO', 'the data pool is closed')
    this.checkReachable()
    let entry: Entry | undefined
    const answer = new Promise<T>((resolve, reject) => {
      entry = { change, resolve: resolve as (value: unknown) => void, reject, deadline: Date.now() + this.changeTimeoutMs, conflicts: 0, settled: Promise.resolve() }
    })
    const e = entry as Entry
    e.settled = answer.then(() => {}, () => {}).finally(() => this.pending.delete(e))
    this.pending.add(e)
    this.queue.push(e)
    this.kick()
    return await answer
  }

  protected takeIno (): { ino: number, ops: BatchOp[] } {
    if (this.inoNext >= this.inoEnd) throw NO_INOS
    return { ino: this.inoNext++, ops: [] }
  }

  async flushLazy (): Promise<void> {}

  /** Every change made so far is answered (etcd stores each transaction durably on a quorum). */
  async sync (): Promise<void> {
    await Promise.all([...this.pending].map(async (e) => await e.settled))
  }

  private kick (): void {
    if (this.building || this.freeLanes.length === 0) return
    this.building = this.buildAll().catch((err: Error) => {
      // Not expected: every failure of a change is its caller's. Those still queued get it too rather than wait.
      this.opts.log.warn({ err: err.message }, 'storing changes in etcd failed')
      for (const e of this.queue.splice(0)) e.reject(this.metaFailed(err))
    }).finally(() => {
      this.building = undefined
      if (this.queue.length > 0 && !this.closed) this.kick()
    })
  }

  // Builds batches while lanes are free; a batch that writes what one in flight writes waits for it.
  private async buildAll (): Promise<void> {
    while (this.queue.length > 0 && this.freeLanes.length > 0) {
      const batch = await this.nextBatch()
      if (batch.entries.length === 0) continue
      // A batch in steps goes alone: its steps are not one transaction.
      const alone = batch.writes.size > this.maxOps
      const deps = [...this.inflight].filter((f) => alone || [...batch.writes.keys()].some((k) => f.keys.has(k)))
      if (deps.length > 0) {
        const outcomes = await Promise.all(deps.map(async (f) => await f.done))
        if (outcomes.some((o) => !o.stored)) {
          // Worked out on records that did not hold: read afresh, and again after the changes they depend on.
          this.behindNoMore(batch.writes)
          await this.refresh([...batch.writes.keys()]).catch(() => {})
          const after = Math.max(-1, ...outcomes.flatMap((o) => o.requeued.map((e) => this.queue.indexOf(e))))
          this.queue.splice(after + 1, 0, ...batch.entries)
          continue
        }
      }
      const lane = this.freeLanes.pop() as Lane
      const flight: Flight = { keys: new Set(batch.writes.keys()), done: Promise.resolve({ stored: false, requeued: [] }) }
      flight.done = this.commitBatch(batch, lane).catch((err: Error) => {
        batch.entries.forEach((e) => e.reject(this.metaFailed(err)))
        return { stored: false, requeued: [] }
      }).finally(() => {
        this.behindNoMore(batch.writes)
        this.inflight.delete(flight)
        this.freeLanes.push(lane)
        this.kick()
      })
      this.inflight.add(flight)
    }
  }

  // Works out queued changes, in order, until the batch is full: the writes of the later ones win.
  private async nextBatch (): Promise<Batch> {
    const entries: Entry[] = []
    const values: unknown[] = []
    const writes = new Map<string, BatchOp>()
    const moves = new Map<string, number>()
    let bytes = 0
    while (this.queue.length > 0 && writes.size < this.maxOps / 2 && bytes < MAX_BATCH_BYTES) {
      const entry = this.queue[0]
      let result: Change<unknown>
      this.refMoves = new Map()
      try {
        result = entry.change()
      } catch (err) {
        if (err === NO_INOS) {
          if (entries.length > 0) break
          try {
            await this.reserveInos(entry.deadline)
          } catch (err) {
            this.queue.shift()
            entry.reject(err as Error)
          }
          continue
        }
        this.queue.shift()
        entry.reject(err as Error)
        continue
      }
      this.queue.shift()
      entries.push(entry)
      values.push(result.value)
      for (const [key, d] of this.refMoves) moves.set(key, (moves.get(key) ?? 0) + d)
      for (const op of result.ops) {
        if (!writes.has(op.key)) this.ahead.set(op.key, (this.ahead.get(op.key) ?? 0) + 1)
        writes.delete(op.key)
        writes.set(op.key, op)
        bytes += op.key.length + (op.type === 'put' ? op.value.length : 0)
      }
    }
    this.refMoves = undefined
    return { entries, values, writes, moves }
  }

  // One transaction, or for a batch larger than etcd takes at once, several:
  // the reference counts that go up first, then the rest (the namespace's
  // records), then the counts that go down. A crash between steps leaves
  // counts too high (a ball kept longer), never too low.
  private async commitBatch (batch: Batch, lane: Lane): Promise<{ stored: boolean, requeued: Entry[] }> {
    const { entries, values, writes, moves } = batch
    const steps: Array<Map<string, BatchOp>> = []
    // The step that stores the namespace's records: once it is stored, the batch is.
    let main = 0
    if (writes.size <= this.maxOps) {
      steps.push(writes)
    } else {
      const up = new Map<string, BatchOp>()
      const down = new Map<string, BatchOp>()
      const rest = new Map<string, BatchOp>()
      for (const [key, op] of writes) {
        const d = moves.get(key) ?? 0
        ;(d > 0 ? up : d < 0 ? down : rest).set(key, op)
      }
      if (rest.size > this.maxOps) {
        const err = new ChaacError('CHAAC_META_FAILED', `a change of ${rest.size} records is more than etcd takes in one transaction here (${this.maxOps}): start etcd with a larger --max-txn-ops`)
        await this.refresh([...writes.keys()]).catch(() => {})
        entries.forEach((e) => e.reject(err))
        return { stored: false, requeued: [] }
      }
      steps.push(...chunks(up, this.maxOps))
      main = steps.length
      steps.push(rest, ...chunks(down, this.maxOps))
    }
    for (const [i, step] of steps.entries()) {
      const outcome = await this.commitStep(step, lane, Math.min(...entries.map((e) => e.deadline)))
      if (outcome === 'stored') continue
      if (outcome instanceof Error) {
        entries.forEach((e) => e.reject(outcome))
        return { stored: false, requeued: [] }
      }
      // After the namespace's records, a count that could not go down stays too high: the ball is kept longer.
      if (i > main) continue
      // Worked out again, on the records as they are now, ahead of later changes.
      const again: Entry[] = []
      for (const e of entries) {
        if (++e.conflicts > MAX_CONFLICTS) e.reject(new ChaacError('CHAAC_META_FAILED', `a change conflicted with other agents ${MAX_CONFLICTS} times in a row`))
        else again.push(e)
      }
      this.queue.unshift(...again)
      return { stored: false, requeued: again }
    }
    entries.forEach((e, i) => e.resolve(values[i]))
    return { stored: true, requeued: [] }
  }

  // Stores one transaction: 'stored', 'conflict' (the records it read changed; they are read afresh), or the error that ends it.
  private async commitStep (writes: Map<string, BatchOp>, lane: Lane, deadline: number): Promise<'stored' | 'conflict' | Error> {
    const batchId = `${this.runId}:${++this.batchSeq}`
    const ops: IRequestOp[] = []
    for (const op of writes.values()) {
      ops.push(op.type === 'put'
        ? { request_put: { key: this.k(op.key), value: op.value } }
        : { request_delete_range: { key: this.k(op.key) } })
    }
    ops.push(
      { request_put: { key: this.k(lane.key), value: Buffer.from(batchId) } },
      { request_put: { key: this.k(LAST_KEY), value: Buffer.from(this.opts.agentId) } }
    )
    // A file's bytes are guarded by its inode record, a pooled slice's by its ball record: written in the same change.
    const guarded = [...writes.keys()].filter((key) => !isBytesKey(key))
    const compare = [...guarded, lane.key].map((key) => ({
      key: this.k(key), target: 'Mod' as const, result: 'Equal' as const, mod_revision: key === lane.key ? lane.rev : (this.modRevs.get(key) ?? 0)
    }))
    const request = { compare, success: ops, failure: [{ request_range: { key: this.k(lane.key) } }] }
    let outcome: { applied: number } | { conflict: IKeyValue | undefined }
    try {
      outcome = await this.send(request, batchId, deadline)
    } catch (err) {
      // Nothing says whether it was applied: the next transaction's guard on the operation key keeps the records right either way.
      await this.refresh([...writes.keys(), lane.key]).catch(() => {})
      return err as Error
    }
    if ('applied' in outcome) {
      this.stored(outcome.applied, writes, lane)
      return 'stored'
    }
    lane.rev = outcome.conflict === undefined ? 0 : Number(outcome.conflict.mod_revision)
    try {
      await this.refresh([...writes.keys()])
    } catch (err) {
      return this.metaFailed(err)
    }
    return 'conflict'
  }

  // Sends a transaction until its outcome is known: applied (at a revision) or refused by its guard.
  private async send (request: Parameters<Etcd3['kv']['txn']>[0], batchId: string, deadline: number): Promise<{ applied: number } | { conflict: IKeyValue | undefined }> {
    for (let backoff = 50; ; backoff = Math.min(1_000, backoff * 2)) {
      try {
        const res = await this.client.kv.txn(request)
        this.contact()
        if (res.succeeded) return { applied: Number(res.header.revision) }
        const kv = res.responses[0]?.response_range?.kvs?.[0]
        // A copy of this batch sent earlier was applied: its answer was lost.
        if (kv !== undefined && kv.value.toString() === batchId) return { applied: Number(kv.mod_revision) }
        return { conflict: kv }
      } catch (err) {
        if (isTooLarge(err)) throw new ChaacError('CHAAC_META_FAILED', `etcd refused a transaction of ${request.success?.length ?? 0} operations: ${(err as Error).message} (start etcd with a larger --max-txn-ops and --max-request-bytes)`, { cause: err })
        if (Date.now() + backoff > deadline) throw this.metaFailed(err)
        this.opts.log.debug({ err: (err as Error).message, batch: batchId }, 'an etcd transaction got no answer; trying again')
        await new Promise((resolve) => setTimeout(resolve, backoff))
      }
    }
  }

  // The batch is stored at revision `rev`: what memory shows of its records is what etcd holds.
  private stored (rev: number, writes: Map<string, BatchOp>, lane: Lane): void {
    for (const [key, op] of writes) {
      if (op.type === 'put') {
        this.modRevs.set(key, rev)
        this.tombstones.delete(key)
      } else {
        this.modRevs.delete(key)
        this.tombstones.set(key, rev)
      }
    }
    lane.rev = Math.max(lane.rev, rev)
    const ops = [...writes.values()]
    this.emit('change', rev, ops, this.opts.agentId)
    if (ops.some((op) => op.type === 'put' && op.key[0] === 'q')) this.emit('queued')
  }

  // Reads records afresh from etcd and shows them in memory (a change that lost its guard changed them there already).
  private async refresh (keys: string[]): Promise<void> {
    const res = await this.client.kv.txn({ success: keys.map((key) => ({ request_range: { key: this.k(key) } })) })
    this.contact()
    const rev = Number(res.header.revision)
    const found = new Map<string, IKeyValue>()
    for (const r of res.responses) for (const kv of r.response_range.kvs) found.set(this.unk(kv.key), kv)
    // Inodes first, as everywhere.
    const ordered = [...keys].sort((a, b) => Number(b[0] === 'i') - Number(a[0] === 'i'))
    for (const key of ordered) {
      const lane = this.laneOf(key)
      if (lane !== undefined) {
        lane.rev = Number(found.get(key)?.mod_revision ?? 0)
        continue
      }
      const kv = found.get(key)
      if (kv === undefined) {
        this.modRevs.delete(key)
        if (rev > this.appliedRev) this.tombstones.set(key, rev)
        this.apply(key, undefined)
      } else {
        this.modRevs.set(key, Number(kv.mod_revision))
        this.tombstones.delete(key)
        if (!isBytesKey(key)) this.apply(key, kv.value)
      }
    }
  }

  private async reserveInos (deadline: number): Promise<void> {
    for (;;) {
      const key = this.k(NEXT_INO_KEY)
      const res = await this.client.kv.range({ key })
      this.contact()
      const kv = res.kvs[0]
      const next = kv === undefined ? ROOT_INO + 1 : Number(kv.value.toString())
      const put = await this.client.kv.txn({
        compare: [{ key, target: 'Mod', result: 'Equal', mod_revision: kv === undefined ? 0 : kv.mod_revision }],
        success: [{ request_put: { key, value: Buffer.from(String(next + INO_BLOCK)) } }]
      })
      if (put.succeeded) {
        this.inoNext = next
        this.inoEnd = next + INO_BLOCK
        return
      }
      if (Date.now() > deadline) throw new ChaacError('CHAAC_META_FAILED', 'could not reserve inode numbers in etcd')
    }
  }

  // ---- keeping the copy current ----

  // A fresh snapshot at one revision, then a watch from it; replaces whatever memory held.
  private async resync (): Promise<void> {
    await this.watcher?.cancel().catch(() => {})
    this.watcher = undefined
    const head = await this.client.kv.range({ key: this.k(LAST_KEY) })
    const rev = Number(head.header.revision)
    const records: IKeyValue[] = []
    for (const kind of SNAPSHOT_KINDS) {
      let from = this.k(kind)
      const end = this.k(kind.slice(0, -1) + String.fromCharCode(kind.charCodeAt(kind.length - 1) + 1))
      for (;;) {
        const page = await this.client.kv.range({ key: from, range_end: end, revision: rev, limit: PAGE_KEYS })
        records.push(...page.kvs)
        if (!page.more || page.kvs.length === 0) break
        from = Buffer.concat([page.kvs[page.kvs.length - 1].key, Buffer.from([0])])
      }
    }
    this.contact()
    this.clear()
    this.modRevs.clear()
    this.tombstones.clear()
    for (const kv of records) {
      const key = this.unk(kv.key)
      this.modRevs.set(key, Number(kv.mod_revision))
      const lane = this.laneOf(key)
      if (lane !== undefined) lane.rev = Number(kv.mod_revision)
      else if (!this.apply(key, kv.value)) this.opts.log.debug({ key }, 'a record names an inode that is gone; left as it is')
    }
    this.appliedRev = rev
    const watcher = await this.client.watch().prefix(this.prefix).startRevision(String(rev + 1)).create()
    watcher.on('data', (res) => this.receive(watcher, res))
    watcher.on('error', (err) => {
      if (watcher !== this.watcher || this.closed) return
      this.opts.log.warn({ err: err.message }, 'the etcd watch failed; taking a fresh snapshot')
      this.current = false
      void this.recover()
    })
    this.watcher = watcher
    this.current = true
    this.emit('synced')
  }

  private receive (watcher: Watcher, res: IWatchResponse): void {
    if (watcher !== this.watcher || res.events.length === 0) return
    // One transaction is one revision: its records are applied together, inodes first, and announced as one change.
    const groups = new Map<number, WatchedRecord[]>()
    for (const ev of res.events) {
      const rev = Number(ev.kv.mod_revision)
      const kv: WatchedRecord = { key: ev.kv.key, value: ev.type === 'Delete' ? undefined : ev.kv.value }
      const group = groups.get(rev)
      if (group) group.push(kv)
      else groups.set(rev, [kv])
    }
    for (const [rev, kvs] of groups) this.applyGroup(rev, kvs)
    for (const w of this.waiters) {
      if (w.rev > this.appliedRev) continue
      this.waiters.delete(w)
      w.resolve()
    }
  }

  private applyGroup (rev: number, kvs: WatchedRecord[]): void {
    const ops: BatchOp[] = []
    let origin = ''
    const ordered = [...kvs].sort((a, b) => Number(b.key[this.prefix.length] === 0x69) - Number(a.key[this.prefix.length] === 0x69))
    for (const kv of ordered) {
      const key = this.unk(kv.key)
      const value = kv.value
      const lane = this.laneOf(key)
      if (lane !== undefined) {
        if (rev > lane.rev) lane.rev = rev
        continue
      }
      if (key.startsWith('o!')) origin = key.slice(2).split('!')[0]
      const seen = this.modRevs.get(key) ?? this.tombstones.get(key) ?? 0
      // A record changed here and not stored yet: its transaction settles it (a change by another agent fails its guard).
      if (rev <= seen || this.ahead.has(key)) continue
      if (value === undefined) this.modRevs.delete(key)
      else this.modRevs.set(key, rev)
      this.tombstones.delete(key)
      if (isBytesKey(key)) continue
      this.apply(key, value)
      ops.push(value === undefined ? { type: 'del', key } : { type: 'put', key, value })
    }
    if (rev > this.appliedRev) this.appliedRev = rev
    if (this.tombstones.size > 0) for (const [key, at] of this.tombstones) if (at <= this.appliedRev) this.tombstones.delete(key)
    if (ops.length === 0) return
    this.emit('change', rev, ops, origin)
    if (ops.some((op) => op.type === 'put' && op.key[0] === 'q')) this.emit('queued')
  }

  /** Resolves once every change any agent stored before the call is visible here (close-to-open). */
  async revalidate (): Promise<void> {
    this.checkReachable()
    await this.caughtUp(await this.newestRevision())
  }

  // The revision of the newest change, read after the call: callers that come
  // while a read is on its way share the next one (that one may have left
  // before what they must see was stored), so many opens cost few reads.
  private newestRevision (): Promise<number> {
    if (this.nextCheck !== undefined) return this.nextCheck
    const read = async (): Promise<number> => {
      try {
        const res = await this.client.kv.range({ key: this.k(LAST_KEY) })
        this.contact()
        return Number(res.kvs[0]?.mod_revision ?? 0)
      } catch (err) {
        throw this.metaFailed(err)
      }
    }
    const start = (): Promise<number> => {
      const check = read().finally(() => { if (this.check === check) this.check = undefined })
      this.check = check
      return check
    }
    if (this.check === undefined) return start()
    const next = this.check.then(() => {}, () => {}).then(() => {
      this.nextCheck = undefined
      return start()
    })
    this.nextCheck = next
    return next
  }

  private async caughtUp (rev: number): Promise<void> {
    if (rev <= this.appliedRev) return
    let timer: NodeJS.Timeout | undefined
    await new Promise<void>((resolve, reject) => {
      const waiter: Waiter = { rev, resolve, reject }
      this.waiters.add(waiter)
      timer = setTimeout(() => {
        this.waiters.delete(waiter)
        reject(new ChaacError('CHAAC_IO', `the etcd watch did not reach revision ${rev} (at ${this.appliedRev}) within ${this.changeTimeoutMs} ms`))
      }, this.changeTimeoutMs)
    }).finally(() => clearTimeout(timer))
  }

  // Cut off from etcd for longer than the deadline, the namespace answers EIO; back in touch, the watch catches up
  // first. A watch that stays behind (its stream died without a word) is replaced by a fresh snapshot.
  private async probe (): Promise<void> {
    if (this.probing || this.closed || this.resyncing !== undefined) return
    this.probing = true
    try {
      const res = await this.client.kv.range({ key: this.k(LAST_KEY) })
      this.contact()
      const rev = Number(res.kvs[0]?.mod_revision ?? 0)
      // Under a stream of changes the watch is always a little behind the newest: what counts is
      // whether it reached, within the deadline, a revision that was the newest back then.
      if (this.behind !== undefined && this.appliedRev >= this.behind.rev) this.behind = undefined
      if (this.behind === undefined) {
        if (rev > this.appliedRev) this.behind = { rev, at: Date.now() }
      } else if (Date.now() - this.behind.at > this.cutOffAfterMs) {
        this.opts.log.warn({ at: this.appliedRev, newest: this.behind.rev }, 'the etcd watch stayed behind; taking a fresh snapshot')
        this.behind = undefined
        this.current = false
        await this.recover()
        return
      }
      if (!this.current) {
        await this.caughtUp(rev)
        this.current = true
        this.opts.log.info({ etcd: describeEtcd(this.opts.spec) }, 'back in touch with etcd')
        this.emit('synced')
      }
    } catch (err) {
      if (this.current && Date.now() - this.lastContact > this.cutOffAfterMs) {
        this.current = false
        this.opts.log.warn({ etcd: describeEtcd(this.opts.spec), err: (err as Error).message }, 'cut off from etcd; the chaac path answers EIO until it is back')
      }
    } finally {
      this.probing = false
    }
  }

  private async recover (): Promise<void> {
    this.resyncing ??= (async () => {
      for (let backoff = 200; !this.closed; backoff = Math.min(5_000, backoff * 2)) {
        try {
          await this.resync()
          return
        } catch (err) {
          this.opts.log.warn({ err: (err as Error).message, retryInMs: backoff }, 'cannot take a snapshot from etcd')
          await new Promise((resolve) => setTimeout(resolve, backoff))
        }
      }
    })().finally(() => { this.resyncing = undefined })
    await this.resyncing
  }

  private contact (): void {
    this.lastContact = Date.now()
  }

  // ---- bytes kept in etcd ----

  async readInline (ino: number): Promise<Buffer> {
    // A commit may land between the inode and its bytes: a second look after catching up finds the new ones.
    for (let tries = 0; tries < 3; tries++) {
      const hash = this.mustGet(ino).inline
      if (hash === undefined) throw new ChaacError('CHAAC_INVALID', `inode ${ino} is not kept inline`)
      const data = await this.readBytes(inlineKey(ino))
      if (data !== undefined && inlineHash(data) === this.mustGet(ino).inline) return data
      await this.revalidate()
    }
    throw new ChaacError('CHAAC_IO', `inode ${ino}: its inline bytes are missing or corrupt`)
  }

  async readPooled (id: string): Promise<Buffer> {
    const data = this.balls.get(id)?.pooled === true ? await this.readBytes(pooledKey(id)) : undefined
    if (data === undefined) throw new ChaacError('CHAAC_BALL_MISSING', `ball ${id}: not in the data pool`)
    return data
  }

  private async readBytes (key: string): Promise<Buffer | undefined> {
    try {
      const res = await this.client.kv.range({ key: this.k(key) })
      this.contact()
      return res.kvs[0]?.value
    } catch (err) {
      throw this.metaFailed(err)
    }
  }

  async close (): Promise<void> {
    if (this.closed) return
    clearInterval(this.probeTimer)
    // Changes already queued still go out (their deadline bounds the wait).
    await this.sync()
    this.closed = true
    for (const w of this.waiters) w.reject(new ChaacError('CHAAC_IO', 'the data pool is closed'))
    this.waiters.clear()
    await this.watcher?.cancel().catch(() => {})
    await this.resyncing?.catch(() => {})
    this.client.close()
  }

  // ---- helpers ----

  // The batch is stored, given up or worked out again: its records are no longer ahead of etcd by it.
  private behindNoMore (writes: Map<string, BatchOp>): void {
    for (const key of writes.keys()) {
      const n = (this.ahead.get(key) ?? 0) - 1
      if (n > 0) this.ahead.set(key, n)
      else this.ahead.delete(key)
    }
  }

  private laneOf (key: string): Lane | undefined {
    return key.startsWith('o!') ? this.lanes.find((l) => l.key === key) : undefined
  }

  private k (key: string): Buffer {
    return Buffer.from(this.prefix + key)
  }

  private unk (key: Buffer): string {
    return key.toString().slice(this.prefix.length)
  }

  private unreachable (): ChaacError {
    return new ChaacError('CHAAC_IO', `etcd at ${describeEtcd(this.opts.spec)} is unreachable`)
  }

  private metaFailed (err: unknown): ChaacError {
    if (isChaacError(err)) return err
    return new ChaacError('CHAAC_META_FAILED', `etcd at ${describeEtcd(this.opts.spec)} did not store a change: ${(err as Error).message}`, { cause: err })
  }
}

/** The map's entries in maps of at most `size`. */
function chunks<K, V> (map: Map<K, V>, size: number): Array<Map<K, V>> {
  const out: Array<Map<K, V>> = []
  for (const [k, v] of map) {
    if (out.length === 0 || (out[out.length - 1].size >= size)) out.push(new Map())
    out[out.length - 1].set(k, v)
  }
  return out
}

function isTooLarge (err: unknown): boolean {
  return /too many operations|request is too large|message larger than max/i.test((err as Error).message)
}
