// Taking the mount over: the agent is killed with SIGKILL while processes
// use the mount; its keeper holds the FUSE connection, so they wait instead
// of failing with ENOTCONN, and the next agent started on the same data
// folder serves them on: open descriptors (files and directories) keep
// working, and a request in flight at the kill is answered. A clean stop
// ends the keeper; a dead keeper leaves a stale mount the next start
// replaces, as before.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, sh, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { waitFor, withDeadline } from '../helpers/wait.ts'

const OPTS = { timeout: 120_000 }
const BLOCKS = 120
// The takeover is logged at level info.
const INFO = { CHAAC_LOG_LEVEL: 'info' }

interface Proc { child: ChildProcess, out: () => string, exited: Promise<number | null> }

function run (cmd: string, args: string[]): Proc {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout?.on('data', (d) => { out += String(d) })
  child.stderr?.on('data', (d) => { out += String(d) })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, out: () => out, exited }
}

function stopProc (p: Proc): void {
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL')
}

// Exited (a zombie waiting for its reaper counts as gone).
async function gone (pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  return stat === '' || stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')
}

// Block i of the looping writer's file: 4 KiB of its number.
function block (i: number): Buffer {
  return Buffer.from(String(i).padStart(8, '0').repeat(512))
}

// Holds one file (read-write) and one directory open the whole time: writes
// block i, fsyncs, reads it back, lists the directory through the old
// descriptor, and says how far it got. Any error ends it with its message.
const LOOP = `
import os, sys, time
path, blocks = sys.argv[1], int(sys.argv[2])
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
dfd = os.open(os.path.dirname(path), os.O_RDONLY | os.O_DIRECTORY)
for i in range(blocks):
    data = str(i).zfill(8).encode() * 512
    os.pwrite(fd, data, i * 4096)
    os.fsync(fd)
    if os.pread(fd, 4096, i * 4096) != data:
        sys.exit('block %d reads back wrong' % i)
    if 'static' not in os.listdir(dfd):
        sys.exit('the directory lost a name')
    print(i, flush=True)
    time.sleep(0.02)
os.close(dfd)
os.close(fd)
print('done', flush=True)
`

let agent: RunningAgent | undefined
t.teardown(async () => await cleanupAgent(agent))

t.test('takeover - processes using the mount go on through a kill -9 of the agent and a restart, with no ENOTCONN', OPTS, async (t) => {
  agent = await startAgent({ env: INFO })
  const first = agent
  const { mount } = first
  await shOk('seq 1 20000 > static', { cwd: mount })
  const staticSum = (await shOk('sha256sum static', { cwd: mount })).split(' ')[0]
  const keeper = await waitFor(async () => await first.keeperPid(), { what: 'the keeper to start' })

  const loop = run('python3', ['-c', LOOP, join(mount, 'f'), String(BLOCKS)])
  const reader = run('bash', ['-c', `for i in $(seq 1 150); do ls ${mount} > /dev/null && cat ${mount}/static | sha256sum | grep -q ${staticSum} || { echo "failed at $i"; exit 1; }; done; echo done`])
  t.teardown(() => { stopProc(loop); stopProc(reader) })
  await waitFor(() => /^2\d$/m.test(loop.out()) || loop.child.exitCode !== null, { what: 'the loop to get going' })

  // A request that waits in the kernel when the agent dies: the agent is
  // stopped, a reader asks, then the agent is killed.
  process.kill(first.pid, 'SIGSTOP')
  const blocked = run('sha256sum', [join(mount, 'static')])
  t.teardown(() => stopProc(blocked))
  await waitFor(async () => (await readFile(`/proc/${blocked.child.pid as number}/stat`, 'utf8').catch(() => '')).split(' ')[2] === 'S',
    { what: 'the reader to wait for the agent' })
  await first.kill9({ keepKeeper: true })
  t.notOk(await gone(keeper), 'the keeper outlives the agent')
  t.equal(blocked.child.exitCode, null, 'the reader waits, it does not fail')

  agent = await startAgent({ data: first.data, env: INFO })
  const second = agent
  t.equal(await withDeadline(blocked.exited, 30_000, 'the waiting reader'), 0, 'the request in flight at the kill is answered')
  t.match(blocked.out(), staticSum, 'with the right bytes')
  t.equal(await withDeadline(loop.exited, 60_000, 'the loop'), 0, `the loop on its open descriptors completes: ${loop.out().slice(-300)}`)
  t.match(loop.out(), /done/)
  t.equal(await withDeadline(reader.exited, 60_000, 'the ls/cat loop'), 0, `ls and cat never fail: ${reader.out().slice(-300)}`)
  for (const p of [loop, blocked, reader]) t.notMatch(p.out(), /Transport endpoint is not connected/, 'no ENOTCONN')

  const expected = createHash('sha256').update(Buffer.concat(Array.from({ length: BLOCKS }, (_, i) => block(i)))).digest('hex')
  const direct = await shOk(`dd if=${join(mount, 'f')} iflag=direct bs=1M status=none | sha256sum`)
  t.equal(direct.split(' ')[0], expected, 'every block the loop wrote is in the file, read past the page cache')

  t.match(second.log(), /took over the mount/, 'the log says the mount was taken over')
  const status = await second.json('/status')
  t.equal(status.mount.takeover?.keeper, keeper, '/status names the keeper that held the connection')
  t.equal(status.mount.keeper, keeper, 'and it keeps holding it')
  t.equal(await second.keeperPid(), keeper)

  t.equal(await second.stop(), 0, 'a clean stop')
  await waitFor(async () => await gone(keeper), { timeoutMs: 10_000, what: 'the keeper to go with the clean stop' })
  t.equal(await second.keeperPid(), undefined, 'its record is gone')
  t.equal((await shOk(`grep -c " ${mount} " /proc/self/mountinfo || true`)).trim(), '0', 'and the mount')
})

t.test('takeover - with the keeper dead too, the next start replaces the stale mount, as after any crash', OPTS, async (t) => {
  agent = await startAgent({ data: agent?.data, env: INFO })
  const first = agent
  await shOk('echo kept > kept && sync', { cwd: first.mount })
  const keeper = await waitFor(async () => await first.keeperPid(), { what: 'the keeper to start' })
  await first.kill9()
  t.ok(await gone(keeper), 'the keeper is gone too')
  const probe = await sh(`stat ${first.mount}`, { timeoutMs: 10_000 })
  t.match(probe.stderr, /Transport endpoint is not connected/, 'the mount is stale')

  agent = await startAgent({ data: first.data, env: INFO })
  t.match(agent.log(), /cannot take over the previous agent's mount \(its keeper \(pid \d+\) is gone\)/, 'the log says why it mounted anew')
  t.equal(await shOk('cat kept', { cwd: agent.mount }), 'kept\n', 'the new mount serves the files')
  const newKeeper = await waitFor(async () => await agent?.keeperPid(), { what: 'a new keeper' })
  t.not(newKeeper, keeper, 'with a keeper of its own')
})
