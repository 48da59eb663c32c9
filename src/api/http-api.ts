// The agent's HTTP API (loopback by default): /status, /metrics and /api/v1/*.
// Handlers validate their input and answer 400 with a JSON error; unknown
// paths get 404.
import { timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { isChaacError } from '../errors.ts'
import { binOwners, hostOf } from '../cluster/view.ts'
import { dumpLines, poolSource } from '../meta/dump.ts'
import { describeEtcd } from '../meta/etcd-client.ts'
import { isAlive } from '../meta/membership.ts'
import { isFile } from '../meta/schema.ts'
import { Allocator } from '../placement/allocator.ts'
import { isPolicy, POLICIES } from '../placement/types.ts'
import { isLoopback } from '../net/peer-server.ts'
import type { AgentView } from './agent-view.ts'
import { agentRecords, agents, clusterBins, durablePlacementBins, liveHolders, liveness, ReplicationCache, replicasOf, spread } from './cluster-state.ts'
import { badPath, files } from './files.ts'
import { history } from './history-api.ts'
import { BadRequest, HttpError } from './http-error.ts'
import { buildMetrics } from './metrics.ts'
import { isDashboardPath, sendDashboardFile } from './dashboard.ts'
import { changeScheme, checkAdmin, scheme } from './scheme.ts'
import { binInPath, createBin, removeBin } from './bins-api.ts'
import { zones } from './zones-api.ts'
import { containers } from './containers-api.ts'

const MAX_PAGE = 1000

export class HttpApi {
  private server?: Server
  address?: AddressInfo

  async listen (agent: AgentView, host: string, port: number): Promise<void> {
    const metrics = buildMetrics(agent)
    const replication = new ReplicationCache()
    const routes: Record<string, (url: URL, req: IncomingMessage) => Promise<unknown> | unknown> = {
      'GET /status': () => status(agent),
      'GET /api/v1/bins': () => ({ bins: clusterBins(agent) }),
      'POST /api/v1/bins': async (_, req) => {
        checkAdmin(agent, req)
        return await createBin(agent, req, await readJson(req))
      },
      'GET /api/v1/balls': (url) => balls(agent, url),
      'GET /api/v1/location': (url) => location(agent, url),
      'POST /api/v1/allocation': async (_, req) => allocation(agent, await readJson(req)),
      'GET /api/v1/agents': () => agents(agent),
      'GET /api/v1/files': (url) => {
        const path = url.searchParams.get('path')
        const bad = badPath(path)
        if (bad !== undefined) throw new BadRequest(bad)
        return files(agent, path as string)
      },
      'GET /api/v1/replication': () => replication.get(agent),
      'GET /api/v1/history': (url) => history(agent, url),
      'GET /api/v1/zones': (url) => zones(agent, url),
      'GET /api/v1/containers': () => containers(agent),
      'GET /api/v1/scheme': () => scheme(agent),
      'PUT /api/v1/scheme': async (_, req) => {
        // The token first: a client without it learns nothing from the body's checks.
        checkAdmin(agent, req)
        return await changeScheme(agent, await readJson(req))
      }
    }
    const server = createServer((req, res) => {
      let url: URL
      try {
        url = new URL(req.url ?? '/', 'http://agent')
      } catch {
        // e.g. "//[": the URL parser throws, and an uncaught throw here would end the agent.
        sendError(res, 400, 'not a valid request URL')
        return
      }
      if (req.method === 'GET' && url.pathname === '/metrics') {
        metrics.metrics().then((text) => send(res, 200, text, metrics.contentType), (err) => sendError(res, 500, (err as Error).message))
        return
      }
      if ((req.method === 'GET' || req.method === 'HEAD') && isDashboardPath(url.pathname)) {
        void sendDashboardFile(url.pathname, req.method === 'HEAD', res)
        return
      }
      if (req.method === 'GET' && url.pathname === '/api/v1/meta/dump') {
        void sendDump(agent, req, res)
        return
      }
      const bin = req.method === 'DELETE' ? binInPath(url.pathname) : undefined
      const route = routes[`${req.method} ${url.pathname}`] ?? (bin === undefined
        ? undefined
        : async () => {
          checkAdmin(agent, req)
          return await removeBin(agent, req, bin)
        })
      if (!route) {
        const known = Object.keys(routes).some((r) => r.endsWith(' ' + url.pathname))
        sendError(res, known ? 405 : 404, known ? `method ${req.method} not allowed on ${url.pathname}` : `no such endpoint: ${url.pathname}`)
        return
      }
      Promise.resolve().then(() => route(url, req)).then(
        (body) => send(res, 200, JSON.stringify(body, null, 2) + '\n', 'application/json'),
        (err) => {
          if (err instanceof HttpError) sendError(res, err.status, err.message)
          else if (isChaacError(err, 'CHAAC_NOT_FOUND')) sendError(res, 404, err.message)
          else if (isChaacError(err)) sendError(res, 400, err.message)
          else sendError(res, 500, (err as Error).message)
        })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(port, host, () => resolve())
    })
    this.server = server
    this.address = server.address() as AddressInfo
  }

  async close (): Promise<void> {
    const server = this.server
    if (!server) return
    this.server = undefined
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

function send (res: ServerResponse, code: number, body: string, type: string): void {
  res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(body) })
  res.end(body)
}

function sendError (res: ServerResponse, code: number, message: string): void {
  send(res, code, JSON.stringify({ error: message }) + '\n', 'application/json')
}

// The whole metadata as `chaac meta dump` writes it, streamed. It holds the
// bytes of small files: beyond loopback only with the cluster secret.
async function sendDump (agent: AgentView, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const secret = agent.config.cluster.secret ?? ''
  const presented = Buffer.from(req.headers.authorization ?? '')
  const expected = Buffer.from(`Bearer ${secret}`)
  const allowed = isLoopback(req.socket.remoteAddress ?? '') ||
    (secret !== '' && presented.length === expected.length && timingSafeEqual(presented, expected))
  if (!allowed) {
    sendError(res, 403, 'the metadata dump is served beyond loopback only with the cluster secret (Authorization: Bearer <secret>)')
    return
  }
  let lines: AsyncGenerator<string>
  try {
    lines = dumpLines(await poolSource(agent.pool))
  } catch (err) {
    sendError(res, isChaacError(err, 'CHAAC_NOT_SUPPORTED') ? 409 : 500, (err as Error).message)
    return
  }
  res.writeHead(200, { 'content-type': 'application/x-ndjson' })
  try {
    for await (const line of lines) {
      // A client gone mid-dump: stop reading (the snapshot is let go).
      if (!res.write(line)) await drained(res)
      if (res.destroyed) return
    }
    res.end()
  } catch (err) {
    // Too late for a status: the dump stops without its end line, which `chaac meta load` refuses.
    res.destroy(err as Error)
  }
}

async function drained (res: ServerResponse): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

async function readJson (req: IncomingMessage): Promise<unknown> {
  let body = ''
  for await (const chunk of req) {
    body += String(chunk)
    if (body.length > 65536) throw new BadRequest('request body too large')
  }
  try {
    return JSON.parse(body === '' ? '{}' : body)
  } catch {
    throw new BadRequest('request body is not JSON')
  }
}

// This agent's bins as they are now.
function bins (agent: AgentView): Array<Record<string, unknown>> {
  return clusterBins(agent).filter((b) => b.agent === agent.id)
}

function cluster (agent: AgentView): object {
  const { role, pool } = agent.config.cluster
  const now = Date.now()
  return {
    role,
    peer: agent.peerUrl,
    pool: role === 'join' ? pool : role === 'pool' ? agent.peerUrl : null,
    meta: agent.config.cluster.meta ? describeEtcd(agent.config.cluster.meta) : 'leveldb',
    worker: agent.worker?.elected ?? null,
    reachable: agent.pool.reachable,
    agents: [...agent.pool.agents.values()].map((a) => ({
      id: a.id, peer: a.peer, http: a.http, bins: a.bins.length, seenAt: a.seenAt, alive: a.id === agent.id || isAlive(a, now, agent.config.contextIntervalMs)
    })),
    replicas: agent.plane ? agent.config.cluster.replicas : 1,
    policy: agent.policy,
    // Agents this one has a link up to for its own requests (balls), with the measured round trip.
    links: (agent.plane?.peers.connected() ?? []).map((id) => ({ agent: id, rttMs: agent.plane?.peers.rttMs(id) ?? null }))
  }
}

function reads (agent: AgentView): object {
  const { localHit, remoteHit, miss, skip } = agent.counters()
  return { localHit, remoteHit, miss, skip }
}

function status (agent: AgentView): object {
  return {
    agent: { id: agent.id, version: agent.version, pid: process.pid, uptimeSeconds: Math.round((Date.now() - agent.startedAt) / 1000) },
    mount: {
      path: agent.config.mount,
      errors: agent.mount.errors.summary(),
      nativeReads: agent.mount.nativeReads(),
      keeper: agent.mount.keeper?.pid ?? null,
      takeover: agent.mount.takeover() ?? null,
      folder: agent.mount.folder ?? null,
      requests: agent.mount.requests()
    },
    http: agent.http.address ? `${agent.http.address.address}:${agent.http.address.port}` : null,
    chunkSize: agent.config.chunkSize,
    cacheSkipOver: agent.config.cacheSkipOver,
    bins: bins(agent).map(({ context, seenAt, alive, ...rest }) => rest),
    cluster: cluster(agent),
    reads: reads(agent),
    cloud: agent.store.cloud
      ? { location: agent.store.cloud.location, writePolicy: agent.store.writePolicy, uploadQueue: agent.uploader.depth, garbage: agent.collector.pending }
      : null,
    files: agent.pool.inodeCount,
    context: agent.context.latest ?? null,
    docker: agent.context.docker,
    volumeDriver: volumeDriver(agent)
  }
}

function volumeDriver (agent: AgentView): object | null {
  const d = agent.volumeDriver
  return d ? { name: d.name, socket: d.socket.path, listening: d.socket.listening, ...(d.reason !== undefined ? { reason: d.reason } : {}) } : null
}

function balls (agent: AgentView, url: URL): object {
  const limit = intParam(url, 'limit', 100)
  if (limit < 1 || limit > MAX_PAGE) throw new BadRequest(`limit must be between 1 and ${MAX_PAGE}`)
  const after = url.searchParams.get('after') ?? ''
  if (after !== '' && !/^[0-9a-f]{64}$/.test(after)) throw new BadRequest('after must be a ball id (64 hex digits)')
  const ids = [...agent.pool.balls.keys()].filter((id) => id > after).sort()
  const page = ids.slice(0, limit)
  return {
    total: agent.pool.balls.size,
    // garbageSince: no file references the ball; its cloud copy goes after the grace period.
    balls: page.map((id) => ({ id, ...agent.pool.balls.get(id), garbageSince: agent.pool.garbage.get(id) ?? null })),
    next: ids.length > limit ? page[page.length - 1] : null
  }
}

function location (agent: AgentView, url: URL): object {
  const path = url.searchParams.get('path')
  if (!path) throw new BadRequest('path is required, e.g. /api/v1/location?path=/dir/file')
  const node = agent.pool.get(agent.fs.resolve(path))
  if (!node || !isFile(node)) throw new BadRequest(`${path} is not a regular file`)
  const chunkSize = node.chunkSize ?? agent.config.chunkSize
  const owners = binOwners([agent.report(), ...agent.pool.agents.values()])
  const replicas = replicasOf(agent)
  const { live, offline } = liveness(agent)
  const where = (id: string): Array<Record<string, unknown>> => {
    const rec = agent.pool.balls.get(id)
    // The map of balls, and this agent's own bins as they are now (a copy may not be on the map yet).
    const binIds = new Set([...(rec?.bins ?? []), ...agent.store.binsHolding(id).map((b) => b.id)])
    return [...binIds].map((binId) => {
      const owner = owners.get(binId)
      const bin = owner?.bins.find((b) => b.id === binId)
      const local = agent.store.bins.find((b) => b.id === binId)
      return {
        id: binId,
        agent: owner?.id ?? null,
        host: owner ? hostOf(owner) : null,
        level: bin?.level ?? null,
        dir: bin?.dir ?? null,
        cached: local?.entries.get(id)?.cached ?? rec?.cached?.includes(binId) ?? false
      }
    })
  }
  return {
    path,
    size: node.size,
    chunkSize,
    // A small file kept in the data pool with its inode: no balls.
    inline: node.inline !== undefined,
    // A chunk's ball, and the slices written over it since it was last sealed whole.
    balls: Array.from({ length: Math.max(node.balls?.length ?? 0, node.slices?.length ?? 0) }, (_, index) => {
      const id = node.balls?.[index] ?? null
      const copies = (ball: string): object => {
        const bins = where(ball)
        const rec = agent.pool.balls.get(ball)
        return {
          bins,
          hosts: [...new Set(bins.map((b) => b.host).filter((h) => h !== null))],
          cloud: agent.pool.inCloud(ball),
          // Fewer durable copies on agents alive than the replicas (as GET /api/v1/replication counts them).
          underReplicated: rec !== undefined && rec.pooled !== true && liveHolders(rec, owners, live, true, offline).size < replicas
        }
      }
      return {
        index,
        offset: index * chunkSize,
        length: Math.max(0, Math.min(chunkSize, node.size - index * chunkSize)),
        id,
        hole: id === null,
        ...(id === null ? { bins: [], hosts: [], cloud: false, underReplicated: false } : copies(id)),
        // A pooled slice's bytes are in the data pool, not in bins.
        slices: (node.slices?.[index] ?? []).map((s) => ({ at: s.at, length: s.len, id: s.ball, pooled: s.pooled === true, ...copies(s.ball) }))
      }
    })
  }
}

// The bins a new ball would go to now, by the cluster's allocator (or one
// of another policy, for comparison), and the spread of the durable bins'
// fill before and after it.
function allocation (agent: AgentView, body: unknown): object {
  const { size, policy: asked, container } = (body ?? {}) as { size?: unknown, policy?: unknown, container?: unknown }
  if (typeof body !== 'object' || body === null || Array.isArray(body) || typeof size !== 'number' || !Number.isInteger(size) || size <= 0) {
    throw new BadRequest('body must be JSON like {"size": 4194304} with a positive integer size (and optionally "policy" and "container")')
  }
  if (asked !== undefined && !isPolicy(asked)) throw new BadRequest(`unknown policy ${JSON.stringify(asked)}: one of ${POLICIES.join(', ')}`)
  if (container !== undefined && (typeof container !== 'string' || container === '')) throw new BadRequest('container must be a container\'s id or name')
  // A container's balls go near it: its host's bins take the locality bonus of the writer's.
  const near = container === undefined ? undefined : containerHost(agent, container)
  const writerHost = near?.agent ?? agent.id
  const policy = asked ?? agent.policy
  const candidates = durablePlacementBins(agent)
  const before = spread(candidates)
  let chosen: Array<{ id: string, agent: string, host?: string, level: string, dir: string }>
  if (agent.plane && policy === agent.plane.allocator.policy) {
    chosen = agent.plane.allocate(size, writerHost)
  } else {
    // Another policy than the one in use, or an agent alone (its writes go to its freest bin): a fresh allocator answers.
    const k = agent.plane ? agent.config.cluster.replicas : 1
    const allocator = new Allocator({ policy, seed: 1 })
    const owners = binOwners(agentRecords(agent))
    chosen = allocator.allocate(agent.plane?.bins() ?? candidates, { size, k, writerHost }).map((b) => {
      const owner = owners.get(b.id)
      return { id: b.id, agent: b.agent, host: owner ? hostOf(owner) : b.agent, level: b.level, dir: b.dir }
    })
  }
  const picked = new Set(chosen.map((b) => b.id))
  const after = spread(candidates.map((b) => picked.has(b.id) ? { capacity: b.capacity, used: b.used + size } : b))
  return { size, replicas: replicasOf(agent), policy, ...(near ? { container: near } : {}), bins: chosen, balance: { before, after } }
}

// The agent whose host runs a container (by id, its prefix of at least 4 digits, or name), as the agents last reported their containers.
function containerHost (agent: AgentView, wanted: string): { id: string, name: string, agent: string } {
  const id = wanted.toLowerCase()
  for (const rec of agentRecords(agent)) {
    for (const c of rec.context?.containers?.list ?? []) {
      const byId = /^[0-9a-f]{4,64}$/.test(id) && (c.id.startsWith(id.slice(0, 12)) && (id.length <= 12 || fullIdOf(agent, c.id)?.startsWith(id) !== false))
      if (byId || c.name === wanted) return { id: c.id, name: c.name, agent: rec.id }
    }
  }
  throw new HttpError(404, `no container ${wanted} on any agent: containers are known once their agent read their stats (Docker must answer there)`)
}

// A local container's full id (others' reports carry the short one only).
function fullIdOf (agent: AgentView, short: string): string | undefined {
  return agent.context.containers?.details.find((d) => d.id.startsWith(short))?.id
}

function intParam (url: URL, name: string, fallback: number): number {
  const text = url.searchParams.get(name)
  if (text === null) return fallback
  if (!/^\d+$/.test(text)) throw new BadRequest(`${name} must be a whole number`)
  return Number(text)
}
