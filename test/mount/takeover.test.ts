// Taking the mount over: the agent is killed with SIGKILL while processes
// use the mount; its keeper holds the FUSE connection, so they wait instead
// of failing with ENOTCONN, and the next agent started on the same data
// folder serves them on: open descriptors (files and directories) keep
// working, and a request in flight at the kill is answered. A clean stop
// ends the keeper; a dead keeper leaves a stale mount the next start
// replaces, as before.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readdir, readFile } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
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
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
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

// Whether a thread of the process waits in a system call other than futex, epoll_wait and epoll_pwait.
async function inFileCall (pid: number): Promise<boolean> {
  const idle = new Set(['202', '232', '281', 'running'])
  for (const task of await readdir(`/proc/${pid}/task`).catch(() => [])) {
    const call = (await readFile(`/proc/${pid}/task/${task}/syscall`, 'utf8').catch(() => 'running')).split(' ')[0].trim()
    if (!idle.has(call)) return true
  }
  return false
}

// Block i of the looping writer's file: 4 KiB of its number.
function block (i: number): Buffer {
  return Buffer.from(String(i).padStart(8, '0').repeat(512))
}

// Holds one file (read-write) and one directory open the whole time: writes
// block i, fsyncs, reads it back, lists the directory through the old
// descriptor, and says how far it got. Any error ends it with its message.
// After block \`pause\` it waits for a line on stdin (everything it wrote is
// committed then: the agent is killed there; writes acknowledged and not
// committed are lost with it, see the next test).
const LOOP = `
import os, sys, time
path, blocks, pause = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
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
    if i == pause:
        print('paused', flush=True)
        sys.stdin.readline()
    time.sleep(0.01)
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

  const loop = run('python3', ['-c', LOOP, join(mount, 'f'), String(BLOCKS), '40'])
  const reader = run('bash', ['-c', `for i in $(seq 1 150); do ls ${mount} > /dev/null && cat ${mount}/static | sha256sum | grep -q ${staticSum} || { echo "failed at $i"; exit 1; }; done; echo done`])
  t.teardown(() => { stopProc(loop); stopProc(reader) })
  await waitFor(() => /paused/.test(loop.out()) || loop.child.exitCode !== null, { what: 'the loop to get going' })

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
  // Its next write waits for the next agent.
  loop.child.stdin?.write('go\n')

  agent = await startAgent({ data: first.data, env: INFO })
  const second = agent
  t.equal(await withDeadline(blocked.exited, 30_000, 'the waiting reader'), 0, 'the request in flight at the kill is answered')
  t.match(blocked.out(), staticSum, 'with the right bytes')
  t.equal(await withDeadline(loop.exited, 60_000, 'the loop'), 0, `the loop on its open descriptors completes: ${loop.out().slice(-100)}`)
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
  t.comment(`requests the kernel sent again: ${String(status.mount.takeover?.resent)}`)

  t.equal(await second.stop(), 0, 'a clean stop')
  await waitFor(async () => await gone(keeper), { timeoutMs: 10_000, what: 'the keeper to go with the clean stop' })
  t.equal(await second.keeperPid(), undefined, 'its record is gone')
  t.equal((await shOk(`grep -c " ${mount} " /proc/self/mountinfo || true`)).trim(), '0', 'and the mount')
})

t.test('takeover - changes the dead agent acknowledged and never committed are lost: their descriptor answers EIO, the file reads its committed version', OPTS, async (t) => {
  agent = await startAgent({ data: agent?.data, env: INFO })
  const first = agent
  await shOk('printf "old!%.0s" $(seq 1 1024) > g', { cwd: first.mount })
  const writer = run('python3', ['-c', `
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.pwrite(fd, b'new!' * 1024, 0)
print('written', flush=True)
sys.stdin.readline()
def attempt(name, f):
    try:
        f()
        print(name, 'ok', flush=True)
    except OSError as e:
        print(name, errno.errorcode[e.errno], flush=True)
attempt('fsync', lambda: os.fsync(fd))
attempt('write', lambda: os.pwrite(fd, b'x', 0))
attempt('close', lambda: os.close(fd))
`, join(first.mount, 'g')])
  t.teardown(() => stopProc(writer))
  await waitFor(() => /written/.test(writer.out()) || writer.child.exitCode !== null, { what: 'the write' })
  await first.kill9({ keepKeeper: true })
  agent = await startAgent({ data: first.data, env: INFO })
  writer.child.stdin?.write('go\n')
  t.equal(await withDeadline(writer.exited, 30_000, 'the writer'), 0)
  t.equal(writer.out(), 'written\nfsync EIO\nwrite EIO\nclose EIO\n', 'fsync, write and close on the descriptor report the loss')
  t.equal(await shOk('cat g', { cwd: agent.mount }), 'old!'.repeat(1024), 'a new reader gets the committed version, not cached pages of the lost write')
  t.match(agent.log(), /1 files had changes the previous agent acknowledged and never committed/)
  t.equal(await agent.stop(), 0, 'a clean stop')
})

t.test('takeover - a request the dead agent had read and not answered is sent again by the kernel, and answered', OPTS, async (t) => {
  // The agent under test keeps its only bin on the mount of another agent;
  // with that one stopped, an fsync (its ball write) waits in the agent under test.
  const under = await startAgent()
  let served: RunningAgent | undefined
  t.teardown(async () => {
    process.kill(under.pid, 'SIGCONT')
    await cleanupAgent(served)
    await cleanupAgent(under)
  })
  served = await startAgent({ args: ['--bin', `disk:${join(under.mount, 'bin')}:1GiB`], env: INFO })
  const first = served
  const writer = run('python3', ['-c', `
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b'y' * 65536, 0)
print('written', flush=True)
sys.stdin.readline()
try:
    os.fsync(fd)
    print('fsync ok', flush=True)
except OSError as e:
    print('fsync', errno.errorcode[e.errno], flush=True)
`, join(first.mount, 'h')])
  t.teardown(() => stopProc(writer))
  await waitFor(() => /written/.test(writer.out()), { what: 'the write' })
  process.kill(under.pid, 'SIGSTOP')
  writer.child.stdin?.write('go\n')
  // The agent read the fsync and waits on the stopped one: a thread of it sits in a
  // file system call (idle threads wait in futex or epoll_pwait).
  await waitFor(async () => await inFileCall(first.pid), { what: 'the agent to wait on its bin' })
  await first.kill9({ keepKeeper: true })
  process.kill(under.pid, 'SIGCONT')
  served = await startAgent({ data: first.data, args: ['--bin', `disk:${join(under.mount, 'bin')}:1GiB`], env: INFO })
  t.equal(await withDeadline(writer.exited, 30_000, 'the fsync'), 0, 'the fsync in flight at the kill returns')
  t.equal(writer.out(), 'written\nfsync EIO\n', 'with EIO: the write before it was lost with the agent')
  const resent = await waitFor(async () => (await served?.json('/status'))?.mount.takeover?.resent, { what: 'the count of requests sent again' })
  t.ok(resent >= 1, `the kernel sent the fsync again (${String(resent)} requests)`)
})

t.test('takeover - a start that fails after taking over leaves the mount and its keeper to the next agent', OPTS, async (t) => {
  agent = await startAgent({ data: agent?.data, env: INFO })
  const first = agent
  await shOk('echo waited > w', { cwd: first.mount })
  const keeper = await waitFor(async () => await first.keeperPid(), { what: 'the keeper to start' })
  await first.kill9({ keepKeeper: true })
  const reader = run('cat', [join(first.mount, 'w')])
  t.teardown(() => stopProc(reader))
  // The HTTP port is taken: this agent takes the mount over, then fails.
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { taken.close() })
  const port = (taken.address() as AddressInfo).port
  await t.rejects(startAgent({ data: first.data, args: ['--http', `127.0.0.1:${port}`], env: INFO }), /exited before it was ready/)
  t.notOk(await gone(keeper), 'the keeper still holds the connection')
  t.not(reader.child.exitCode, 1, 'the reader did not fail')

  agent = await startAgent({ data: first.data, env: INFO })
  t.match(agent.log(), /took over the mount/, 'the next agent takes it over')
  t.equal(await withDeadline(reader.exited, 30_000, 'the reader'), 0)
  t.equal(reader.out(), 'waited\n')
  t.equal(await shOk('cat w', { cwd: agent.mount }), 'waited\n')
  t.equal(await agent.stop(), 0, 'a clean stop')
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
