// Data containers as bins, on the real Docker engine: a container labelled
// chaac.bin with a volume becomes a bin of the agent (found from Docker's
// event stream), files written through the mount put balls in its volume;
// stopped, the bin is gone (and in a cluster its balls are copied again
// after --rereplicate-after); started again, the bin and its balls are back.
// Every container and volume carries this file's names and the agent's id
// (chaac.agent), so that no other agent on the engine takes them.
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { cleanupAgent, PROJECT, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { docker, ensureBusyboxImage } from '../helpers/docker.ts'
import { waitFor } from '../helpers/wait.ts'

const PREFIX = `chaac-cbins-${process.pid}-${randomBytes(3).toString('hex')}`
const CLI = `node ${join(PROJECT, 'bin', 'chaac.mjs')}`
let image = ''
let n = 0

t.before(async () => {
  image = await ensureBusyboxImage()
})

interface BinView { id: string, agent: string, kind: string, balls: number, offline: number | null, container: { name: string, path: string } | null }

async function binsOf (agent: RunningAgent): Promise<BinView[]> {
  return (await agent.json('/api/v1/bins')).bins as BinView[]
}

/** A data container (a named volume at /balls) labelled as a disk bin of `agentId`; teardown removes both. */
async function dataContainer (t: Test, agentId: string, capacity = '256MiB'): Promise<string> {
  const name = `${PREFIX}-${++n}`
  t.teardown(async () => {
    await docker(['rm', '-f', name], { timeoutMs: 30_000 }).catch(() => {})
    await docker(['volume', 'rm', '-f', name], { timeoutMs: 30_000 }).catch(() => {})
  })
  // The local driver named: a volume name alone makes the engine ask every volume plugin about it.
  const r = await docker(['run', '-d', '--network', 'none', '--name', name, '--mount', `type=volume,src=${name},dst=/balls,volume-driver=local`,
    '--label', 'chaac.bin=disk', '--label', `chaac.capacity=${capacity}`, '--label', `chaac.agent=${agentId}`,
    image, 'sleep', '600'], { timeoutMs: 60_000 })
  if (r.code !== 0) throw new Error(`docker run failed: ${r.stderr}`)
  return name
}

async function containerBin (agent: RunningAgent, name: string, online = true): Promise<BinView> {
  return await waitFor(async () => (await binsOf(agent)).find((b) => b.container?.name === name && (b.offline === null) === online),
    { timeoutMs: 30_000, what: `container ${name}'s bin to be ${online ? 'online' : 'offline'}` })
}

/** Ball files in the container's volume. */
async function ballsIn (name: string): Promise<string[]> {
  const r = await docker(['exec', name, 'find', '/balls', '-type', 'f'], { timeoutMs: 30_000 })
  return r.stdout.split('\n').map((l) => l.split('/').pop() ?? '').filter((f) => /^[0-9a-f]{64}$/.test(f))
}

async function agentWithMemOnly (t: Test, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ agent: RunningAgent, id: string }> {
  const root = await mkdtemp(join(tmpdir(), 'chaac-cbins-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  // A memory bin only: the container's disk bin is then where balls go.
  const agent = await startAgent({ args: ['--bin', `mem:${join(root, 'shm')}:64MiB`, '--cloud', 'none', ...extra], env })
  t.teardown(async () => await cleanupAgent(agent))
  return { agent, id: (await agent.json('/status')).agent.id }
}

t.test('container bins - a labelled container becomes a bin, holds the balls written, and comes and goes with its container', { timeout: 180_000 }, async (t) => {
  const { agent, id } = await agentWithMemOnly(t)
  const name = await dataContainer(t, id)
  const bin = await containerBin(agent, name)
  t.equal(bin.kind, 'container', 'the API says the bin is a container')
  t.equal(bin.container?.path, '/balls', 'its directory is the container\'s single volume')
  const status = await shOk(`${CLI} status --http ${agent.http}`)
  t.match(status, new RegExp(`container ${name}:/balls`), 'chaac status names the container')

  await shOk(`head -c 3000000 /dev/urandom > ${agent.mount}/f && sha256sum < ${agent.mount}/f > ${agent.root}/sum`)
  const sum = await shOk(`cat ${agent.root}/sum`)
  const balls = await ballsIn(name)
  t.ok(balls.length >= 1, `the container's volume holds the file's balls (${balls.length})`)

  await docker(['stop', '-t', '1', name], { timeoutMs: 60_000 })
  const off = await containerBin(agent, name, false)
  t.equal(off.id, bin.id, 'the stopped container\'s bin is listed offline')
  t.match(await shOk(`${CLI} status --http ${agent.http}`), /container stopped: offline/, 'chaac status says it is offline')

  await docker(['start', name], { timeoutMs: 60_000 })
  const back = await containerBin(agent, name)
  t.equal(back.id, bin.id, 'started again, the same bin is back')
  t.equal(back.balls, balls.length, 'with its balls')
  t.equal(await shOk(`sha256sum < ${agent.mount}/f`), sum, 'the file reads back whole from the container\'s bin')
})

t.test('container bins - labels that do not make a bin are refused with a clear log line, and other agents\' containers are left alone', { timeout: 120_000 }, async (t) => {
  const { agent, id } = await agentWithMemOnly(t, [], { CHAAC_LOG_LEVEL: 'info' })
  const bad = `${PREFIX}-${++n}`
  const other = `${PREFIX}-${++n}`
  t.teardown(async () => {
    await docker(['rm', '-f', bad, other], { timeoutMs: 30_000 }).catch(() => {})
  })
  await docker(['run', '-d', '--network', 'none', '--name', bad, '--tmpfs', '/balls',
    '--label', 'chaac.bin=fast', '--label', 'chaac.capacity=1MiB', '--label', `chaac.agent=${id}`, image, 'sleep', '600'], { timeoutMs: 60_000 })
  await docker(['run', '-d', '--network', 'none', '--name', other, '--tmpfs', '/balls',
    '--label', 'chaac.bin=mem', '--label', 'chaac.capacity=1MiB', '--label', 'chaac.agent=someone-else', image, 'sleep', '600'], { timeoutMs: 60_000 })
  await waitFor(() => agent.log().includes(`container ${bad}: label chaac.bin=fast is not a level (mem or disk)`), { what: 'the refusal in the log' })
  const bins = await binsOf(agent)
  t.notOk(bins.some((b) => b.container !== null), 'neither container became a bin')
})

t.test('container bins - a stopped container\'s balls are copied again after --rereplicate-after, and come back when it starts', { timeout: 240_000 }, async (t) => {
  const secret = randomBytes(16).toString('hex')
  const flags = ['--cloud', 'none', '--rereplicate-after', '1', '--replicas', '2']
  const root = await mkdtemp(join(tmpdir(), 'chaac-cbins-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  const pool = await startAgent({ args: ['--pool', '--listen', '127.0.0.2:0', '--http', '127.0.0.2:0', '--bin', `mem:${join(root, 'shm')}:64MiB`, ...flags], env: { CHAAC_SECRET: secret } })
  t.teardown(async () => await cleanupAgent(pool))
  const poolUrl = /peers:\s+(ws:\/\/[\d.]+:\d+)/.exec(pool.log())?.[1] as string
  const other = await startAgent({ args: ['--join', poolUrl, '--listen', '127.0.0.3:0', '--http', '127.0.0.3:0', ...flags], env: { CHAAC_SECRET: secret } })
  t.teardown(async () => await cleanupAgent(other))
  const id = (await pool.json('/status')).agent.id
  const first = await dataContainer(t, id)
  const firstBin = await containerBin(pool, first)
  await waitFor(async () => (await binsOf(other)).some((b) => b.id === firstBin.id), { what: 'the joined agent to see the container bin' })

  await shOk(`head -c 1000000 /dev/urandom > ${pool.mount}/f && sha256sum < ${pool.mount}/f > ${root}/sum`)
  const [ball] = await ballsIn(first)
  t.ok(ball, 'the ball went to the container bin')
  const second = await dataContainer(t, id)
  const secondBin = await containerBin(pool, second)

  await docker(['stop', '-t', '1', first], { timeoutMs: 60_000 })
  await containerBin(pool, first, false)
  await waitFor(async () => (await ballsIn(second)).includes(ball), { timeoutMs: 60_000, what: 'the ball to be copied again into the other container bin' })
  const loc = await pool.json('/api/v1/location?path=/f')
  t.ok(loc.balls[0].bins.some((b: { id: string }) => b.id === secondBin.id), 'the map of balls lists the new copy')
  t.equal(loc.balls[0].underReplicated, false, 'the ball has its copies again')

  await docker(['start', first], { timeoutMs: 60_000 })
  const back = await containerBin(pool, first)
  t.ok(back.balls >= 1, 'the first container\'s bin is back with its ball')
  t.equal(await shOk(`sha256sum < ${pool.mount}/f`), await shOk(`cat ${root}/sum`), 'the file reads whole')
})
