// Wires the agent's parts together, starts them in order and stops them in
// reverse. No logic of its own.
import { randomUUID } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { HttpApi } from './api/http-api.ts'
import type { CloudTier } from './cloud/cloud-tier.ts'
import { DirCloud } from './cloud/dir-cloud.ts'
import { S3Cloud } from './cloud/s3-cloud.ts'
import type { AgentConfig, CloudSpec } from './config.ts'
import { ContextMonitor } from './context/context-monitor.ts'
import type { HostProbe } from './context/host-context.ts'
import { SiProbe } from './context/si-probe.ts'
import { CloudCollector } from './fs/cloud-collector.ts'
import { CloudUploader } from './fs/cloud-uploader.ts'
import { Filesystem } from './fs/filesystem.ts'
import { ChaacMount } from './fuse/mount.ts'
import { DataPool } from './meta/data-pool.ts'
import { Membership } from './meta/membership.ts'
import type { Pool } from './meta/pool.ts'
import type { AgentReport } from './meta/schema.ts'
import { CLUSTER_MAX_FRAME_BYTES } from './meta/pool-protocol.ts'
import { PoolReplica } from './meta/pool-replica.ts'
import { PoolService } from './meta/pool-service.ts'
import { listenPeers, type PeerServer } from './net/peer-server.ts'
import { BallStore } from './store/ball-store.ts'
import { Bin } from './store/bin.ts'
import { VERSION } from './version.ts'

export class Agent {
  readonly version = VERSION
  readonly startedAt = Date.now()
  private closing?: Promise<void>

  private constructor (
    readonly id: string,
    readonly config: AgentConfig,
    readonly pool: Pool,
    readonly store: BallStore,
    readonly fs: Filesystem,
    readonly uploader: CloudUploader,
    readonly collector: CloudCollector,
    readonly context: ContextMonitor,
    readonly mount: ChaacMount,
    readonly http: HttpApi,
    private readonly log: Logger
  ) {
    this.membership = new Membership(pool, () => this.report(), config.contextIntervalMs, log)
  }

  readonly membership: Membership

  /** Peer links: the server (roles pool and join), and the address peers reach it at. */
  peers?: PeerServer
  peerUrl: string | null = null

  static async start (config: AgentConfig, log: Logger, probe: HostProbe = new SiProbe()): Promise<Agent> {
    await mkdir(config.data, { recursive: true })
    const id = await agentId(config.data)
    // First, so that a wrong endpoint, bad credentials or a missing bucket stop the agent before it mounts.
    const cloud = config.cloud && cloudTier(config.cloud)
    await cloud?.open()
    const { role } = config.cluster
    const pool = await openPool(config, id, log)
    const bins = config.bins.map((spec) => new Bin(spec))
    await Promise.all(bins.map(async (b) => await b.open()))
    const store = new BallStore({
      bins, cloud, writePolicy: config.writePolicy, eviction: config.eviction, inCloud: (ball) => pool.inCloud(ball), log
    })
    const record = (p: Promise<void>): void => { p.catch((err) => log.error({ err }, 'could not update the map of balls')) }
    store.on('copy', (bin, ball, bytes, present) => record(pool.recordCopy(bin, ball, bytes, present)))
    store.on('uploaded', (ball, bytes) => record(pool.markInCloud(ball, bytes, !store.isPinned(ball) && !pool.isReferenced(ball))))
    await reconcileCopies(pool, bins)

    const fs = new Filesystem({ pool, store, chunkSize: config.chunkSize, cacheSkipOver: config.cacheSkipOver, log })
    // The pool's agent collects for the whole namespace, before any other agent is let in.
    if (role !== 'join') await fs.collectGarbage()
    await store.fitCapacity()
    const uploader = new CloudUploader(pool, store, log)
    if (store.writePolicy === 'async') uploader.start()
    const collector = new CloudCollector(pool, store, config.cloudGcGraceMs, log)
    if (cloud && role !== 'join') collector.start()
    const context = new ContextMonitor(probe, config.data, config.contextIntervalMs, log)
    context.start()
    const mount = new ChaacMount(config.mount, fs, log, { attrTimeout: config.attrTimeout })
    mount.followChanges(pool, id)
    const agent = new Agent(id, config, pool, store, fs, uploader, collector, context, mount, new HttpApi(), log)
    pool.on('synced', () => {
      agent.membership.reportNow()
      // Copies recorded while the pool was away were lost with their calls.
      reconcileCopies(pool, bins).catch((err) => log.warn({ err: (err as Error).message }, 'could not reconcile the map of balls'))
    })
    try {
      if (role !== 'single') {
        const service = pool instanceof DataPool ? new PoolService(pool, log) : undefined
        agent.peers = await listenPeers({
          ...config.cluster.listen, secret: config.cluster.secret, localId: id, log, maxFrameBytes: CLUSTER_MAX_FRAME_BYTES,
          onLink: (link) => service?.attach(link)
        })
        agent.peerUrl = `ws://${hostPort(config.cluster.listen.host, agent.peers.port)}`
      }
      await mount.mount()
      await agent.http.listen(agent, config.http.host, config.http.port)
      await agent.membership.join()
    } catch (err) {
      await agent.close()
      throw err
    }
    return agent
  }

  /** What this agent tells the data pool about itself. */
  report (): AgentReport {
    const addr = this.http.address
    return {
      id: this.id,
      peer: this.peerUrl,
      http: addr ? hostPort(addr.address, addr.port) : null,
      bins: this.store.bins.map((b) => ({ id: b.id, level: b.level, dir: b.dir, capacity: b.capacity, used: b.used, balls: b.entries.size })),
      context: this.context.latest ?? null
    }
  }

  /** Safe to call twice; stops in reverse: unmount, drain writes, uploads, HTTP, context, ball store, LevelDB. */
  async close (): Promise<void> {
    const step = async (name: string, fn: () => Promise<unknown>): Promise<void> => {
      this.log.debug({ step: name }, 'shutdown')
      await fn()
    }
    this.closing ??= (async () => {
      await step('unmount', async () => await this.mount.unmount())
      await step('commit open files', async () => await this.fs.commitAll()
        .catch((err) => this.log.error({ err }, 'could not commit open files at shutdown')))
      await step('uploads', async () => await this.uploader.close())
      await step('cloud garbage', async () => await this.collector.close())
      await step('http', async () => await this.http.close())
      await step('context', async () => this.context.close())
      await step('membership', async () => await this.membership.close())
      await step('peers', async () => await this.peers?.close())
      await step('ball store', async () => await this.store.close())
      await step('data pool', async () => await this.pool.close())
    })()
    await this.closing
  }
}

async function openPool (config: AgentConfig, id: string, log: Logger): Promise<Pool> {
  const { role, pool: url, secret } = config.cluster
  if (role === 'join' && url !== undefined) return await PoolReplica.connect({ url, agentId: id, secret, log })
  return await DataPool.open(join(config.data, 'meta'), { agentId: id, lazyCreates: role === 'single' })
}

function hostPort (host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}

function cloudTier (spec: CloudSpec): CloudTier {
  return spec.kind === 'dir' ? new DirCloud(spec.dir) : new S3Cloud(spec)
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

// The bins are the truth about which copies exist; the map of balls follows them.
async function reconcileCopies (pool: Pool, bins: Bin[]): Promise<void> {
  for (const bin of bins) {
    for (const [ball, entry] of bin.entries) await pool.recordCopy(bin.id, ball, entry.bytes, true)
  }
  const local = new Map(bins.map((b) => [b.id, b]))
  for (const [ball, rec] of pool.balls) {
    for (const binId of rec.bins) {
      const bin = local.get(binId)
      if (bin && !bin.has(ball)) await pool.recordCopy(binId, ball, rec.bytes, false)
    }
  }
}
