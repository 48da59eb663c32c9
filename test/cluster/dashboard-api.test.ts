// The dashboard's endpoints on a cluster of three agents, started once for
// the file: every agent sees every other with its state, context and bins;
// files written on one agent are listed on another; zones group hosts by
// their (faked) context; allocation by policy; the history of the whole
// cluster, kept across a restart; a change of the scheme followed by every
// agent; and, last, replication counts and states after a kill -9.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { shOk, testMeta, type RunningAgent } from '../helpers/agent.ts'
import { startCluster, waitReachable } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const OPTS = { timeout: 60_000 }
const TOKEN = 'cluster-admin-token'

// Agent 0 looks busy, agents 1 and 2 idle: the zones and the placement of new balls follow.
const LOAD = [0.9, 0.1, 0.15]
const contexts = await mkdtemp(join(tmpdir(), 'chaac-dashboard-'))
t.teardown(async () => await rm(contexts, { recursive: true, force: true }))
await Promise.all(LOAD.map(async (uf, i) => await writeFile(join(contexts, `${i}.json`), JSON.stringify({ ufCPU: uf, ufMemory: uf, ufFileSystem: uf, ufNet: uf }))))

const cluster = await startCluster(t, {
  env: (i) => ({
    CHAAC_TEST_CONTEXT_FILE: join(contexts, `${i}.json`),
    CHAAC_HISTORY_INTERVAL_MS: '300',
    CHAAC_LOG_LEVEL: 'info',
    // The last agent has no admin token: read-only.
    ...(i < 2 ? { CHAAC_ADMIN_TOKEN: TOKEN } : {})
  })
})
const agents = cluster.agents
const ids = await Promise.all(agents.map(async (a) => (await a.json('/status')).agent.id as string))

interface Reply { status: number, json: any }

async function call (agent: RunningAgent, path: string, init?: RequestInit): Promise<Reply> {
  const res = await fetch(agent.url + path, { ...init, signal: AbortSignal.timeout(10_000) })
  return { status: res.status, json: await res.json() }
}

async function ok (agent: RunningAgent, path: string, init?: RequestInit): Promise<any> {
  const r = await call(agent, path, init)
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.json)}`)
  return r.json
}

t.test('GET /api/v1/agents - every agent lists all three, alive, itself marked, with contexts and bins', OPTS, async (t) => {
  for (const [i, agent] of agents.entries()) {
    const list: any[] = await waitFor(async () => {
      const a = (await ok(agent, '/api/v1/agents')).agents as any[]
      return a.length === 3 && a.every((x) => x.state === 'alive' && x.context !== null) ? a : undefined
    }, { timeoutMs: 30_000, what: `agent ${i} to see three agents alive with a context` })
    t.same(list.map((a) => a.id).sort(), [...ids].sort())
    t.same(list.filter((a) => a.self).map((a) => a.id), [ids[i]], 'itself, once')
    for (const a of list) {
      t.equal(a.bins.length, 2)
      t.ok(a.bins.every((b: any) => b.agent === a.id))
      t.type(a.context.freeBytes, 'number')
      t.type(a.startedAt, 'number')
    }
    const other = list.find((a) => a.id === ids[(i + 1) % 3])
    t.equal(other.context.ufCPU, LOAD[(i + 1) % 3], 'another agent\'s context as it reported it')
  }
})

t.test('GET /api/v1/files - a file written on one agent is listed on another', OPTS, async (t) => {
  // Written on agent 1: the first copies are local, the second ones mostly on the idle agent 2.
  await shOk(`mkdir -p data && head -c ${32 * MiB} /dev/urandom > data/f.bin`, { cwd: agents[1].mount })
  const dir = await waitFor(async () => {
    const r = await call(agents[2], '/api/v1/files?path=/data')
    return r.status === 200 && r.json.entries.length === 1 ? r.json : undefined
  }, { timeoutMs: 20_000, what: 'the file on agent 2' })
  t.match(dir.entries, [{ name: 'f.bin', type: 'file', size: 32 * MiB }])
  t.match(await ok(agents[0], '/api/v1/files?path=/data/f.bin'), { type: 'file', size: 32 * MiB, ino: dir.entries[0].ino })
  t.equal((await call(agents[0], '/api/v1/files?path=/data/nope')).status, 404)
})

t.test('GET /api/v1/zones - hosts ranked by load, grouped in k zones, k clipped to the hosts', OPTS, async (t) => {
  const z = await ok(agents[1], '/api/v1/zones?k=2')
  t.equal(z.k, 2)
  t.same(z.members.map((m: any) => [m.id, m.rank, m.zone]), [[ids[1], 1, 1], [ids[2], 2, 1], [ids[0], 3, 2]])
  t.same(z.zones.map((x: any) => x.members), [[ids[1], ids[2]], [ids[0]]])
  t.equal(z.zones[1].centroid.ufCPU, 0.9)
  t.ok(z.members.every((m: any) => m.kind === 'host' && m.name === `127.0.0.${ids.indexOf(m.id) + 2}`))
  const all = await ok(agents[0], '/api/v1/zones?k=10')
  t.equal(all.k, 3)
  t.equal(all.zones.length, 3)
  t.equal((await call(agents[0], '/api/v1/zones')).status, 400)
})

t.test('POST /api/v1/allocation - by each policy: two bins on distinct agents, and the balance', OPTS, async (t) => {
  const { policies } = await ok(agents[0], '/api/v1/scheme')
  for (const policy of policies) {
    const r = await ok(agents[0], '/api/v1/allocation', { method: 'POST', body: JSON.stringify({ size: 4 * MiB, policy }) })
    t.equal(r.policy, policy)
    t.equal(new Set(r.bins.map((b: any) => b.agent)).size, 2, `${policy}: two agents`)
    t.ok(r.bins.every((b: any) => b.level === 'disk'))
    for (const x of [r.balance.before, r.balance.after]) t.ok(x >= 0 && x <= 1, `${policy}: spread ${x}`)
  }
  t.equal((await call(agents[0], '/api/v1/allocation', { method: 'POST', body: '{"size": 1, "policy": "nearest"}' })).status, 400)
})

t.test('GET /api/v1/history - every agent records the whole cluster; kept across a restart', OPTS, async (t) => {
  // Reads on agent 2 of the file: agent 2's counters reach the others with its next reports.
  await shOk('dd if=data/f.bin of=/dev/null bs=1M iflag=direct status=none', { cwd: agents[2].mount })
  const h = await waitFor(async () => {
    const r = await ok(agents[1], '/api/v1/history?metric=context.ufCPU,bytes.read&since=-600')
    const cpu = r.series.filter((s: any) => s.metric === 'context.ufCPU' && s.points.length >= 3)
    const read = r.series.find((s: any) => s.metric === 'bytes.read' && s.agent === ids[2])
    return cpu.length === 3 && read?.points.some((p: number[]) => p[1] > 0) === true ? r : undefined
  }, { timeoutMs: 30_000, what: 'agent 1 to record every agent\'s context and agent 2\'s reads' })
  for (const [i, id] of ids.entries()) {
    const s = h.series.find((x: any) => x.metric === 'context.ufCPU' && x.agent === id)
    t.ok(s.points.every((p: number[]) => p[1] === LOAD[i]), `agent ${i}'s ufCPU as it reported it`)
  }
  const before = h.series.find((x: any) => x.metric === 'context.ufCPU' && x.agent === ids[0]).points[0]
  t.equal(await agents[1].stop(), 0)
  const again = await cluster.restart(1)
  await waitReachable([again])
  const after = await ok(again, `/api/v1/history?metric=context.ufCPU&agent=${ids[0]}&since=${before[0]}`)
  t.same(after.series[0].points[0], before, 'the samples taken before the restart are there')
})

t.test('PUT /api/v1/scheme - 403 without an admin token, 401, 400, then every agent follows the change', OPTS, async (t) => {
  const put = async (agent: RunningAgent, body: unknown, token?: string): Promise<Reply> => await call(agent, '/api/v1/scheme', {
    method: 'PUT', body: JSON.stringify(body), headers: token === undefined ? {} : { authorization: `Bearer ${token}` }
  })
  t.match(await ok(agents[2], '/api/v1/scheme'), { policy: 'context', replicas: 2, writable: false })
  const refused = await put(agents[2], { policy: 'round-robin' }, TOKEN)
  t.equal(refused.status, 403)
  t.equal(refused.json.error, 'read-only: the agent has no admin token')
  t.equal((await put(agents[1], { policy: 'round-robin' })).status, 401)
  t.equal((await put(agents[1], { policy: 'round-robin' }, 'guess')).status, 401)
  t.equal((await put(agents[1], { policy: 'fastest' }, TOKEN)).status, 400)
  // Changed on a joined agent: the change goes through the data pool (or etcd) to every agent.
  const done = await put(agents[1], { policy: 'round-robin' }, TOKEN)
  t.equal(done.status, 200)
  t.match(done.json, { policy: 'round-robin', replicas: 2, writable: true })
  for (const [i, agent] of agents.entries()) {
    await waitFor(async () => (await ok(agent, '/api/v1/scheme')).policy === 'round-robin', { timeoutMs: 10_000, what: `agent ${i} to follow` })
    await waitFor(() => agent.log().includes('allocator policy changed from context to round-robin'), { timeoutMs: 10_000, what: `agent ${i}'s log line` })
    t.equal((await ok(agent, '/api/v1/allocation', { method: 'POST', body: '{"size": 1024}' })).policy, 'round-robin')
  }
})

t.test('replication and states - a stopped agent is suspect, a killed one gone, and its balls under-replicated', OPTS, async (t) => {
  const healthy = await waitFor(async () => {
    const r = await ok(agents[0], '/api/v1/replication')
    return r.balls >= 8 && r.underReplicated === 0 ? r : undefined
  }, { timeoutMs: 20_000, what: 'every ball with its two copies' })
  t.match(healthy, { replicas: 2, missing: 0 })
  const loc = await ok(agents[0], '/api/v1/location?path=/data/f.bin')
  t.ok(loc.balls.every((b: any) => b.underReplicated === false))
  const onTwo = loc.balls.filter((b: any) => b.bins.some((x: any) => x.agent === ids[2] && !x.cached)).length
  t.ok(onTwo > 0, `${onTwo} balls have a copy on agent 2`)
  if (testMeta() === undefined) {
    // A stopped process keeps its link to the pool open but reports no more: suspect after two reports, before gone.
    process.kill(agents[2].pid, 'SIGSTOP')
    await waitFor(async () => {
      const list = (await ok(agents[0], '/api/v1/agents')).agents as any[]
      return list.find((a) => a.id === ids[2])?.state === 'suspect'
    }, { timeoutMs: 20_000, intervalMs: 250, what: 'agent 2 to be suspect' })
  }
  await agents[2].kill9()
  await waitFor(async () => {
    const list = (await ok(agents[0], '/api/v1/agents')).agents as any[]
    return list.find((a) => a.id === ids[2])?.state === 'gone'
  }, { timeoutMs: 30_000, what: 'agent 2 to be gone' })
  const r = await waitFor(async () => {
    const x = await ok(agents[0], '/api/v1/replication')
    return x.underReplicated > 0 ? x : undefined
  }, { timeoutMs: 10_000, what: 'the count to include agent 2\'s balls' })
  t.ok(r.underReplicated >= onTwo, `${r.underReplicated} under-replicated`)
  t.equal(r.missing, 0, 'every ball still has a copy on agent 0 or 1, and in the cloud tier')
  const after = await ok(agents[0], '/api/v1/location?path=/data/f.bin')
  t.equal(after.balls.filter((b: any) => b.underReplicated).length, onTwo)
})
