// Every agent reports its bins and context to the pool every few seconds;
// GET /api/v1/bins on any agent lists every bin of the cluster with its
// agent, peer address, usage and latest context.
import t from 'tap'
import { testMeta } from '../helpers/agent.ts'
import { startCluster } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

const OPTS = { timeout: 180_000 }

t.test('cluster - GET /api/v1/bins on a joined agent lists every agent\'s bins with their context', OPTS, async (t) => {
  const cluster = await startCluster(t)
  const ids = await Promise.all(cluster.agents.map(async (a) => (await a.json('/status')).agent.id as string))
  const joined = cluster.agents[2]
  const bins: any[] = await waitFor(async () => {
    const list = (await joined.json('/api/v1/bins')).bins as any[]
    return list.length === 6 && list.every((b) => b.context !== null && b.alive === true) ? list : undefined
  }, { timeoutMs: 30_000, what: 'all six bins with a context' })
  t.same([...new Set(bins.map((b) => b.agent))].sort(), [...ids].sort(), 'the bins of all three agents')
  t.equal(new Set(bins.map((b) => b.id)).size, 6, 'bin ids are unique across the cluster')
  for (const [i, agent] of cluster.agents.entries()) {
    const own = bins.filter((b) => b.agent === ids[i])
    t.same(own.map((b) => b.level).sort(), ['disk', 'mem'])
    for (const b of own) {
      t.match(b.peer, new RegExp(`^ws://127\\.0\\.0\\.${i + 2}:\\d+$`), 'where its peers reach the agent')
      t.ok(b.capacity > 0 && b.used <= b.capacity)
      t.type(b.context.ufCPU, 'number')
      t.ok(b.seenAt > Date.now() - 60_000, 'seen lately')
    }
    const status = await agent.json('/status')
    t.equal(status.bins.length, 2, '/status lists the agent\'s own bins')
    t.equal(status.cluster.role, testMeta() !== undefined ? 'etcd' : i === 0 ? 'pool' : 'join')
    t.equal(status.cluster.agents.length, 3)
  }
})
