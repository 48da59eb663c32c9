// Wires the agent's parts together, starts them in order and stops them in
// reverse. No logic of its own.
import { randomUUID } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { HttpApi } from './api/http-api.ts'
import { containerSamples } from './api/containers-api.ts'
import { ClusterHistory } from './history/cluster-history.ts'
import { HistoryStore } from './history/history-store.ts'
import type { CloudTier } from './cloud/cloud-tier.ts'
import { DirCloud } from './cloud/dir-cloud.ts'
import { S3Cloud } from './cloud/s3-cloud.ts'
import type { AgentConfig, CloudSpec } from './config.ts'
import { ContextMonitor } from './context/context-monitor.ts'
import { ContainerIo } from './context/container-io.ts'
import { NamespaceVolumes } from './docker/namespace-volumes.ts'
import { PluginSocket } from './docker/plugin-socket.ts'
import { VolumeDriver } from './docker/volume-driver.ts'
import { ContainerProbe } from './context/container-probe.ts'
import type { HostProbe } from './context/host-context.ts'
import { SiProbe } from './context/si-probe.ts'
import { CloudCollector } from './fs/cloud-collector.ts'
import { CloudUploader } from './fs/cloud-uploader.ts'
import { Filesystem } from './fs/filesystem.ts'
import { UncommittedLog } from './fs/uncommitted-log.ts'
import { ChaacMount } from './fuse/mount.ts'
import { binding } from './fuse/lowlevel.ts'
import { BALL_STREAMING, DataPlane } from './cluster/data-plane.ts'
import { Repairer } from './cluster/repair.ts'
import { hasDurableCopy } from './cluster/view.ts'
import { Balls } from './balls/balls.ts'
import { LocalBalls } from './balls/local.ts'
import { DataPool } from './meta/data-pool.ts'
import { ChaacError } from './errors.ts'
import { PoolChanges } from './meta/pool-changes.ts'
import { PoolState } from './meta/pool-state.ts'
import { differences, settingsOf, settle, type ClusterSettings } from './meta/settings.ts'
import { isPolicy, type Policy } from './placement/types.ts'
import { Membership, isAlive } from './meta/membership.ts'
import type { Pool } from './meta/pool.ts'
import { SETTINGS_KEY, type AgentCounters, type AgentReport } from './meta/schema.ts'
import { CLUSTER_MAX_FRAME_BYTES } from './meta/pool-protocol.ts'
import { EtcdPool } from './meta/etcd-pool.ts'
import { PoolReplica } from './meta/pool-replica.ts'
import { PoolService } from './meta/pool-service.ts'
import { BackgroundWorker } from './cluster/worker.ts'
import { listenPeers, type PeerServer } from './net/peer-server.ts'
import { Bin } from './store/bin.ts'
import { ContainerBins } from './containers/container-bins.ts'
import { DockerEngine } from './containers/docker-engine.ts'
import { Launcher } from './containers/launcher.ts'
import { AutoBins } from './containers/auto-bins.ts'
import { placementBins } from './cluster/view.ts'
import { requestJson } from './http-client.ts'
import { VERSION } from './version.ts'

export class Agent {
  readonly version = VERSION
  readonly startedAt = Date.now()
  private closing?: Promise<void>

  private constructor (
    readonly id: string,
    readonly config: AgentConfig,
    readonly pool: Pool,
    readonly store: Balls,
    readonly fs: Filesystem,
    readonly uploader: CloudUploader,
    readonly collector: CloudCollector,
    readonly context: ContextMonitor,
    readonly mount: ChaacMount,
    readonly http: HttpApi,
    readonly log: Logger
  ) {
    this.membership = new Membership(pool, () => this.report(), config.contextIntervalMs, log)
    this.policy = config.cluster.policy
    const samples = new HistoryStore({
      file: join(config.data, 'history.jsonl'), retentionMs: HISTORY_RETENTION_MS, intervalMs: config.historyIntervalMs, maxSeries: HISTORY_MAX_SERIES, log
    })
    this.history = new ClusterHistory(samples, () => this.liveReports(), config.historyIntervalMs, () => containerSamples(this))
  }

  /** The cluster's history, sampled from the membership records. */
  readonly history: ClusterHistory

  // This agent as it is now, and every other agent alive as it last reported.
  private liveReports (): AgentReport[] {
    const now = Date.now()
    const others = [...this.pool.agents.values()].filter((a) => a.id !== this.id && isAlive(a, now, this.config.contextIntervalMs))
    return [this.report(), ...others]
  }

  /** The allocator policy in use: the cluster's settings', followed live. */
  policy: Policy

  readonly membership: Membership

  /** Peer links: the server (roles pool and join), and the address peers reach it at. */
  peers?: PeerServer
  peerUrl: string | null = null
  /** The data plane (roles pool and join); re-replication on the pool's agent. */
  plane?: DataPlane
  repairer?: Repairer
  /** The election of the agent that does the background work of a cluster on etcd. */
  worker?: BackgroundWorker
  /** The Docker engine of this host, and the data containers that are this agent's bins. */
  readonly engine = new DockerEngine()
  containerBins?: ContainerBins
  launcher?: Launcher
  /** --auto-bins, where this agent runs the cluster's background work (or is alone). */
  autoBins?: AutoBins
  /** Files with changes not committed yet, written down for the agent that may take the mount over. */
  uncommitted?: UncommittedLog
  /** The Docker volume driver (unless --volume-driver none), and why its socket does not listen when it does not. */
  volumeDriver?: { name: string, driver: VolumeDriver, socket: PluginSocket, reason?: string }

  static async start (config: AgentConfig, log: Logger, probe: HostProbe = new SiProbe()): Promise<Agent> {
    await mkdir(config.data, { recursive: true })
    const id = await agentId(config.data)
    const pool = await openPool(config, id, log)
    let cloud: CloudTier | undefined
    try {
      config = await withClusterSettings(pool, config, id)
      // Before anything else, so that a wrong endpoint, bad credentials or a missing bucket stop the agent before it mounts.
      cloud = config.cloud && cloudTier(config.cloud)
      await cloud?.open()
    } catch (err) {
      await pool.close()
      throw err
    }
    const { role } = config.cluster
    const bins = config.bins.map((spec) => new Bin(spec))
    await Promise.all(bins.map(async (b) => await b.open()))
    const local = new LocalBalls({
      bins,
      eviction: config.eviction,
      inCloud: (ball) => pool.inCloud(ball),
      durableElsewhere: role === 'single' ? undefined : (ball) => hasDurableCopy(pool.balls, pool.agents, ball, id, Date.now(), config.contextIntervalMs),
      record: async (bin, ball, bytes, present, kind) => await pool.recordCopy(bin, ball, bytes, present, kind),
      release: async (bin, ball) => await pool.releaseCopy(bin, ball),
      log
    })
    await local.reconcile(pool.balls)
    // The data plane serves this agent's bins to peers; the reader and the writer are given it.
    // It reports this agent only once started, after the agent below exists.
    const plane: DataPlane | undefined = role === 'single' ? undefined : dataPlane(config, { id, pool, local, cloud, self: (): AgentReport => agent.report(), log })
    const store = new Balls({ local, cloud, writePolicy: config.writePolicy, inCloud: (ball) => pool.inCloud(ball), remote: plane, log })
    store.writer.on('uploaded', (ball, bytes) => {
      pool.markInCloud(ball, bytes, !store.isPinned(ball) && !pool.inUse(ball)).catch((err) => log.error({ err }, 'could not update the map of balls'))
    })

    const { log: uncommitted, previous: lostChanges } = await UncommittedLog.open(join(config.data, 'uncommitted'))
    const fs = new Filesystem({
      pool, store, chunkSize: config.chunkSize, cacheSkipOver: config.cacheSkipOver, inlineMax: config.inlineMax, log, firstHandle: firstHandle(), uncommitted, lostChanges
    })
    const mount = new ChaacMount(config.mount, fs, log, {
      attrTimeout: config.attrTimeout, negativeEntries: config.cluster.role === 'single', busyPollUs: config.busyPollUs, keeperDir: config.data, shareFolder: config.shareFolder
    })
    // Processes of a mount taken over may still hold files unlinked while open: those wait for their release.
    const takingOver = await mount.takeoverCandidate() !== undefined
    // The kernel still knows the numbers of files the dead agent created and never stored.
    if (takingOver && pool instanceof DataPool && lostChanges.size > 0) pool.skipInodes([...lostChanges].reduce((a, b) => Math.max(a, b), 0))
    // The pool's agent collects for the whole namespace, before any other agent is let in; on etcd, where
    // another agent may hold a file unlinked while open, each agent collects only the copies it holds.
    if (role !== 'join') await fs.collectGarbage({ orphans: role !== 'etcd' && !takingOver })
    await local.fitCapacity()
    const uploader = new CloudUploader(pool, store, log)
    if (store.writePolicy === 'async') uploader.start()
    const collector = new CloudCollector(pool, store, config.cloudGcGraceMs, log)
    if (cloud && (role === 'single' || role === 'pool')) collector.start()
    const context = new ContextMonitor(probe, config.data, config.contextIntervalMs, log, new ContainerProbe(new ContainerIo(() => binding.pidIo())))
    context.start()
    mount.followChanges(pool, id)
    const agent = new Agent(id, config, pool, store, fs, uploader, collector, context, mount, new HttpApi(), log)
    agent.uncommitted = uncommitted
    await agent.history.store.load()
    agent.plane = plane
    pool.on('change', (_seq, ops) => {
      if (ops.some((op) => op.key === SETTINGS_KEY)) agent.followSettings()
    })
    pool.on('synced', () => {
      agent.followSettings()
      agent.membership.reportNow()
      // Copies recorded while the pool was away were lost with their calls.
      local.reconcile(pool.balls).catch((err) => log.warn({ err: (err as Error).message }, 'could not reconcile the map of balls'))
    })
    try {
      if (plane) {
        const service = pool instanceof DataPool ? new PoolService(pool, log) : undefined
        agent.peers = await listenPeers({
          ...config.cluster.listen, secret: config.cluster.secret, localId: id, log, maxFrameBytes: CLUSTER_MAX_FRAME_BYTES, ...BALL_STREAMING,
          onLink: (link) => {
            service?.attach(link)
            plane.accept(link)
          }
        })
        agent.peerUrl = `ws://${hostPort(config.cluster.listen.host, agent.peers.port)}`
        plane.start()
        if (role === 'pool') {
          const { replicas, rereplicateAfterMs: graceMs } = config.cluster
          agent.repairer = new Repairer(pool, plane, { replicas, graceMs, intervalMs: config.contextIntervalMs, log })
          agent.repairer.start()
        }
      }
      await mount.mount()
      if (mount.takenOver && lostChanges.size > 0) {
        log.warn({ inodes: [...lostChanges] }, `${lostChanges.size} files had changes the previous agent acknowledged and never committed: they are lost, and the processes that made them get EIO on those descriptors`)
      }
      await agent.http.listen(agent, config.http.host, config.http.port)
      // Once the mount is up: Docker bind-mounts the folders the driver names.
      if (config.volumeDriver !== undefined) agent.volumeDriver = await serveVolumes(config.volumeDriver, agent)
      await agent.membership.join()
      agent.followContainers()
      if (role === 'single' || role === 'pool') agent.autoBins = agent.startAutoBins()
      agent.history.start()
      if (pool instanceof EtcdPool && plane) {
        agent.worker = new BackgroundWorker({
          etcd: pool.etcd, prefix: pool.keyPrefix, agentId: id, ttlSeconds: WORKER_LEASE_SECONDS, log, onElected: () => agent.backgroundWork(plane)
        })
        agent.worker.start()
      }
    } catch (err) {
      // Programs were waiting on a mount taken over: it stays for the next agent.
      mount.handOver()
      await agent.close()
      throw err
    }
    return agent
  }

  /**
   * The work one agent of a cluster on etcd does for all (it won the
   * election): re-replication, cloud-tier garbage, and marking agents gone
   * once their lease expired. Returns what stops it.
   */
  backgroundWork (plane: DataPlane): () => Promise<void> {
    const { replicas, rereplicateAfterMs: graceMs } = this.config.cluster
    const repairer = new Repairer(this.pool, plane, { replicas, graceMs, intervalMs: this.config.contextIntervalMs, log: this.log })
    repairer.start()
    const autoBins = this.startAutoBins()
    if (this.store.cloud) this.collector.start()
    const liveness = setInterval(() => { void this.markExpired().then(async () => await this.purgeOrphans()) }, this.config.contextIntervalMs)
    liveness.unref()
    return async () => {
      clearInterval(liveness)
      await autoBins?.close()
      await repairer.close()
      await this.collector.stop()
    }
  }

  // An agent whose lease expired is gone from the moment it did, not only once its reports are overdue.
  private async markExpired (): Promise<void> {
    const pool = this.pool
    if (!(pool instanceof EtcdPool)) return
    try {
      const live = await this.worker?.liveAgents()
      if (!live) return
      for (const rec of pool.agents.values()) {
        if (rec.goneAt === undefined && !live.has(rec.id) && Date.now() - rec.seenAt > WORKER_LEASE_SECONDS * 1000) await pool.markGone(rec.id)
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not check which agents are alive')
    }
  }

  /**
   * Deletes the files no name refers to that no agent alive holds open (an
   * agent that held one died with it): each must have been seen so for
   * three reports, so that the agents holding it have said so.
   */
  private async purgeOrphans (): Promise<void> {
    const now = Date.now()
    const orphans = new Set(this.pool.orphans().map((n) => n.ino))
    for (const ino of this.orphansSeen.keys()) if (!orphans.has(ino)) this.orphansSeen.delete(ino)
    for (const ino of orphans) if (!this.orphansSeen.has(ino)) this.orphansSeen.set(ino, now)
    const held = new Set<number>()
    for (const rec of this.pool.agents.values()) if (isAlive(rec, now, this.config.contextIntervalMs)) for (const ino of rec.holds ?? []) held.add(ino)
    // Not old enough yet: counted as held.
    for (const [ino, since] of this.orphansSeen) if (now - since < 3 * this.config.contextIntervalMs) held.add(ino)
    try {
      const purged = await this.fs.purgeOrphans(held)
      if (purged > 0) this.log.info({ files: purged }, 'deleted files unlinked while open on agents that are gone')
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not delete files unlinked while open on agents that are gone')
    }
  }

  private readonly orphansSeen = new Map<number, number>()

  // Data containers labelled chaac.bin on this host become bins of this agent while they run.
  private followContainers (): void {
    const { store: { local }, pool, log } = this
    this.containerBins = new ContainerBins({
      engine: this.engine,
      agentId: this.id,
      log,
      attach: async (spec, dir) => {
        const bin = new Bin({ level: spec.level, dir, capacity: spec.capacity })
        await bin.open()
        try {
          local.addBin(bin)
        } catch (err) {
          await bin.close()
          throw err
        }
        await local.reconcile(pool.balls, [bin])
        this.membership.reportNow()
        return bin
      },
      detach: async (bin) => {
        await local.removeBin(bin)
        this.membership.reportNow()
      }
    })
    this.containerBins.start()
    const plane = this.plane
    this.launcher = new Launcher({
      engine: this.engine, bins: this.containerBins, local, agentId: this.id, log, elsewhere: plane && (async (ball) => await plane.copyElsewhere(ball))
    })
  }

  // With --auto-bins: launches a disk bin on the least loaded host when the disk bins fill up.
  private startAutoBins (): AutoBins | undefined {
    const auto = this.config.autoBins
    if (auto === undefined) return undefined
    const autoBins = new AutoBins({
      threshold: auto.fill,
      capacity: auto.capacity,
      bins: () => this.plane?.bins() ?? placementBins([], this.report(), Date.now(), this.config.contextIntervalMs),
      agents: () => this.liveReports(),
      launch: async (agent, capacity) => await this.launchDiskBin(agent, capacity),
      intervalMs: this.config.contextIntervalMs,
      log: this.log
    })
    autoBins.start()
    return autoBins
  }

  // A disk bin on an agent's host: here by the launcher, elsewhere through that agent's HTTP API (with this agent's admin token).
  private async launchDiskBin (agent: string, capacity: number): Promise<string> {
    if (agent === this.id) {
      if (!this.launcher) throw new ChaacError('CHAAC_NOT_SUPPORTED', 'the launcher is not running yet')
      return (await this.launcher.create({ level: 'disk', capacity })).id
    }
    const http = this.pool.agents.get(agent)?.http
    if (http === null || http === undefined) throw new ChaacError('CHAAC_NOT_FOUND', `agent ${agent} has no HTTP API`)
    const answer = await requestJson(http, '/api/v1/bins', { method: 'POST', body: { level: 'disk', capacity }, token: this.config.adminToken, timeoutMs: 600_000 })
    return (answer as { id: string }).id
  }

  /** Applies a change of the cluster's stored allocator policy. */
  followSettings (): void {
    const policy = this.pool.settings?.policy
    if (isPolicy(policy)) this.usePolicy(policy)
  }

  private usePolicy (policy: Policy): void {
    if (policy === this.policy) return
    this.log.info({ from: this.policy, to: policy }, `allocator policy changed from ${this.policy} to ${policy}`)
    this.policy = policy
    this.plane?.setPolicy(policy)
  }

  /**
   * Changes the cluster's allocator policy in its stored settings, which
   * every agent follows; an agent alone whose engine holds no settings
   * changes only its own, until it restarts.
   */
  async changePolicy (policy: Policy): Promise<void> {
    const stored = await this.pool.changePolicy(policy, `agent ${this.id} (PUT /api/v1/scheme)`)
    this.usePolicy(isPolicy(stored?.policy) ? stored.policy : policy)
  }

  /** Read outcomes and bytes through the mount so far, with the reads the binding's read threads served (local cache hits all). */
  counters (): AgentCounters {
    const native = this.mount.nativeReads()
    const outcomes = this.store.outcomes
    return {
      at: Date.now(),
      ...outcomes,
      localHit: outcomes.localHit + native.balls,
      bytesRead: this.fs.traffic.bytesRead + native.bytes,
      bytesWritten: this.fs.traffic.bytesWritten
    }
  }

  /** What this agent tells the data pool about itself. */
  report (): AgentReport {
    const addr = this.http.address
    return {
      id: this.id,
      peer: this.peerUrl,
      http: addr ? hostPort(addr.address, addr.port) : null,
      bins: [
        ...this.store.bins.map((b) => {
          const container = this.containerBins?.containerOf(b.id)?.info
          return {
            id: b.id, level: b.level, dir: b.dir, capacity: b.capacity, used: b.used, balls: b.entries.size,
            ...(container ? { container } : {}), ...(b.draining ? { draining: true } : {})
          }
        }),
        ...this.containerBins?.offline() ?? []
      ],
      context: this.context.latest ?? null,
      startedAt: this.startedAt,
      counters: this.counters(),
      ...(this.worker !== undefined ? { holds: this.fs.heldOrphans() } : {})
    }
  }

  /** Safe to call twice; stops in reverse: volume driver, unmount, drain writes, uploads, HTTP, context, ball store, LevelDB. */
  async close (): Promise<void> {
    const step = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
      this.log.debug({ step: name }, 'shutdown')
      await fn()
    }
    this.closing ??= (async () => {
      // First, so that Docker no longer finds the driver (nor a stale socket) while the mount goes.
      await step('volume driver', async () => await this.volumeDriver?.socket.close())
      await step('data containers', async () => this.containerBins?.close())
      await step('unmount', async () => await this.mount.unmount())
      await step('commit open files', async () => await this.fs.commitAll()
        .catch((err) => this.log.error({ err }, 'could not commit open files at shutdown')))
      await step('uncommitted log', async () => this.uncommitted?.close())
      await step('uploads', async () => await this.uploader.close())
      await step('cloud garbage', async () => await this.collector.close())
      await step('http', async () => await this.http.close())
      await step('context', async () => this.context.close())
      await step('history', async () => await this.history.close())
      await step('membership', async () => await this.membership.close())
      await step('auto bins', async () => await this.autoBins?.close())
      await step('re-replication', async () => await this.repairer?.close())
      await step('background worker', async () => await this.worker?.close())
      await step('data plane', async () => await this.plane?.close())
      await step('peers', async () => await this.peers?.close())
      await step('ball store', async () => await this.store.close())
      await step('data pool', async () => await this.pool.close())
    })()
    await this.closing
  }
}

/** The history is kept for an hour, of at most this many series (11 metrics of 360 agents; about 6 KiB each at 10 s). */
const HISTORY_RETENTION_MS = 3600_000
const HISTORY_MAX_SERIES = 4000

// How long the background worker keeps its election, and an agent its liveness key, without renewing them.
const WORKER_LEASE_SECONDS = 5

async function openPool (config: AgentConfig, id: string, log: Logger): Promise<Pool> {
  const { role, pool: url, secret } = config.cluster
  if (role === 'join' && url !== undefined) return await PoolReplica.connect({ url, agentId: id, secret, log, localAddress: dialFrom(config) })
  if (role === 'etcd' && config.cluster.meta !== undefined) return await EtcdPool.open({ spec: config.cluster.meta, agentId: id, log })
  return await DataPool.open(join(config.data, 'meta'), { agentId: id, lazyCreates: role === 'single' })
}

/**
 * The configuration with the cluster's settings: a setting the user gave
 * that contradicts them stops the agent; the others take the stored values.
 * The first agent of a cluster stores its own. An agent alone follows
 * settings only once `chaac format` wrote some: it has nobody to agree with,
 * and may be restarted with another chunk size.
 */
async function withClusterSettings (pool: Pool, config: AgentConfig, id: string): Promise<AgentConfig> {
  const mine = settingsOf(config, `agent ${id}`)
  const stored = pool instanceof PoolChanges && config.cluster.role !== 'single'
    ? await pool.claimSettings(mine)
    : pool instanceof PoolState ? pool.settings : undefined
  let s: ClusterSettings
  try {
    s = settle(stored, mine, config.settings?.given ?? {})
  } catch (err) {
    throw new ChaacError('CHAAC_INVALID', (err as Error).message)
  }
  if (differences(s, mine).length === 0) return config
  const cloud = s.cloud === mine.cloud ? config.cloud : config.settings?.cloudFor(s.cloud)
  return { ...config, chunkSize: s.chunkSize, cloud, cluster: { ...config.cluster, replicas: s.replicas, policy: s.policy as Policy } }
}

// Peers see an agent's links come from the address it listens on, as from its host.
function dialFrom (config: AgentConfig): string | undefined {
  const { host } = config.cluster.listen
  return isIP(host) !== 0 && host !== '0.0.0.0' && host !== '::' ? host : undefined
}

function hostPort (host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}

function cloudTier (spec: CloudSpec): CloudTier {
  return spec.kind === 'dir' ? new DirCloud(spec.dir) : new S3Cloud(spec)
}

/**
 * File handles start from a number no earlier agent on this host reached:
 * after a takeover, handles below it are the dead agent's, adopted at their
 * first use. A base of 1024 per millisecond since the epoch stays below
 * 2^53 (exact in a double) and ahead of any agent opening fewer than a
 * million files a second.
 */
function firstHandle (): number {
  return Date.now() * 1024
}

async function agentId (data: string): Promise<string> {
  const file = join(data, 'agent-id')
  try {
    return (await readFile(file, 'utf8')).trim()
  } catch {
    const id = randomUUID()
    await writeFile(file, id + '\n')
    return id
  }
}

/**
 * The Docker volume driver on its socket. A host where it cannot listen (no
 * right to /run/docker/plugins, another agent serving that name) still gets
 * its agent, without the driver: the log and /status say why.
 */
async function serveVolumes (name: string, agent: Agent): Promise<NonNullable<Agent['volumeDriver']>> {
  const { config, log } = agent
  const store = new NamespaceVolumes({
    pool: agent.pool,
    fs: agent.fs,
    chaacPath: config.mount,
    chunkSize: config.chunkSize,
    agentId: agent.id,
    isAlive: (id) => {
      const rec = agent.pool.agents.get(id)
      return rec !== undefined && isAlive(rec, Date.now(), config.contextIntervalMs)
    }
  })
  // An agent alone keeps one copy of each ball; a cluster keeps its --replicas.
  const driver = new VolumeDriver(store, agent.plane ? config.cluster.replicas : 1)
  const socket = new PluginSocket(PluginSocket.pathFor(name), driver)
  try {
    await socket.listen()
    log.info({ driver: name, socket: socket.path }, `Docker volume driver ${name} listening`)
    return { name, driver, socket }
  } catch (err) {
    const reason = (err as Error).message
    log.warn({ driver: name, socket: socket.path, err: reason }, `no Docker volume driver ${name}: ${reason}`)
    return { name, driver, socket, reason }
  }
}

function dataPlane (config: AgentConfig, parts: { id: string, pool: Pool, local: LocalBalls, cloud?: CloudTier, self: () => AgentReport, log: Logger }): DataPlane {
  const { replicas, policy, peerTimeoutMs, secret } = config.cluster
  return new DataPlane({
    agentId: parts.id,
    pool: parts.pool,
    local: parts.local,
    cloud: parts.cloud,
    self: parts.self,
    replicas,
    policy,
    peerTimeoutMs,
    intervalMs: config.contextIntervalMs,
    secret,
    maxFrameBytes: CLUSTER_MAX_FRAME_BYTES,
    localAddress: dialFrom(config),
    log: parts.log
  })
}
