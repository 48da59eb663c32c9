// What a cluster does when its pool goes away and when a stranger knocks:
// the mounts of the joined agents fail fast with EIO (no hangs) while the
// pool is down and work again, without a restart, once it is back; an agent
// with a wrong secret is refused with a message that says why, and the
// cluster keeps serving.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { PROJECT, sh, shOk, unmountLazily } from '../helpers/agent.ts'
import { startCluster, waitReachable } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

const OPTS = { timeout: 240_000 }
const CLI = join(PROJECT, 'bin', 'chaac.mjs')

t.test('cluster - the pool killed: EIO fast on the joined agents; back on the same data, they recover', OPTS, async (t) => {
  const cluster = await startCluster(t)
  const [a, b, c] = cluster.agents
  await shOk(`mkdir '${join(b.mount, 'd')}' && echo before > '${join(b.mount, 'd/f')}'`)
  t.equal(await shOk(`cat '${join(c.mount, 'd/f')}'`), 'before\n')

  await a.kill9()
  for (const agent of [b, c]) {
    await waitFor(async () => (await agent.json('/status')).cluster.reachable === false, { timeoutMs: 15_000, what: 'the pool to be missed' })
    const started = Date.now()
    const ops = await Promise.all([
      sh(`cat '${join(agent.mount, 'd/f')}'`, { timeoutMs: 20_000 }),
      sh(`ls '${join(agent.mount, 'd')}'`, { timeoutMs: 20_000 }),
      sh(`echo x > '${join(agent.mount, 'new')}'`, { timeoutMs: 20_000 })
    ])
    for (const r of ops) {
      t.not(r.code, 0)
      t.match(r.stderr, /Input\/output error/, `EIO on ${agent.http}: ${r.stderr.trim()}`)
    }
    t.ok(Date.now() - started < 15_000, `answered within 15 s on ${agent.http} (${Date.now() - started} ms)`)
    const status = await agent.json('/status')
    t.equal(status.cluster.role, 'join', 'the agent itself keeps answering')
  }

  const pool = await cluster.restartPool()
  await waitReachable([b, c])
  t.equal(await shOk(`cat '${join(b.mount, 'd/f')}'`), 'before\n', 'what was stored before is there')
  await shOk(`echo after > '${join(c.mount, 'd/g')}'`)
  t.equal(await shOk(`cat '${join(b.mount, 'd/g')}'`), 'after\n', 'a joined agent writes, another reads')
  t.equal(await shOk(`cat '${join(pool.mount, 'd/g')}'`), 'after\n', 'and the restarted pool agent reads')
  t.equal(await shOk(`ls '${join(pool.mount, 'd')}'`), 'f\ng\n')
})

t.test('cluster - a wrong secret is refused with a clear message; the cluster keeps serving', OPTS, async (t) => {
  const cluster = await startCluster(t, 2)
  const [a, b] = cluster.agents
  const root = await scratch(t)
  const joiner = `${CLI} agent --join ${cluster.poolUrl} --listen 127.0.0.4:0 --http 127.0.0.4:0 --data ${root}/data --mount ${root}/mnt --bin disk:${root}/bin:1GiB`
  for (const secret of ['not-the-secret', '']) {
    const r = await sh(joiner, { env: { CHAAC_SECRET: secret }, timeoutMs: 60_000 })
    t.not(r.code, 0, `secret '${secret}': refused`)
    t.match(r.stderr, /the data pool at ws:\/\/127\.0\.0\.2:\d+ refused this agent: its cluster secret \(--secret, CHAAC_SECRET\) is not the pool's/)
    t.notMatch(r.stdout, /is running/)
  }
  t.match(a.log(), /peer connection refused/, 'the pool logs the refusal')
  await shOk(`echo still > '${join(b.mount, 'f')}'`)
  t.equal(await shOk(`cat '${join(a.mount, 'f')}'`), 'still\n', 'the cluster keeps serving')
  t.equal((await b.json('/status')).cluster.reachable, true)
})

t.test('cluster - listening beyond loopback without a secret is refused', OPTS, async (t) => {
  const root = await scratch(t)
  const cases: Array<[string, RegExp]> = [
    ['--pool --listen 0.0.0.0:0', /--listen: refusing to listen on 0\.0\.0\.0, beyond loopback, without a cluster secret/],
    ['--http 0.0.0.0:0', /--http: refusing to listen on 0\.0\.0\.0, beyond loopback, without a cluster secret/],
    ['--pool --join ws://127.0.0.2:7071', /--pool and --join/],
    ['--join http://127.0.0.2:7071', /--join: not a pool address/]
  ]
  for (const [flags, message] of cases) {
    const r = await sh(`${CLI} agent --data ${root}/data --mount ${root}/mnt ${flags}`, { env: { CHAAC_SECRET: '' }, timeoutMs: 30_000 })
    t.not(r.code, 0, flags)
    t.match(r.stderr, message, flags)
  }
})

async function scratch (t: Test): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'chaac-cluster-scratch-'))
  t.teardown(async () => {
    await unmountLazily(join(root, 'mnt'))
    await rm(root, { recursive: true, force: true })
  })
  return root
}
