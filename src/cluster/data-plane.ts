// The data plane of a cluster, on every agent: it serves the balls of this
// agent's bins to its peers and fetches theirs (remote cache hits), places
// each new ball in k bins on distinct hosts chosen by the allocator (this
// agent's own bins among them, peers asked to pull the ball from here), and
// drops the local copies of balls that became garbage. The map of balls and
// the membership records, replicated from the data pool, say who holds what.
import { ChaacError } from '../errors.ts'
import type { Pool } from '../meta/pool.ts'
import { isAlive } from '../meta/membership.ts'
import { durableCopies, type AgentReport } from '../meta/schema.ts'
import { MAX_STREAM_BYTES } from '../net/frames.ts'
import { StreamReply, type Handlers, type NetLog, type PeerLink } from '../net/peer-link.ts'
import { Peers } from '../net/peers.ts'
import { Allocator } from '../placement/allocator.ts'
import type { Policy } from '../placement/types.ts'
import { peekHeaderLength } from '../store/ball-codec.ts'
import type { CloudTier } from '../cloud/cloud-tier.ts'
import type { LocalBalls } from '../balls/local.ts'
import type { NewBall, RemoteBalls, RemoteSource } from '../balls/types.ts'
import { BALL_OP, parseGet, parsePull, parsePulled, parseSync, type PullRequest } from './ball-protocol.ts'
import { binOwners, holders, hostOf, offlineBins, placementBins, rankPeers, type ClusterBin } from './view.ts'

export interface DataPlaneOptions {
  agentId: string
  pool: Pool
  /** This agent's bins: served to peers, and where this agent's copies of new balls go. */
  local: LocalBalls
  /** Where a pull falls back to when no peer has the ball. */
  cloud?: CloudTier
  /** This agent as it would report itself now (its bins' use is current). */
  self: () => AgentReport
  replicas: number
  policy: Policy
  /** Deadline of a request to a peer; streamed balls get more by their size. */
  peerTimeoutMs: number
  /** How often agents report (an agent silent for three reports is not alive). */
  intervalMs: number
  secret?: string
  maxFrameBytes: number
  /** The address to dial peers from. */
  localAddress?: string
  log: NetLog
}

/** The slowest a peer may stream a ball (bytes per ms, 10 MB/s) before its deadline passes. */
const MIN_BYTES_PER_MS = 10_000
/** Bytes that cover the header of a ball of up to 127 blocks; asked first when a ball's size is unknown. */
const HEADER_PROBE = 4096
/**
 * How the links of a cluster stream balls: chunks of 1 MiB (fewer frames for
 * the same bytes), up to 8 MiB in flight per link (several balls read ahead).
 */
export const BALL_STREAMING = { chunkBytes: 1024 * 1024, windowBytes: 8 * 1024 * 1024 }

export interface Allocation {
  id: string
  agent: string
  host: string
  level: string
  dir: string
}

export class DataPlane implements RemoteBalls {
  readonly peers: Peers
  /** Replaced when the cluster's policy changes (setPolicy). */
  allocator: Allocator
  private readonly garbage = new Set<string>()
  private collecting?: Promise<void>
  private readonly unpins = new Set<string>()
  private unpinTimer?: NodeJS.Timeout
  private closed = false

  constructor (private readonly opts: DataPlaneOptions) {
    this.allocator = new Allocator({ policy: opts.policy, seed: Math.floor(Math.random() * 2 ** 31) })
    this.peers = new Peers({
      localId: opts.agentId,
      secret: opts.secret,
      log: opts.log,
      handlers: this.handlers(),
      urlOf: (id) => opts.pool.agents.get(id)?.peer,
      maxFrameBytes: opts.maxFrameBytes,
      ...BALL_STREAMING,
      connectTimeoutMs: Math.min(opts.peerTimeoutMs, 5_000),
      localAddress: opts.localAddress
    })
  }

  /**
   * Starts dropping the local copies of balls that become garbage (checking
   * every local copy once now), and dialling again at once a peer that
   * reports to the data pool after a failure.
   */
  start (): void {
    const { pool, intervalMs } = this.opts
    pool.on('change', (_seq, ops) => {
      for (const op of ops) {
        if (op.key.startsWith('b!')) this.check(op.key.slice(2))
        const agent = op.key.startsWith('a!') ? pool.agents.get(op.key.slice(2)) : undefined
        if (agent && isAlive(agent, Date.now(), intervalMs)) this.peers.forgive(agent.id)
      }
    })
    pool.on('synced', () => {
      for (const id of pool.agents.keys()) this.peers.forgive(id)
      this.sweep()
      this.unpinLeftovers()
    })
    this.sweep()
  }

  /** Serves a peer on a link it dialled. */
  accept (link: PeerLink): void {
    this.peers.accept(link)
  }

  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.unpinTimer)
    await this.collecting
    await this.peers.close()
  }

  // ---- reads ----

  sources (id: string): RemoteSource[] {
    const rec = this.opts.pool.balls.get(id)
    if (!rec) return []
    const { agentId, pool, intervalMs } = this.opts
    const candidates = holders(rec, pool.agents, agentId, Date.now(), intervalMs).map((a) => ({
      agent: a.id, context: a.context, rttMs: this.peers.rttMs(a.id), suspect: this.peers.isSuspect(a.id)
    }))
    return rankPeers(candidates).map((c) => this.source(c.agent, rec.bytes))
  }

  /** A copy of a ball on agent `agent`, read over this agent's link to it. */
  source (agent: string, bytes = 0): RemoteSource {
    return {
      agent,
      readRaw: async (id, start, length, into) => await this.getRange(agent, id, start, length, into),
      readBall: async (id) => await this.readBall(agent, id, bytes)
    }
  }

  private async readBall (agent: string, id: string, known: number): Promise<Buffer> {
    let bytes = known
    if (bytes === 0) {
      const head = await this.getRange(agent, id, 0, HEADER_PROBE)
      const length = peekHeaderLength(head)
      if (length === null) throw new ChaacError('CHAAC_BALL_CORRUPT', `ball ${id}: the copy on peer ${agent} has no header`)
      bytes = length + head.readUInt32BE(4)
    }
    const raw = Buffer.allocUnsafe(bytes)
    let got = 0
    // A stream carries at most MAX_STREAM_BYTES: a ball of the largest chunk size comes in two.
    while (got < bytes) {
      const part = await this.getRange(agent, id, got, Math.min(MAX_STREAM_BYTES, bytes - got), raw.subarray(got))
      if (part.length === 0) break
      got += part.length
    }
    return raw.subarray(0, got)
  }

  private async getRange (agent: string, id: string, start: number, length: number, into?: Buffer): Promise<Buffer> {
    const buf = into !== undefined && into.length >= length ? into : Buffer.allocUnsafe(length)
    try {
      const link = await this.peers.link(agent)
      const reply = await link.requestInto(BALL_OP.get, { id, start, length }, buf, { timeoutMs: this.transferMs(length) })
      this.peers.trust(agent)
      return buf.subarray(0, reply.bytes)
    } catch (err) {
      this.peers.suspect(agent)
      throw err
    }
  }

  private transferMs (bytes: number): number {
    return this.opts.peerTimeoutMs + Math.ceil(bytes / MIN_BYTES_PER_MS)
  }

  // ---- writes ----

  /**
   * Stores a new ball in `replicas` bins on distinct hosts, as the allocator
   * chooses among the bins of the agents alive: this agent's own bin if
   * chosen, peers asked to pull it from here. A bin that fails is replaced
   * by another; with fewer hosts than replicas, one copy per host. Resolves
   * once the copies are stored and on the map of balls.
   */
  async place (ball: NewBall): Promise<void> {
    const { pool, agentId, replicas } = this.opts
    const bytes = ball.header.length + ball.data.length
    const have = new Set<string>()
    let writer: string | undefined = agentId
    const known = pool.balls.get(ball.id)
    if (known !== undefined && (known.refs > 0 || known.bins.length > 0)) {
      // Known content: pinned for this writer, the durable copies there are now stay until its commit.
      const [durable] = await pool.pinBalls(agentId, [ball.id])
      writer = undefined
      const owners = binOwners(pool.agents.values())
      // A copy in a stopped data container cannot be read now: it does not count.
      const offline = offlineBins([this.opts.self()])
      for (const binId of durable) {
        if (offline.has(binId)) continue
        const owner = owners.get(binId)?.id
        const rec = owner === undefined ? undefined : pool.agents.get(owner)
        if (owner === agentId || (rec && isAlive(rec, Date.now(), this.opts.intervalMs))) have.add(owner as string)
      }
    }
    const failed = new Set<string>()
    let failure: unknown
    while (have.size < replicas) {
      const bins = this.bins().filter((b) => !have.has(b.host) && !failed.has(b.host))
      const chosen = this.allocator.allocate(bins, { size: bytes, k: replicas - have.size, writerHost: agentId })
      if (chosen.length === 0) break
      await Promise.all(chosen.map(async (bin) => {
        try {
          await this.copyTo(bin, ball, bytes, writer)
          have.add(bin.host)
        } catch (err) {
          failed.add(bin.host)
          failure = err
          this.opts.log.warn({ ball: ball.id, peer: bin.agent, err: (err as Error).message }, 'could not store a copy of a new ball; choosing another bin')
        }
      }))
    }
    if (have.size === 0) {
      throw failure ?? new ChaacError('CHAAC_NO_SPACE', `no bin of the cluster has room for a ball of ${bytes} bytes`)
    }
  }

  private async copyTo (bin: ClusterBin, ball: NewBall, bytes: number, writer: string | undefined): Promise<void> {
    if (bin.agent === this.opts.agentId) {
      await this.opts.local.storeDurable(ball, { bin: bin.id, writer })
      return
    }
    await this.pullTo(bin.agent, { id: ball.id, bytes, from: [this.opts.agentId], cloud: false, bin: bin.id, writer })
  }

  /**
   * Stores one more durable copy of a ball held here on another host that
   * holds none yet (a bin of this agent is being emptied and has no room
   * left elsewhere on this host), as the allocator chooses.
   */
  async copyElsewhere (ball: NewBall): Promise<void> {
    const { pool, agentId } = this.opts
    const bytes = ball.header.length + ball.data.length
    const rec = pool.balls.get(ball.id)
    const owners = binOwners(pool.agents.values())
    const have = new Set((rec ? durableCopies(rec) : []).map((bin) => owners.get(bin)?.id))
    const bins = this.bins().filter((b) => b.agent !== agentId && !have.has(b.host))
    const [bin] = this.allocator.allocate(bins, { size: bytes, k: 1, writerHost: agentId })
    if (bin === undefined) throw new ChaacError('CHAAC_NO_SPACE', `ball ${ball.id}: no other bin of the cluster, on a host without a copy, has room for it`, { ball: ball.id })
    await this.pullTo(bin.agent, { id: ball.id, bytes, from: [agentId], cloud: false, bin: bin.id })
  }

  /** Has agent `agent` store a durable copy of a ball, fetched from `req.from` (or the cloud tier); the bin it went to. */
  async pullTo (agent: string, req: PullRequest): Promise<string> {
    if (agent === this.opts.agentId) return await this.pullHere(req)
    // The agent fetches from each source in turn, then writes: one transfer deadline each.
    const timeoutMs = this.transferMs(req.bytes) * (req.from.length + (req.cloud ? 1 : 0) + 1)
    try {
      const link = await this.peers.link(agent)
      const bin = parsePulled(await link.request(BALL_OP.pull, req, { timeoutMs }))
      this.peers.trust(agent)
      return bin
    } catch (err) {
      this.peers.suspect(agent)
      throw err
    }
  }

  private async pullHere (req: PullRequest): Promise<string> {
    return await this.opts.local.pull(req.id, async () => await this.fetch(req), { bin: req.bin, writer: req.writer })
  }

  // The stored ball from the first source that has it; the store checks it.
  private async fetch (req: PullRequest): Promise<Buffer> {
    let failure: unknown
    for (const agent of req.from) {
      if (agent === this.opts.agentId) continue
      try {
        return await this.readBall(agent, req.id, req.bytes)
      } catch (err) {
        failure = err
      }
    }
    const cloud = this.opts.cloud
    if (req.cloud && cloud) return await cloud.readBall(req.id)
    throw failure ?? new ChaacError('CHAAC_BALL_MISSING', `ball ${req.id}: no source to fetch it from`)
  }

  /** The bins a new ball of `size` would go to now. */
  allocate (size: number, writerHost = this.opts.agentId): Allocation[] {
    const owners = binOwners([this.opts.self(), ...this.opts.pool.agents.values()])
    return this.allocator.allocate(this.bins(), { size, k: this.opts.replicas, writerHost }).map((b) => ({
      id: b.id, agent: b.agent, host: hostOf(owners.get(b.id) ?? this.opts.self()), level: b.level, dir: b.dir
    }))
  }

  /** Places new balls by another policy from now on (the cluster's settings changed). */
  setPolicy (policy: Policy): void {
    if (policy !== this.allocator.policy) this.allocator = new Allocator({ policy, seed: Math.floor(Math.random() * 2 ** 31) })
  }

  /** The bins of the agents alive, for the allocator. */
  bins (): ClusterBin[] {
    return placementBins(this.opts.pool.agents.values(), this.opts.self(), Date.now(), this.opts.intervalMs)
  }

  async sync (ids: string[]): Promise<void> {
    const { pool, agentId, intervalMs } = this.opts
    const byAgent = new Map<string, string[]>()
    for (const id of ids) {
      const rec = pool.balls.get(id)
      if (!rec) continue
      for (const agent of holders(rec, pool.agents, agentId, Date.now(), intervalMs, false)) {
        byAgent.set(agent.id, [...(byAgent.get(agent.id) ?? []), id])
      }
    }
    // A peer that does not answer in time keeps its copy as it is; fsync goes on with the others.
    await Promise.all([...byAgent].map(async ([agent, balls]) => {
      try {
        await (await this.peers.link(agent)).request(BALL_OP.sync, { ids: balls }, { timeoutMs: this.opts.peerTimeoutMs })
      } catch (err) {
        this.peers.suspect(agent)
        this.opts.log.warn({ peer: agent, err: (err as Error).message }, 'a peer could not flush its copies of balls to stable storage')
      }
    }))
  }

  // ---- writers' pins and garbage ----

  unpinned (id: string): void {
    this.unpins.add(id)
    // One call for the balls of a commit.
    this.unpinTimer ??= setTimeout(() => {
      this.unpinTimer = undefined
      const ids = [...this.unpins]
      this.unpins.clear()
      this.opts.pool.unpinBalls(this.opts.agentId, ids).catch((err: Error) => {
        this.opts.log.warn({ balls: ids.length, err: err.message }, 'could not unpin balls at the data pool; will try again once in touch')
      })
    }, 10)
  }

  // Pins whose unpin was lost while the pool was away.
  private unpinLeftovers (): void {
    for (const [id, rec] of this.opts.pool.balls) {
      if (rec.writers?.includes(this.opts.agentId) === true && !this.opts.local.isPinned(id)) this.unpinned(id)
    }
  }

  /** Checks every local copy: those of balls no file and no writer needs go. */
  sweep (): void {
    for (const id of this.opts.local.localBalls()) this.check(id)
  }

  private check (id: string): void {
    const { pool, local } = this.opts
    if (this.closed || !pool.reachable || !local.isLocal(id) || pool.inUse(id) || local.isPinned(id)) return
    this.garbage.add(id)
    this.collecting ??= this.collect().finally(() => { this.collecting = undefined })
  }

  private async collect (): Promise<void> {
    for (const id of this.garbage) {
      this.garbage.delete(id)
      if (this.closed) return
      // The pool agrees before anything goes (local.forget asks it for each copy).
      await this.opts.local.forget(id).catch((err: Error) => {
        this.opts.log.warn({ ball: id, err: err.message }, 'could not drop a copy of an unreferenced ball')
      })
    }
  }

  // ---- serving peers ----

  private handlers (): Handlers {
    return {
      [BALL_OP.get]: async (body) => {
        const { id, start, length } = parseGet(body)
        return new StreamReply(await this.opts.local.rawRange(id, start, length))
      },
      [BALL_OP.pull]: async (body) => ({ bin: await this.pullHere(parsePull(body)) }),
      [BALL_OP.sync]: async (body) => {
        await this.opts.local.syncLocal(parseSync(body).ids)
        return {}
      }
    }
  }
}

