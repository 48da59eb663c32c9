// The microservices' context on a real Docker engine: a container that uses
// the chaac path is listed by GET /api/v1/containers with Docker's figures and
// the bytes it moved through the mount (the FUSE requests' pids mapped to its
// cgroup); its samples are kept in the history; the allocator answers for a
// container's new balls.
import t from 'tap'
import { cleanupAgent, py, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { docker, ensureBusyboxImage, ensureDocker } from '../helpers/docker.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const NAME = `chaac-containers-${process.pid}`
let agent: RunningAgent | undefined
let short = ''

t.before(async () => {
  await ensureDocker()
  const image = await ensureBusyboxImage()
  agent = await startAgent({ env: { CHAAC_HISTORY_INTERVAL_MS: '1000' } })
  // A file the host wrote, out of the page cache: the container's reads of it reach the agent.
  await py(`
import os
p = ${JSON.stringify(agent.mount + '/from-host')}
with open(p, 'wb') as f:
    f.write(os.urandom(${MiB}))
    f.flush()
    os.fsync(f.fileno())
fd = os.open(p, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
os.close(fd)
`)
  const run = await docker(['run', '-d', '--network', 'none', '--name', NAME, '-v', `${agent.mount}:/data`, image, 'sh', '-c',
    // Then a small write every second, so that its rates stay above zero whenever a sample is taken.
    'dd if=/dev/zero of=/data/from-container bs=65536 count=32 && cat /data/from-host > /dev/null && ' +
    'while true; do dd if=/dev/zero of=/data/tick bs=4096 count=1 2>/dev/null; sleep 1; done'], { timeoutMs: 60_000 })
  if (run.code !== 0) throw new Error(`docker run failed: ${run.stderr}`)
  short = run.stdout.trim().slice(0, 12)
})

t.teardown(async () => {
  await docker(['rm', '-f', NAME], { timeoutMs: 30_000 }).catch(() => {})
  await cleanupAgent(agent)
})

t.test('containers - a container using the chaac path is listed with its stats and the bytes it moved through the mount', async (t) => {
  const a = agent as RunningAgent
  const entry = await waitFor(async () => {
    const body = await a.json('/api/v1/containers')
    const c = body.containers.find((x: any) => x.name === NAME)
    return c !== undefined && c.chaac.written >= 2 * MiB && c.chaac.read >= MiB ? { body, c } : undefined
  }, { timeoutMs: 90_000, what: 'the container with its traffic in /api/v1/containers' })
  const { body, c } = entry
  t.equal(body.agent, (await a.json('/status')).agent.id)
  t.equal(body.docker.available, true)
  t.equal(c.id, short)
  t.match(c.image, /busybox/)
  t.same(c.uses.map((m: any) => [m.type, m.source, m.destination]), [['bind', a.mount, '/data']], 'its bind mount of the chaac path')
  for (const k of ['cpu', 'memoryBytes', 'memoryLimit', 'netRx', 'netTx', 'blkRead', 'blkWrite']) t.type(c[k], 'number', k)
  t.ok(c.memoryBytes > 0 && c.memoryLimit > 0, 'memory from Docker stats')
  t.ok(body.host.written >= MiB, `the host's own writes counted apart (${body.host.written})`)
})

t.test('containers - their samples are in the history, by container', async (t) => {
  const a = agent as RunningAgent
  const body = await waitFor(async () => {
    const h = await a.json(`/api/v1/history?metric=container.chaacWritten,container.memory&container=${short}&since=-600`)
    const written = h.series.find((s: any) => s.metric === 'container.chaacWritten')
    return written?.points.some((p: number[]) => p[1] > 0) === true ? h : undefined
  }, { timeoutMs: 90_000, what: 'the container\'s write rate in the history' })
  t.ok(body.series.every((s: any) => s.container === short && s.agent === undefined), 'series by container')
  t.ok(body.series.some((s: any) => s.metric === 'container.memory' && s.unit === 'B'))
  const bad = await fetch(`${a.url}/api/v1/history?metric=container.nope`)
  t.equal(bad.status, 400)
})

t.test('containers - the allocator answers for a container\'s new balls, near it', async (t) => {
  const a = agent as RunningAgent
  const post = async (body: unknown): Promise<Response> => await fetch(`${a.url}/api/v1/allocation`, { method: 'POST', body: JSON.stringify(body) })
  // The membership report carries the container once the context sampled it.
  const res = await waitFor(async () => {
    const r = await post({ size: 65536, container: short })
    return r.status === 200 ? await r.json() : undefined
  }, { timeoutMs: 60_000, what: 'an allocation for the container' })
  const id = (await a.json('/status')).agent.id
  t.same(res.container, { id: short, name: NAME, agent: id })
  t.ok(res.bins.length > 0 && res.bins.every((b: any) => b.agent === id), 'bins on its host')
  t.same((await post({ size: 65536, container: NAME })).status, 200, 'by name too')
  const unknown = await post({ size: 65536, container: 'no-such-container' })
  t.equal(unknown.status, 404)
  t.match((await unknown.json()).error, /no container no-such-container/)
  t.equal((await post({ size: 65536, container: 7 })).status, 400)
})
