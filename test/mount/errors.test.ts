// No silent EIO: a read that fails because a ball is missing or corrupt gets
// EIO, and the agent says so at its default log level (warn here), naming the
// code, the inode, the path and the ball, once a second however many reads
// fail; /metrics and /status count every one.
// File I/O on the mount happens in child processes; the bins are plain
// directories the test may touch directly (fault injection, agent stopped).
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, sh, shOk, startAgent, testMeta, type RunningAgent } from '../helpers/agent.ts'
import { flipByte } from '../helpers/faults.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const READS = 50

/** The agent's JSON log lines at warn (40) or above. */
function warnings (agent: RunningAgent): any[] {
  return agent.log().split('\n').flatMap((line) => {
    try {
      const obj = JSON.parse(line)
      return obj.level >= 40 ? [obj] : []
    } catch {
      return []
    }
  })
}

/** The value of chaac_fs_errors_total for one code and op (0 when absent). */
async function errorsCounted (agent: RunningAgent, code: string, op: string): Promise<number> {
  const text = await (await fetch(`${agent.url}/metrics`, { signal: AbortSignal.timeout(10_000) })).text()
  const line = text.split('\n').find((l) => l.startsWith('chaac_fs_errors_total{') && l.includes(`code="${code}"`) &&
    l.includes(`op="${op}"`) && l.includes('errno="EIO"'))
  return line === undefined ? 0 : Number(line.split(' ').pop())
}

t.test('EIO - a missing or corrupt ball is logged at warn with code, inode, path and ball, counted in /metrics and /status', { timeout: 180_000 }, async (t) => {
  const scratch = await mkdtemp(join(tmpdir(), 'chaac-errors-test-'))
  t.teardown(async () => await rm(scratch, { recursive: true, force: true }))
  let agent = await startAgent({ args: ['--cloud', 'none'] })
  const first = agent
  t.teardown(async () => await cleanupAgent(first, false))
  for (const name of ['gone', 'bad']) {
    await writeFile(join(scratch, name), randomBytes(2 * MiB))
    await shOk(`mkdir -p dir && cp ${join(scratch, name)} dir/${name}`, { cwd: agent.mount })
  }
  const ballOf = async (path: string): Promise<{ id: string, files: string[] }> => {
    const loc = await agent.json(`/api/v1/location?path=${encodeURIComponent(path)}`)
    const id: string = loc.balls[0].id
    return { id, files: loc.balls[0].bins.map((b: any) => join(b.dir, id.slice(0, 2), id)) }
  }
  const gone = await ballOf('/dir/gone')
  const bad = await ballOf('/dir/bad')
  // Faults go in with the agent stopped; the restart leaves the kernel's page cache empty, so every read reaches the agent.
  t.equal(await agent.stop(), 0)
  for (const f of gone.files) await rm(f, { force: true })
  for (const f of bad.files) await flipByte(f, 4096 + 100).catch(() => {})
  agent = await startAgent({ data: first.data, args: ['--cloud', 'none'] })
  const second = agent
  t.teardown(async () => await cleanupAgent(second))

  const inos = Object.fromEntries(await Promise.all(['gone', 'bad'].map(async (name) =>
    [name, Number((await shOk(`stat -c %i dir/${name}`, { cwd: agent.mount })).trim())])))

  const cat = await sh('cat dir/gone > /dev/null', { cwd: agent.mount })
  t.not(cat.code, 0, 'reading a file whose ball is gone fails')
  t.match(cat.stderr, /Input\/output error/, 'with EIO')
  // The agent's log reaches this process through a pipe, a little after the failed read.
  const missing = await waitFor(() => warnings(agent).find((l) => l.code === 'CHAAC_BALL_MISSING' && l.op === 'read'),
    { timeoutMs: 10_000, what: 'a warn line that names the failed read' }).catch(() => undefined)
  t.ok(missing, 'a warn line names the failed read')
  t.match(missing, { errno: 'EIO', ino: inos.gone, path: '/dir/gone', ball: gone.id })
  t.ok(await errorsCounted(agent, 'CHAAC_BALL_MISSING', 'read') >= 1, '/metrics counts it')

  // The corrupt copy fails its hash (and is dropped: the reads after find no copy at all).
  const reads = await sh(`for i in $(seq ${READS}); do dd if=dir/bad of=/dev/null iflag=direct bs=64k count=1 status=none 2>&1; done`, { cwd: agent.mount })
  t.equal((reads.stdout.match(/Input\/output error/g) ?? []).length, READS, `each of ${READS} reads fails with EIO`)
  const badLines = (): any[] => warnings(agent).filter((l) => l.op === 'read' && l.ball === bad.id)
  const bads = await waitFor(() => badLines().length > 0 ? badLines() : undefined, { timeoutMs: 10_000, what: 'a warn line of the corrupt ball' }).catch(() => [])
  // An agent of a cluster on etcd looks for a good copy on its peers, and finds none.
  const code = testMeta() === undefined ? 'CHAAC_BALL_CORRUPT' : 'CHAAC_BALL_MISSING'
  t.match(bads[0], { code, errno: 'EIO', ino: inos.bad, path: '/dir/bad' }, 'the first failure names the corrupt ball')
  t.ok(bads.length <= 4, `${READS} failures in a row make few log lines (${bads.length}), not one each`)
  const counted = await errorsCounted(agent, 'CHAAC_BALL_CORRUPT', 'read') + await errorsCounted(agent, 'CHAAC_BALL_MISSING', 'read')
  t.ok(counted >= READS + 1, `/metrics counts every failed read (${counted})`)

  const status = await agent.json('/status')
  t.equal(status.mount.errors.total, counted, '/status counts them too')
  t.match(status.mount.errors.last, { op: 'read', ino: inos.bad, path: '/dir/bad', ball: bad.id })

  // Normal answers are not failures.
  t.not((await sh('cat dir/nothing-here', { cwd: agent.mount })).code, 0)
  t.notOk(warnings(agent).some((l) => l.code === 'CHAAC_NOT_FOUND'), 'ENOENT is not logged at warn')
  t.equal((await agent.json('/status')).mount.errors.total, counted, 'nor counted')
})
