// The agent as a service: under systemd (Type=notify) it sends READY=1 once
// the chaac path answers and STOPPING=1 when a SIGTERM or SIGHUP begins its
// clean stop; without a Docker engine it runs on the host's context alone and
// says so once in its log and in /status. The test plays systemd: a python3
// child binds the notify socket (Node has no unix datagram sockets) and, at
// READY=1, checks from its own process that the chaac path is mounted and answers.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { cleanupAgent, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { waitFor } from '../helpers/wait.ts'

// Prints one JSON line per datagram; a path starting with '@' is in the abstract namespace.
const LISTENER = `
import json, os, socket, sys
path, mount = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + path[1:] if path.startswith('@') else path)
print(json.dumps({'bound': True}), flush=True)
while True:
    data = s.recv(65536).decode()
    fields = dict(line.split('=', 1) for line in data.split('\\n') if '=' in line)
    seen = {'fields': fields}
    if fields.get('READY') == '1':
        with open('/proc/self/mountinfo') as f:
            seen['mounted'] = any(l.split(' ')[4] == mount and ' - fuse.chaac ' in l for l in f)
        os.statvfs(mount)  # returns once the agent answers
        seen['answers'] = True
    print(json.dumps(seen), flush=True)
`

interface Datagram { fields: Record<string, string>, mounted?: boolean, answers?: boolean }

interface Listener { datagrams: Datagram[], child: ChildProcess }

/** A notify socket as systemd would give it; teardown stops its listener. */
async function listen (t: Test, path: string, mount: string): Promise<Listener> {
  const child = spawn('python3', ['-c', LISTENER, path, mount], { stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { child.kill('SIGKILL') })
  const datagrams: Datagram[] = []
  let bound = false
  let err = ''
  let buffered = ''
  child.stderr.on('data', (d) => { err += String(d) })
  child.stdout.on('data', (d) => {
    buffered += String(d)
    const lines = buffered.split('\n')
    buffered = lines.pop() ?? ''
    for (const line of lines) {
      const msg = JSON.parse(line) as Datagram & { bound?: boolean }
      if (msg.bound === true) bound = true
      else datagrams.push(msg)
    }
  })
  await waitFor(() => {
    if (child.exitCode !== null) throw new Error(`the notify listener exited: ${err}`)
    return bound
  }, { timeoutMs: 10_000, what: 'the notify socket to be bound' })
  return { datagrams, child }
}

/** A fresh folder for the agent (the helper's own would be made only at start, after the listener needs the chaac path). */
async function agentRoot (t: Test): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'chaac-service-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  return root
}

async function isMounted (dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  return info.split('\n').some((line) => line.split(' ')[4] === dir)
}

const named = (l: Listener, name: string): Datagram[] => l.datagrams.filter((d) => d.fields[name] === '1')

/** An agent started as systemd starts a Type=notify service, once READY=1 came; teardown cleans up after a failure. */
async function serve (t: Test, socket: (root: string) => string, env: NodeJS.ProcessEnv = {}): Promise<{ agent: RunningAgent, listener: Listener }> {
  const root = await agentRoot(t)
  const mount = join(root, 'mnt')
  const listener = await listen(t, socket(root), mount)
  let agent: RunningAgent | undefined
  t.teardown(async () => await cleanupAgent(agent, false))
  agent = await startAgent({ data: join(root, 'data'), env: { NOTIFY_SOCKET: socket(root), ...env } })
  const ready = await waitFor(() => named(listener, 'READY')[0], { timeoutMs: 30_000, what: 'READY=1' })
  t.equal(ready.mounted, true, 'READY=1 comes once the chaac path is mounted')
  t.equal(ready.answers, true, 'and answers (statfs from another process)')
  t.match(ready.fields.STATUS, mount, 'STATUS names the chaac path')
  t.equal(named(listener, 'STOPPING').length, 0, 'no STOPPING=1 while it serves')
  return { agent, listener }
}

async function stopAndCheck (t: Test, agent: RunningAgent, listener: Listener, signal: NodeJS.Signals): Promise<void> {
  const code = await agent.stop(signal)
  t.equal(code, 0, `${signal}: the agent exits 0`)
  t.equal(named(listener, 'STOPPING').length, 1, `${signal}: STOPPING=1 was sent`)
  t.equal(named(listener, 'READY').length, 1, 'READY=1 was sent once')
  t.equal(await isMounted(agent.mount), false, `${signal}: the chaac path is unmounted`)
}

t.test('systemd notify - READY=1 once the chaac path answers; SIGTERM sends STOPPING=1, unmounts and exits 0', async (t) => {
  const { agent, listener } = await serve(t, (root) => join(root, 'notify.sock'))
  await stopAndCheck(t, agent, listener, 'SIGTERM')
})

t.test('systemd notify - SIGHUP stops as cleanly as SIGTERM (socket in the abstract namespace)', async (t) => {
  const name = `@chaac-notify-${process.pid}-${randomBytes(4).toString('hex')}`
  const { agent, listener } = await serve(t, () => name)
  await stopAndCheck(t, agent, listener, 'SIGHUP')
})

t.test('agent without Docker - runs on the host context, says so once in its log and in /status', async (t) => {
  const socket = '/nonexistent-chaac-test/docker.sock'
  const root = await agentRoot(t)
  let agent: RunningAgent | undefined
  t.teardown(async () => await cleanupAgent(agent, false))
  agent = await startAgent({ data: join(root, 'data'), env: { DOCKER_HOST: `unix://${socket}`, CHAAC_LOG_LEVEL: 'info' } })
  const first = await waitFor(async () => {
    const s = await (agent as RunningAgent).json('/status')
    return s.docker !== null && s.context !== null && s
  }, { timeoutMs: 20_000, what: 'the first context sample' })
  t.equal(first.docker.available, false, '/status: no Docker engine')
  t.match(first.docker.reason, `no Docker engine at ${socket}`, '/status says where it looked')
  t.match(first.docker.reason, 'host context only', '/status says what it runs on')
  t.ok(first.context.ufCPU >= 0, 'the host context is sampled all the same')
  // Once: the line stays single over the next sample.
  await waitFor(async () => (await (agent as RunningAgent).json('/status')).context.sampledAt > first.context.sampledAt,
    { timeoutMs: 20_000, what: 'a second context sample' })
  const lines = agent.log().split('\n').filter((l) => l.includes(`"msg":"no Docker engine at ${socket}: host context only"`))
  t.equal(lines.length, 1, 'the log says so once')
  t.match(await shOk(`node ${join(import.meta.dirname, '..', '..', 'bin', 'chaac.mjs')} status --http ${agent.http}`),
    `docker: no Docker engine at ${socket}`, 'chaac status says so too')
  t.equal(await agent.stop(), 0, 'the agent stops cleanly')
})
