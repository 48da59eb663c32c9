// The data plane over three real agents (127.0.0.2-4, real mounts, real
// LevelDB, real WebSocket) with no cloud tier: each new ball goes to two
// bins on distinct agents; a file written on one agent is read on another
// from its peers (remote cache hits), then from its own cache; the allocator
// answers bins on distinct hosts and moves away from a host that reports
// itself busy.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { shOk, type RunningAgent } from '../helpers/agent.ts'
import { startCluster } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const OPTS = { timeout: 240_000 }

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function shaOn (agent: RunningAgent, path: string): Promise<string> {
  return (await shOk(`sha256sum '${join(agent.mount, path)}'`, { timeoutMs: 60_000 })).split(' ')[0]
}

async function agentId (agent: RunningAgent): Promise<string> {
  return (await agent.json('/status')).agent.id
}

async function post (agent: RunningAgent, path: string, body: unknown): Promise<any> {
  const res = await fetch(agent.url + path, { method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) })
  return await res.json()
}

t.test('data plane - two copies on distinct agents; reads elsewhere are remote cache hits, then local', OPTS, async (t) => {
  const cluster = await startCluster(t, { cloud: 'none' })
  const [a, b, c] = cluster.agents
  const ids = await Promise.all(cluster.agents.map(agentId))
  const src = await mkdtemp(join(tmpdir(), 'chaac-plane-src-'))
  t.teardown(async () => await rm(src, { recursive: true, force: true }))
  await waitFor(async () => (await a.json('/api/v1/bins')).bins.filter((x: any) => x.alive).length === 6,
    { timeoutMs: 30_000, what: 'every agent registered' })

  const data = randomBytes(3 * 4 * MiB + 12345)
  await writeFile(join(src, 'f'), data)
  await shOk(`cp '${join(src, 'f')}' '${join(a.mount, 'f')}'`)
  const loc = await b.json('/api/v1/location?path=/f')
  t.equal(loc.balls.length, 4)
  for (const ball of loc.balls) {
    const durable = ball.bins.filter((x: any) => !x.cached)
    t.equal(durable.length, 2, `ball ${ball.index}: two copies`)
    t.equal(new Set(durable.map((x: any) => x.agent)).size, 2, `ball ${ball.index}: on distinct agents`)
    t.ok(durable.every((x: any) => x.level === 'disk'), 'in disk bins')
    t.same(ball.hosts.length, 2, 'two hosts')
    t.equal(ball.cloud, false)
  }
  // The agent that holds the fewest of the balls reads (each ball misses one agent of three: one misses two or more).
  const missing = (id: string): number => loc.balls.filter((x: any) => !x.bins.some((y: any) => y.agent === id)).length
  const r = [0, 1, 2].reduce((best, i) => missing(ids[i]) > missing(ids[best]) ? i : best, 0)
  const [reader, readerId] = [cluster.agents[r], ids[r]]
  const remote = missing(readerId)
  t.ok(remote >= 2, `the reader lacks ${remote} of the balls`)
  const before = (await reader.json('/status')).reads
  // Direct I/O: the writer's kernel still has the file's pages from the write.
  const direct = await shOk(`dd if='${join(reader.mount, 'f')}' bs=1M iflag=direct status=none | sha256sum`, { timeoutMs: 60_000 })
  t.equal(direct.split(' ')[0], sha(data), 'the bytes, from the peers')
  const after = (await reader.json('/status')).reads
  // Each FUSE read of a ball counts; the kernel reads a ball in several.
  t.ok(after.remoteHit - before.remoteHit >= remote, `a remote cache hit at least per ball held elsewhere (${after.remoteHit - before.remoteHit})`)
  t.equal(after.miss, 0, 'no cloud tier to miss to')
  const metrics = await (await fetch(reader.url + '/metrics')).text()
  t.match(metrics, new RegExp(`chaac_ball_reads_total\\{[^}]*outcome="remote_hit"[^}]*\\} ${after.remoteHit}`))

  // Kept in the reader's cache: read again (past the kernel's page cache), every ball is local.
  await waitFor(async () => {
    const l = await reader.json('/api/v1/location?path=/f')
    return l.balls.every((x: any) => x.bins.some((y: any) => y.agent === readerId))
  }, { timeoutMs: 10_000, what: 'the fetched balls cached on the reader' })
  await shOk(`dd if='${join(reader.mount, 'f')}' of=/dev/null bs=1M iflag=direct status=none`)
  const again = (await reader.json('/status')).reads
  t.equal(again.remoteHit, after.remoteHit, 'no remote read the second time')
  const cached = (await reader.json('/api/v1/location?path=/f')).balls.flatMap((x: any) => x.bins.filter((y: any) => y.agent === readerId && y.cached))
  t.ok(cached.length >= remote, 'the copies kept are caches, not replicas')

  // Written on a joined agent: the same (a small ball, over the inline limit).
  const small = Buffer.from('from c\n'.repeat(1000))
  await writeFile(join(src, 's'), small)
  await shOk(`cp '${join(src, 's')}' '${join(c.mount, 's')}'`)
  for (const agent of cluster.agents) t.equal(await shaOn(agent, 's'), sha(small), `read on ${agent.http}`)
  const sloc = await a.json('/api/v1/location?path=/s')
  t.equal(new Set(sloc.balls[0].bins.filter((x: any) => !x.cached).map((x: any) => x.agent)).size, 2)

  // A tiny file written on a joined agent is kept inline by the data pool; every agent reads it from there.
  const tiny = Buffer.from('tiny, from c\n')
  await writeFile(join(src, 't'), tiny)
  await shOk(`cp '${join(src, 't')}' '${join(c.mount, 't')}'`)
  for (const agent of cluster.agents) t.equal(await shaOn(agent, 't'), sha(tiny), `tiny file read on ${agent.http}`)
  t.equal((await c.json('/api/v1/location?path=/t')).inline, true)

  // chaac locate names the hosts.
  const out = await shOk(`node ${join(process.cwd(), 'bin', 'chaac.mjs')} locate /f --http ${b.http}`)
  t.match(out, /127\.0\.0\.[234] disk:/)
})

t.test('data plane - the allocator answers bins on distinct hosts and moves away from a host reported busy', OPTS, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'chaac-plane-ctx-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  const contextFile = (i: number): string => join(root, `context-${i}.json`)
  const cluster = await startCluster(t, { cloud: 'none', env: (i) => ({ CHAAC_TEST_CONTEXT_FILE: contextFile(i) }) })
  const [a] = cluster.agents
  const ids = await Promise.all(cluster.agents.map(agentId))
  // Contexts set, not sampled (the machine's real load must not decide): at first the third host is
  // the idlest of the two that take second copies, so it takes most of them; then it turns busy.
  const idle = { ufCPU: 0, ufMemory: 0, ufFileSystem: 0, ufNet: 0 }
  const set = [idle, { ...idle, ufCPU: 0.2 }, idle]
  for (const [i, ctx] of set.entries()) await writeFile(contextFile(i), JSON.stringify(ctx))
  // Every factor, not only the CPU: a sample taken before the file was written carries the real ones.
  const asSet = (x: any): boolean => Object.entries(set[ids.indexOf(x.agent)]).every(([k, v]) => x.context?.[k] === v)
  await waitFor(async () => (await a.json('/api/v1/bins')).bins.filter((x: any) => x.alive && asSet(x)).length === 6,
    { timeoutMs: 30_000, what: 'every agent registered with its context' })
  const shares = async (): Promise<number[]> => {
    const n = [0, 0, 0]
    let distinct = 0
    for (let i = 0; i < 100; i++) {
      const answer = await post(a, '/api/v1/allocation', { size: 4 * MiB })
      if (answer.bins.length === 2 && new Set(answer.bins.map((x: any) => x.agent)).size === 2) distinct++
      for (const bin of answer.bins) n[ids.indexOf(bin.agent)]++
    }
    t.equal(distinct, 100, 'every answer: two bins on distinct hosts')
    return n
  }
  const calm = await shares()
  t.comment(`calm: ${calm.join(' ')}`)
  await writeFile(contextFile(2), JSON.stringify({ ufCPU: 1, ufMemory: 1, ufFileSystem: 1, ufNet: 1 }))
  await waitFor(async () => (await a.json('/api/v1/bins')).bins.some((x: any) => x.agent === ids[2] && x.context?.ufCPU === 1),
    { timeoutMs: 30_000, what: 'the busy context to reach the pool' })
  const busy = await shares()
  t.comment(`with ${ids[2]} busy: ${busy.join(' ')}`)
  t.ok(busy[2] < calm[2], 'fewer balls for the busy host')
  t.ok(busy[2] < busy[1], 'fewer than for its idle peer')
})
