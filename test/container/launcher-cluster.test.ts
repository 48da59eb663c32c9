// The launcher in a cluster, on the real Docker engine: `chaac bin create
// --host AGENT` asked of one agent makes the bin on another agent's host
// (the request is forwarded to its HTTP API), and `chaac bin remove` asked
// of any agent is forwarded to the bin's owner, which copies its balls to
// another host first (no ball loses a copy) and then removes the container.
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, PROJECT, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { docker, ensureDocker } from '../helpers/docker.ts'
import { waitFor } from '../helpers/wait.ts'

const TOKEN = `cluster-launcher-${randomBytes(6).toString('hex')}`
const CLI = `CHAAC_ADMIN_TOKEN=${TOKEN} node ${join(PROJECT, 'bin', 'chaac.mjs')}`

t.test('launcher - in a cluster, --host makes the bin on another agent\'s host and bin remove copies its balls to another host first', { timeout: 300_000 }, async (t) => {
  await ensureDocker()
  const root = await mkdtemp(join(tmpdir(), 'chaac-launcher-cluster-'))
  const secret = randomBytes(16).toString('hex')
  const env = { CHAAC_SECRET: secret, CHAAC_ADMIN_TOKEN: TOKEN }
  const flags = ['--cloud', 'none', '--replicas', '2']
  const agents: RunningAgent[] = []
  const ids: string[] = []
  t.teardown(async () => {
    await Promise.all(agents.map(async (a) => await cleanupAgent(a)))
    for (const id of ids) {
      const left = (await docker(['ps', '-aq', '--filter', `label=chaac.agent=${id}`], { timeoutMs: 30_000 })).stdout.split('\n').filter(Boolean)
      if (left.length > 0) await docker(['rm', '-f', ...left], { timeoutMs: 60_000 })
      const volumes = (await docker(['volume', 'ls', '-q', '--filter', `label=chaac.agent=${id}`], { timeoutMs: 30_000 })).stdout.split('\n').filter(Boolean)
      if (volumes.length > 0) await docker(['volume', 'rm', '-f', ...volumes], { timeoutMs: 60_000 })
    }
    await rm(root, { recursive: true, force: true })
  })
  const start = async (n: number, role: string[], extra: string[] = []): Promise<RunningAgent> => {
    const agent = await startAgent({ args: [...role, '--listen', `127.0.0.${n}:0`, '--http', `127.0.0.${n}:0`, ...flags, ...extra], env })
    agents.push(agent)
    ids.push((await agent.json('/status')).agent.id)
    return agent
  }
  const pool = await start(2, ['--pool'])
  const poolUrl = /peers:\s+(ws:\/\/[\d.]+:\d+)/.exec(pool.log())?.[1] as string
  // The second agent has a memory bin only: the launched container is its one disk bin.
  const second = await start(3, ['--join', poolUrl], ['--bin', `mem:${join(root, 'shm')}:64MiB`])
  const third = await start(4, ['--join', poolUrl])
  const secondId = ids[1]
  await waitFor(async () => (await pool.json('/api/v1/agents')).agents.length === 3, { what: 'three agents' })

  const created = JSON.parse(await shOk(`${CLI} bin create --host ${secondId.slice(0, 8)} --capacity 64MiB --http ${pool.http} --json`, { timeoutMs: 300_000 }))
  t.equal(created.agent, secondId, 'the bin was made by the agent named with --host')
  const name = created.container.name as string
  t.equal((await docker(['container', 'inspect', '-f', '{{index .Config.Labels "chaac.agent"}}', name], { timeoutMs: 30_000 })).stdout.trim(), secondId)

  await shOk(`for i in 1 2 3 4; do head -c 200000 /dev/urandom > ${second.mount}/f$i; done; cd ${second.mount} && sha256sum f* > ${root}/sums`)
  const bins = async (): Promise<Array<{ id: string, balls: number }>> => (await second.json('/api/v1/bins')).bins
  const held = (await bins()).find((b) => b.id === created.id)?.balls ?? 0
  t.ok(held >= 1, `the launched bin holds balls (${held})`)

  const removed = await shOk(`${CLI} bin remove ${created.id} --http ${pool.http}`, { timeoutMs: 300_000 })
  // Balls this agent read from a peer are caches in its bin: those are dropped, the others copied.
  const m = new RegExp(`removed bin ${created.id} \\(container ${name}\\) of agent ${secondId}: (\\d+) balls copied to other bins first, (\\d+) cached copies dropped`).exec(removed)
  t.ok(m, removed)
  // (Caches of the reads above may still have been arriving when the bin was counted.)
  t.ok(Number(m?.[1]) >= 1 && Number(m?.[1]) + Number(m?.[2]) >= held, 'every ball of the bin was copied away or was a cache')
  t.not((await docker(['container', 'inspect', name], { timeoutMs: 30_000 })).code, 0, 'the container is gone')
  for (const agent of [second, third, pool]) {
    t.equal(await shOk(`cd ${agent.mount} && sha256sum f*`), await shOk(`cat ${root}/sums`), `every file reads whole on ${agent.http}`)
  }
  const replication = await waitFor(async () => {
    const r = await pool.json('/api/v1/replication')
    return r.balls >= 4 ? r : undefined
  }, { what: 'the replication count' })
  t.equal(replication.underReplicated, 0, 'no ball lost a copy')
})
