// Faults of the data plane over three real agents with no cloud tier, so
// that every byte read comes from a bin: a joined agent killed with -9 (its
// files stay readable from the other copies, writes go on, the pool copies
// its balls again after the grace period, and it rejoins); a joined agent
// whose traffic with its cluster is dropped (iptables on its loopback address
// and its cluster's ports: reads move to another copy or fail with EIO within
// a bounded time, nothing hangs, and the cluster converges once the rules are
// gone).
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { sh, shOk, testMeta, type RunningAgent } from '../helpers/agent.ts'
import { peerUrl, startCluster, waitReachable } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const OPTS = { timeout: 300_000 }

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function shaOn (agent: RunningAgent, path: string, timeoutMs = 60_000): Promise<string> {
  return (await shOk(`sha256sum '${join(agent.mount, path)}'`, { timeoutMs })).split(' ')[0]
}

async function agentId (agent: RunningAgent): Promise<string> {
  return (await agent.json('/status')).agent.id
}

/** Per ball of the file, the agents holding a durable copy, as `agent` sees the map of balls. */
async function replicas (agent: RunningAgent, path: string): Promise<string[][]> {
  const loc = await agent.json(`/api/v1/location?path=${encodeURIComponent(path)}`)
  return loc.balls.map((b: any) => [...new Set(b.bins.filter((x: any) => !x.cached).map((x: any) => x.agent as string))])
}

async function scratch (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-faults-src-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('data plane - kill -9 of a joined agent: files stay readable, writes go on, balls are copied again, the agent rejoins', OPTS, async (t) => {
  const cluster = await startCluster(t, { cloud: 'none', args: ['--rereplicate-after', '2'] })
  const [a, b, c] = cluster.agents
  const ids = await Promise.all(cluster.agents.map(agentId))
  const src = await scratch(t)
  await waitFor(async () => (await a.json('/api/v1/bins')).bins.filter((x: any) => x.alive).length === 6,
    { timeoutMs: 30_000, what: 'every agent registered' })
  const files = new Map<string, Buffer>()
  for (const [i, writer] of [a, b, c].entries()) {
    const data = randomBytes(2 * 4 * MiB + 1000 * i)
    files.set(`f${i}`, data)
    await writeFile(join(src, `f${i}`), data)
    await shOk(`cp '${join(src, `f${i}`)}' '${join(writer.mount, `f${i}`)}'`)
  }
  for (const name of files.keys()) {
    for (const holders of await replicas(a, `/${name}`)) t.equal(holders.length, 2, `${name}: two copies of each ball`)
  }

  await c.kill9()
  const started = Date.now()
  for (const reader of [a, b]) {
    for (const [name, data] of files) t.equal(await shaOn(reader, name, 30_000), sha(data), `${name} read on ${reader.http} with ${ids[2]} gone`)
  }
  t.ok(Date.now() - started < 60_000, `all read within a minute (${Date.now() - started} ms)`)

  const late = randomBytes(3 * 4 * MiB)
  files.set('late', late)
  await writeFile(join(src, 'late'), late)
  await shOk(`cp '${join(src, 'late')}' '${join(b.mount, 'late')}'`, { timeoutMs: 60_000 })
  t.equal(await shaOn(a, 'late'), sha(late), 'a file written meanwhile is read on another agent')
  for (const holders of await replicas(a, '/late')) {
    t.same([...holders].sort(), [ids[0], ids[1]].sort(), 'its balls went to the two agents alive')
  }

  // After the grace period, every ball is back to two copies on the agents alive.
  await waitFor(async () => {
    for (const name of files.keys()) {
      for (const holders of await replicas(a, `/${name}`)) if (holders.filter((h) => h !== ids[2]).length < 2) return false
    }
    return true
  }, { timeoutMs: 60_000, what: 'every ball copied again to two agents alive' })
  t.pass('every ball has two copies on the agents alive')

  const back = await cluster.restart(2)
  await waitReachable([back])
  await waitFor(async () => (await a.json('/api/v1/bins')).bins.filter((x: any) => x.agent === ids[2] && x.alive).length === 2,
    { timeoutMs: 30_000, what: 'the agent back, alive, with its bins' })
  const counted = (await Promise.all([...files.keys()].map(async (n) => await replicas(a, `/${n}`)))).flat()
  t.ok(counted.some((holders) => holders.includes(ids[2])), 'its copies count again')
  for (const [name, data] of files) t.equal(await shaOn(back, name), sha(data), `${name} read on the agent back`)
})

t.test('data plane - a joined agent cut off by iptables: reads move to another copy or fail with EIO in bounded time; the cluster heals', OPTS, async (t) => {
  const iptables = await sh('iptables -w -L INPUT -n')
  if (iptables.code !== 0) {
    t.fail(`iptables is needed (npm test installs it): ${iptables.stderr.trim()}`)
    return
  }
  const root = await scratch(t)
  const cluster = await startCluster(t, { cloud: 'none', args: ['--peer-timeout', '2', '--rereplicate-after', '600'] })
  const [a, b, c] = cluster.agents
  const ids = await Promise.all(cluster.agents.map(agentId))
  await waitFor(async () => (await a.json('/api/v1/bins')).bins.filter((x: any) => x.alive && x.context !== null).length === 6,
    { timeoutMs: 30_000, what: 'every agent registered with a context' })
  const twice = randomBytes(2 * 4 * MiB + 5)
  const once = randomBytes(4 * MiB + 7)
  await writeFile(join(root, 'twice'), twice)
  await writeFile(join(root, 'once'), once)
  await shOk(`cp '${join(root, 'twice')}' '${join(a.mount, 'twice')}'`)
  await shOk(`cp '${join(root, 'once')}' '${join(b.mount, 'once')}'`)
  for (const holders of await replicas(a, '/twice')) t.equal(holders.length, 2, 'twice: two copies of each ball')
  // The copy of each ball of 'once' that is not on the agent cut off next is deleted from its bin: that agent holds the only one left.
  const loc = await b.json('/api/v1/location?path=/once')
  for (const ball of loc.balls) {
    t.ok(ball.bins.some((x: any) => x.agent === ids[1] && !x.cached), 'once: a copy on the agent cut off next')
    for (const bin of ball.bins) if (bin.agent !== ids[1]) await rm(join(bin.dir, ball.id.slice(0, 2), ball.id), { force: true })
  }

  // Only this cluster's traffic with b: the peer ports of its agents (and the
  // etcd members' on etcd), as another test's agents may run on 127.0.0.3 meanwhile.
  const host = '127.0.0.3'
  const portOf = (url: string): string => new URL(url).port
  const own = portOf(peerUrl(b))
  const others = [peerUrl(a), peerUrl(c), ...(testMeta()?.replace(/^etcd:\/\//, '').split('/')[0].split(',').map((m) => `ws://${m}`) ?? [])].map(portOf).join(',')
  const rules = [
    `INPUT -s ${host} -p tcp -m multiport --dports ${others} -j DROP`,
    `INPUT -s ${host} -p tcp --sport ${own} -j DROP`,
    `OUTPUT -d ${host} -p tcp --dport ${own} -j DROP`,
    `OUTPUT -d ${host} -p tcp -m multiport --sports ${others} -j DROP`
  ]
  const heal = async (): Promise<void> => {
    for (const rule of rules) while ((await sh(`iptables -w -D ${rule}`)).code === 0);
  }
  t.teardown(heal)
  for (const rule of rules) await shOk(`iptables -w -I ${rule}`)

  const started = Date.now()
  const [readTwice, readOnce, onCut] = await Promise.all([
    sh(`sha256sum '${join(c.mount, 'twice')}'`, { timeoutMs: 60_000 }),
    sh(`cat '${join(c.mount, 'once')}' > /dev/null`, { timeoutMs: 60_000 }),
    sh(`cat '${join(b.mount, 'twice')}' > /dev/null`, { timeoutMs: 60_000 })
  ])
  const took = Date.now() - started
  t.equal(readTwice.code, 0, `a file with another copy is read: ${readTwice.stderr.trim()}`)
  t.equal(readTwice.stdout.split(' ')[0], sha(twice))
  t.not(readOnce.code, 0, 'a file whose only copy is cut off fails')
  t.match(readOnce.stderr, /Input\/output error/, 'with EIO')
  t.notMatch(onCut.stderr, /killed by SIGKILL/, `the cut-off agent answers its own processes too (${onCut.code}: ${onCut.stderr.trim()})`)
  t.ok(took < 40_000, `every read ended within 40 s (${took} ms)`)

  await heal()
  await waitFor(async () => (await sh(`cat '${join(c.mount, 'once')}' > /dev/null`, { timeoutMs: 30_000 })).code === 0,
    { timeoutMs: 60_000, intervalMs: 1000, what: 'the file on the healed agent readable again' })
  await waitReachable([b])
  await waitFor(async () => (await a.json('/api/v1/bins')).bins.filter((x: any) => x.alive).length === 6,
    { timeoutMs: 30_000, what: 'every agent alive again' })
  for (const agent of cluster.agents) {
    for (const [name, data] of [['twice', twice], ['once', once]] as const) {
      const got = await waitFor(async () => {
        const r = await sh(`sha256sum '${join(agent.mount, name)}'`, { timeoutMs: 30_000 })
        return r.code === 0 ? r.stdout.split(' ')[0] : undefined
      }, { timeoutMs: 30_000, intervalMs: 500, what: `${name} readable on ${agent.http}` })
      t.equal(got, sha(data), `${name} on ${agent.http} after healing`)
    }
  }
})
