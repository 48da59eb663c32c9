// The dashboard's endpoints on one agent: agents, files, replication,
// history (across a restart), zones, allocation by policy and the scheme.
// File I/O on the mount happens in child processes.
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, shOk, startAgent, testMeta, type RunningAgent } from '../helpers/agent.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const OPTS = { timeout: 60_000 }
const TOKEN = 'admin-token-for-tests'
const ENV = { CHAAC_ADMIN_TOKEN: TOKEN, CHAAC_HISTORY_INTERVAL_MS: '300' }

let agent: RunningAgent = await startAgent({ env: ENV })
t.teardown(async () => await cleanupAgent(agent))
const id = (await readFile(join(agent.data, 'agent-id'), 'utf8')).trim()

await shOk(`mkdir -p d/sub && head -c ${5 * MiB} /dev/urandom > d/big.bin && echo hi > d/a.txt && ln -s a.txt d/link`, { cwd: agent.mount })

interface Reply { status: number, json: any }

async function call (path: string, init?: RequestInit): Promise<Reply> {
  const res = await fetch(agent.url + path, { ...init, signal: AbortSignal.timeout(10_000) })
  return { status: res.status, json: await res.json() }
}

async function ok (path: string, init?: RequestInit): Promise<any> {
  const r = await call(path, init)
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${JSON.stringify(r.json)}`)
  return r.json
}

t.test('GET /api/v1/agents - one agent alone: itself, alive, with its context and bins', OPTS, async (t) => {
  const j = await waitFor(async () => {
    const r = await ok('/api/v1/agents')
    return r.agents[0]?.context !== null ? r : undefined
  }, { timeoutMs: 20_000, what: 'a context sample' })
  t.equal(j.agents.length, 1)
  const [a] = j.agents
  // On etcd (the contract suite) an agent alone is a cluster of one, with a peer address.
  t.match(a, { id, self: true, state: 'alive', peer: testMeta() === undefined ? null : /^ws:/, http: agent.http })
  t.type(a.seenAt, 'number')
  t.type(a.startedAt, 'number')
  for (const f of ['ufCPU', 'ufMemory', 'ufFileSystem', 'ufNet']) t.ok(a.context[f] >= 0 && a.context[f] <= 1, f)
  const bins = (await ok('/api/v1/bins')).bins
  t.same(a.bins.map((b: any) => b.id), bins.map((b: any) => b.id), 'the same bins as /api/v1/bins')
  t.equal(a.context.freeBytes, a.bins.reduce((s: number, b: any) => s + b.capacity - b.used, 0))
})

t.test('GET /api/v1/files - a directory sorted by name, a file, 404 and 400', OPTS, async (t) => {
  const dir = await ok('/api/v1/files?path=/d')
  t.equal(dir.path, '/d')
  t.equal(dir.type, 'dir')
  t.same(dir.entries.map((e: any) => [e.name, e.type]), [['a.txt', 'file'], ['big.bin', 'file'], ['link', 'symlink'], ['sub', 'dir']])
  const big = dir.entries[1]
  t.equal(big.size, 5 * MiB)
  t.type(big.ino, 'number')
  t.ok(Math.abs(big.mtime - Date.now()) < 120_000, 'mtime in ms')
  t.equal(big.mode & 0o170000, 0o100000)
  const file = await ok('/api/v1/files?path=/d/big.bin')
  t.match(file, { path: '/d/big.bin', type: 'file', size: 5 * MiB, ino: big.ino, mtime: big.mtime, mode: big.mode })
  t.same((await ok('/api/v1/files?path=/')).entries.map((e: any) => e.name), ['d'])
  for (const missing of ['/nope', '/d/nope', '/d/a.txt/x']) {
    const r = await call(`/api/v1/files?path=${encodeURIComponent(missing)}`)
    t.equal(r.status, 404, missing)
    t.type(r.json.error, 'string')
  }
  for (const bad of ['', 'd', '/d/../d', '/d/./a.txt', '/d\0x']) {
    const r = await call(`/api/v1/files?path=${encodeURIComponent(bad)}`)
    t.equal(r.status, 400, JSON.stringify(bad))
    t.type(r.json.error, 'string')
  }
})

t.test('GET /api/v1/replication - one agent holds one copy of each ball: short of copies only if the replicas ask for more', OPTS, async (t) => {
  // An agent alone wants one copy; on etcd (the contract suite) it is a cluster of one with the cluster's replicas.
  const replicas = (await ok('/status')).cluster.replicas
  const short = replicas > 1
  const r = await ok('/api/v1/replication')
  t.match(r, { replicas, balls: 2, underReplicated: short ? 2 : 0, missing: 0 })
  t.type(r.checkedAt, 'number')
  const loc = await ok('/api/v1/location?path=/d/big.bin')
  t.same(loc.balls.map((b: any) => b.underReplicated), [short, short])
})

t.test('POST /api/v1/allocation - every policy answers with the balance; an unknown one is 400', OPTS, async (t) => {
  const { policies } = await ok('/api/v1/scheme')
  for (const policy of policies) {
    const r = await ok('/api/v1/allocation', { method: 'POST', body: JSON.stringify({ size: 4 * MiB, policy }) })
    t.equal(r.policy, policy)
    t.same(r.bins.map((b: any) => b.level), ['disk'], `${policy}: the durable level`)
    t.equal(r.balance.before, 0, 'one durable bin: no spread')
    t.equal(r.balance.after, 0)
  }
  const plain = await ok('/api/v1/allocation', { method: 'POST', body: JSON.stringify({ size: MiB }) })
  t.equal(plain.policy, 'context', 'without a policy: the one in use')
  for (const body of [{ size: MiB, policy: 'fastest' }, { size: MiB, policy: 3 }]) {
    const r = await call('/api/v1/allocation', { method: 'POST', body: JSON.stringify(body) })
    t.equal(r.status, 400)
    t.match(r.json.error, /unknown policy/)
  }
})

t.test('GET/PUT /api/v1/scheme - 401 without the token, 400 for a bad policy, 200 changes the policy', OPTS, async (t) => {
  const replicas = (await ok('/status')).cluster.replicas
  t.match(await ok('/api/v1/scheme'), { policy: 'context', replicas, writable: true })
  const put = async (body: unknown, token?: string): Promise<Reply> => await call('/api/v1/scheme', {
    method: 'PUT', body: JSON.stringify(body), headers: token === undefined ? {} : { authorization: `Bearer ${token}` }
  })
  t.equal((await put({ policy: 'random' })).status, 401)
  t.equal((await put({ policy: 'random' }, 'wrong')).status, 401)
  const bad = await put({ policy: 'fastest' }, TOKEN)
  t.equal(bad.status, 400)
  t.match(bad.json.error, /round-robin/, 'lists the known policies')
  t.equal((await put({ policy: 'random', replicas: 3 }, TOKEN)).status, 400, 'the replicas stay')
  const done = await put({ policy: 'random' }, TOKEN)
  t.equal(done.status, 200)
  t.match(done.json, { policy: 'random', replicas, writable: true })
  t.equal((await ok('/api/v1/scheme')).policy, 'random')
  t.equal((await ok('/status')).cluster.policy, 'random')
})

t.test('GET /api/v1/zones - one host in one zone whatever k; k missing or invalid is 400', OPTS, async (t) => {
  const z = await ok('/api/v1/zones?k=3')
  t.equal(z.k, 1, 'clipped to the members')
  t.same(z.factors, ['ufCPU', 'ufMemory', 'ufFileSystem', 'ufNet'])
  t.match(z.members, [{ kind: 'host', id, agent: id, rank: 1, zone: 1 }])
  t.type(z.members[0].score, 'number')
  t.same(z.zones.map((x: any) => x.members), [[id]])
  for (const k of ['', 'k=0', 'k=-1', 'k=two', 'k=1.5']) t.equal((await call(`/api/v1/zones?${k}`)).status, 400, k)
})

t.test('GET /api/v1/history - samples of this agent, read rates after reads, kept across a restart', OPTS, async (t) => {
  // O_DIRECT: the read reaches the agent whatever the kernel's page cache holds.
  await shOk('dd if=d/big.bin of=/dev/null bs=1M iflag=direct status=none', { cwd: agent.mount })
  const rates = await waitFor(async () => {
    const h = await ok('/api/v1/history?metric=reads.local_hit,bytes.read&since=-600')
    const hit = h.series.find((s: any) => s.metric === 'bytes.read')
    return hit?.points.some((p: number[]) => p[1] > 0) === true ? h : undefined
  }, { timeoutMs: 20_000, what: 'a read rate in the history' })
  t.equal(rates.interval, 0.3)
  t.match(rates.series, [{ metric: 'reads.local_hit', agent: id, unit: 'reads/s' }, { metric: 'bytes.read', agent: id, unit: 'B/s' }])
  const ctx = await waitFor(async () => {
    const h = await ok(`/api/v1/history?metric=context.ufCPU,context.freeBytes&agent=${id}`)
    return h.series.length === 2 && h.series.every((s: any) => s.points.length >= 3) ? h : undefined
  }, { timeoutMs: 20_000, what: 'three context samples' })
  t.ok(ctx.since <= Date.now() - 3599_000, 'the last hour by default')
  const before = ctx.series[0].points.length
  t.same((await ok('/api/v1/history?metric=context.ufCPU&agent=nobody')).series, [])
  for (const q of ['', 'metric=reads.all', 'metric=context.ufCPU&since=yesterday']) {
    const r = await call(`/api/v1/history?${q}`)
    t.equal(r.status, 400, q)
    if (q === 'metric=reads.all') t.match(r.json.error, /context\.freeBytes/, 'lists the known metrics')
  }
  t.equal(await agent.stop(), 0)
  agent = await startAgent({ data: agent.data, env: ENV })
  const after = await ok(`/api/v1/history?metric=context.ufCPU&agent=${id}`)
  t.ok(after.series[0].points.length >= before, `${after.series[0].points.length} points after the restart, ${before} before`)
})
