// The data pool as a joined agent sees it: a copy of every record in memory,
// built from a snapshot and kept current by the pool's change stream, over
// one peer link. Readers answer from the copy at once; each change goes to
// the pool, and resolves once the pool stored it and the copy shows it.
//
// Cut off from the pool, the namespace answers EIO at once (a stale copy
// would be wrong without saying so) and the replica reconnects with backoff;
// back in touch, it takes a fresh snapshot and goes on.
import { ChaacError, isChaacError } from '../errors.ts'
import { connectPeer } from '../net/peer-client.ts'
import type { NetLog, PeerLink } from '../net/peer-link.ts'
import type { AttrPatch, CopyOptions, FileContent, NewNode, Pool } from './pool.ts'
import {
  CLUSTER_MAX_FRAME_BYTES, OP, parseCallReply, parseChange, parseInline, parsePage, parsePooled, parseSeq, type Change
} from './pool-protocol.ts'
import { PoolState } from './pool-state.ts'
import type { ClusterSettings } from './settings.ts'
import { inlineHash, type AgentReport, type Inode } from './schema.ts'

export interface ReplicaOptions {
  /** The pool agent's peer address, ws://HOST:PORT. */
  url: string
  agentId: string
  secret?: string
  log: NetLog
  /** Deadline of each request to the pool; default 10 s. */
  timeoutMs?: number
  /** How long the first connection may keep failing (the pool may be starting); default 30 s. */
  startTimeoutMs?: number
  /** The address to connect from. */
  localAddress?: string
}

interface Waiter { seq: number, resolve: () => void, reject: (err: ChaacError) => void }

const MIN_BACKOFF_MS = 200
const MAX_BACKOFF_MS = 5_000

export class PoolReplica extends PoolState implements Pool {
  private poolLink?: PeerLink
  private current = false
  private started = false
  private closed = false
  private reconnecting = false
  private appliedSeq = 0
  // Changes that arrive while the snapshot is being read; applied after it.
  private backlog?: Change[]
  private readonly waiters = new Set<Waiter>()
  private retryTimer?: NodeJS.Timeout

  private constructor (private readonly opts: ReplicaOptions) {
    super()
  }

  /**
   * Connects and takes the first snapshot, trying again while the pool does
   * not answer (it may be starting); a refused secret fails at once.
   */
  static async connect (opts: ReplicaOptions): Promise<PoolReplica> {
    const replica = new PoolReplica(opts)
    const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000)
    for (let backoff = MIN_BACKOFF_MS; ; backoff = Math.min(MAX_BACKOFF_MS, backoff * 2)) {
      try {
        await replica.resync()
        return replica
      } catch (err) {
        if (isChaacError(err, 'CHAAC_AUTH_FAILED')) {
          throw new ChaacError('CHAAC_AUTH_FAILED',
            `the data pool at ${opts.url} refused this agent: its cluster secret (--secret, CHAAC_SECRET) is not the pool's`, { cause: err })
        }
        if (isChaacError(err, 'CHAAC_NOT_SUPPORTED')) {
          throw new ChaacError('CHAAC_INVALID', `${opts.url} is an agent without the data pool: join the agent started with --pool`, { cause: err })
        }
        if (Date.now() + backoff > deadline) {
          throw new ChaacError('CHAAC_IO', `cannot reach the data pool at ${opts.url}: ${(err as Error).message}`, { cause: err })
        }
        await replica.pause(backoff)
      }
    }
  }

  get reachable (): boolean {
    return this.current
  }

  // ---- keeping the copy current ----

  private async resync (): Promise<void> {
    const link = await connectPeer(this.opts.url, {
      localId: this.opts.agentId,
      secret: this.opts.secret,
      log: this.opts.log,
      timeoutMs: this.opts.timeoutMs,
      maxFrameBytes: CLUSTER_MAX_FRAME_BYTES,
      localAddress: this.opts.localAddress,
      handlers: { [OP.change]: (body, ctx) => this.receive(ctx.link, body) }
    })
    if (this.closed) {
      await link.close()
      throw this.unreachable()
    }
    this.poolLink = link
    this.backlog = []
    void link.closed.then(() => this.lost(link))
    try {
      const seq = parseSeq(await link.request(OP.subscribe))
      const records: Array<[string, Buffer]> = []
      for (let after: string | null = ''; after !== null;) {
        const page = parsePage(await link.request(OP.records, { after }))
        records.push(...page.records)
        after = page.next
      }
      this.load(seq, records)
    } catch (err) {
      await link.close()
      throw err
    }
  }

  private load (seq: number, records: Array<[string, Buffer]>): void {
    this.clear()
    // Inodes first: an entry is only kept when the inode it names exists.
    for (const [key, value] of records) if (key[0] === 'i') this.apply(key, value)
    for (const [key, value] of records) if (key[0] !== 'i') this.apply(key, value)
    this.appliedSeq = seq
    const backlog = this.backlog ?? []
    this.backlog = undefined
    for (const change of backlog) this.applyChange(change)
    this.current = true
    this.started = true
    this.emit('synced')
  }

  private receive (link: PeerLink, body: unknown): void {
    if (link !== this.poolLink) return
    const change = parseChange(body)
    if (this.backlog) this.backlog.push(change)
    else this.applyChange(change)
  }

  private applyChange (change: Change): void {
    if (change.seq <= this.appliedSeq) return
    // A gap would leave the copy wrong without a trace: the throw goes back to the pool, which closes the link.
    if (change.seq !== this.appliedSeq + 1) {
      throw new ChaacError('CHAAC_PROTOCOL', `change ${change.seq} arrived after change ${this.appliedSeq}`)
    }
    let queued = false
    for (const op of change.ops) {
      this.apply(op.key, op.type === 'put' ? op.value : undefined)
      queued ||= op.type === 'put' && op.key[0] === 'q'
    }
    this.appliedSeq = change.seq
    for (const w of this.waiters) {
      if (w.seq > change.seq) continue
      this.waiters.delete(w)
      w.resolve()
    }
    this.emit('change', change.seq, change.ops, change.origin)
    if (queued) this.emit('queued')
  }

  private lost (link: PeerLink): void {
    if (this.poolLink !== link) return
    this.poolLink = undefined
    this.current = false
    for (const w of this.waiters) w.reject(this.unreachable())
    this.waiters.clear()
    if (!this.started || this.closed) return
    this.opts.log.warn({ pool: this.opts.url }, 'lost the data pool; the chaac path answers EIO until it is back')
    void this.reconnect()
  }

  private async reconnect (): Promise<void> {
    if (this.reconnecting) return
    this.reconnecting = true
    for (let backoff = MIN_BACKOFF_MS; !this.closed && !this.current; backoff = Math.min(MAX_BACKOFF_MS, backoff * 2)) {
      await this.pause(backoff)
      try {
        await this.resync()
        this.opts.log.info({ pool: this.opts.url }, 'back in touch with the data pool')
      } catch (err) {
        if (this.closed) break
        this.opts.log.warn({ pool: this.opts.url, err: (err as Error).message, retryInMs: backoff }, 'cannot reach the data pool')
      }
    }
    this.reconnecting = false
  }

  private async pause (ms: number): Promise<void> {
    await new Promise<void>((resolve) => { this.retryTimer = setTimeout(resolve, ms) })
  }

  protected override checkReachable (): void {
    if (!this.current) throw this.unreachable()
  }

  private unreachable (): ChaacError {
    return new ChaacError('CHAAC_IO', `the data pool at ${this.opts.url} is unreachable`)
  }

  // Resolves once the copy shows every change up to `seq`.
  private async reached (seq: number): Promise<void> {
    if (this.appliedSeq >= seq) return
    if (!this.current) throw this.unreachable()
    await new Promise<void>((resolve, reject) => this.waiters.add({ seq, resolve, reject }))
  }

  private async call<T> (method: keyof Pool, ...args: unknown[]): Promise<T> {
    const link = this.poolLink
    if (!this.current || !link) throw this.unreachable()
    const reply = parseCallReply(await link.request(OP.call, { method, args }, { timeoutMs: this.opts.timeoutMs }))
    await this.reached(reply.seq)
    return reply.result as T
  }

  // The copy's own object for an inode the pool answered with.
  private async inodeCall (method: keyof Pool, ...args: unknown[]): Promise<Inode> {
    const node = await this.call<Inode>(method, ...args)
    return this.inodes.get(node.ino) ?? node
  }

  // ---- changes, made by the pool ----

  async revalidate (): Promise<void> {
    const link = this.poolLink
    if (!this.current || !link) throw this.unreachable()
    await this.reached(parseSeq(await link.request(OP.revalidate, undefined, { timeoutMs: this.opts.timeoutMs })))
  }

  /** Always stored at once: deferring a create is an optimisation of the pool's own agent. */
  async create (parent: number, name: string, spec: NewNode): Promise<Inode> {
    return await this.inodeCall('create', parent, name, spec)
  }

  async flushLazy (): Promise<void> {}

  async link (ino: number, parent: number, name: string): Promise<Inode> {
    return await this.inodeCall('link', ino, parent, name)
  }

  async unlink (parent: number, name: string): Promise<Inode> {
    return await this.inodeCall('unlink', parent, name)
  }

  async rmdir (parent: number, name: string): Promise<void> {
    await this.call('rmdir', parent, name)
  }

  async rename (srcParent: number, srcName: string, dstParent: number, dstName: string): Promise<Inode | undefined> {
    const replaced = await this.call<Inode | undefined>('rename', srcParent, srcName, dstParent, dstName)
    return replaced && (this.inodes.get(replaced.ino) ?? replaced)
  }

  async setattr (ino: number, patch: AttrPatch): Promise<Inode> {
    return await this.inodeCall('setattr', ino, patch)
  }

  async commitFile (ino: number, content: FileContent, opts: { sync?: boolean, upload?: boolean } = {}): Promise<string[]> {
    return await this.call('commitFile', ino, content, opts)
  }

  /** Inline bytes stay with the data pool; checked here against the inode once this copy is as new as they are. */
  async readInline (ino: number): Promise<Buffer> {
    // A commit elsewhere may come in between: a second look gets its bytes.
    for (let tries = 0; tries < 3; tries++) {
      const link = this.poolLink
      if (!this.current || !link) throw this.unreachable()
      const { data, seq } = parseInline(await link.request(OP.inline, { ino }, { timeoutMs: this.opts.timeoutMs }))
      await this.reached(seq)
      if (inlineHash(data) === this.get(ino)?.inline) return data
    }
    throw new ChaacError('CHAAC_IO', `inode ${ino}: the data pool's inline bytes do not match the inode`)
  }

  /** Pooled slices stay with the data pool; the reader checks them against their id. */
  async readPooled (id: string): Promise<Buffer> {
    const link = this.poolLink
    if (!this.current || !link) throw this.unreachable()
    return parsePooled(await link.request(OP.pooled, { id }, { timeoutMs: this.opts.timeoutMs }))
  }

  async purge (ino: number): Promise<string[]> {
    return await this.call('purge', ino)
  }

  async recordCopy (binId: string, id: string, bytes: number, present: boolean, opts: CopyOptions = {}): Promise<void> {
    // Most reports repeat what the map says already (e.g. at start): no round trip for those.
    const rec = this.balls.get(id)
    const same = (rec?.bins.includes(binId) ?? false) === present &&
      (present && opts.cached === true) === (rec?.cached?.includes(binId) ?? false) &&
      (opts.writer === undefined || (rec?.writers?.includes(opts.writer) ?? false))
    if (same) return
    await this.call('recordCopy', binId, id, bytes, present, opts)
  }

  async releaseCopy (binId: string, id: string): Promise<boolean> {
    return await this.call('releaseCopy', binId, id)
  }

  async pinBalls (agentId: string, ids: string[]): Promise<string[][]> {
    return await this.call('pinBalls', agentId, ids)
  }

  async unpinBalls (agentId: string, ids: string[]): Promise<void> {
    await this.call('unpinBalls', agentId, ids)
  }

  async markInCloud (id: string, bytes: number, garbage = false): Promise<void> {
    await this.call('markInCloud', id, bytes, garbage)
  }

  async dropUpload (id: string): Promise<void> {
    await this.call('dropUpload', id)
  }

  async dropBall (id: string): Promise<void> {
    await this.call('dropBall', id)
  }

  async markGarbage (id: string, at: number): Promise<void> {
    await this.call('markGarbage', id, at)
  }

  async keepBall (id: string): Promise<void> {
    await this.call('keepBall', id)
  }

  async markNotInCloud (id: string): Promise<void> {
    await this.call('markNotInCloud', id)
  }

  async reportAgent (report: AgentReport): Promise<void> {
    await this.call('reportAgent', report)
  }

  async changePolicy (policy: string, by: string): Promise<ClusterSettings | undefined> {
    return (await this.call('changePolicy', policy, by)) as ClusterSettings | undefined
  }

  async sync (): Promise<void> {
    await this.call('sync')
  }

  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.retryTimer)
    await this.poolLink?.close()
  }
}
