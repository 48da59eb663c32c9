// The agent as a Docker volume driver, driven through the docker CLI of a real
// engine: volumes are folders of the chaac namespace (/volumes/NAME), given to
// containers by Docker's volume plugin protocol on the agent's socket.
//
// Docker remembers every volume driver it has talked to until it stops, and
// while a driver's socket is gone it waits 15 s for it on every `docker volume
// ls` and before it creates any volume. So this file runs an engine of its own
// (stopped at the end, forgetting the drivers), not the shared one, with a
// driver name of its own; listings filter by driver all the same.
import { request } from 'node:http'
import { access, lstat, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { PROJECT, cleanupAgent, sh, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { appendingLoop, docker, ensureBusyboxImage, startPrivateDocker, type PrivateDocker, type RunResult } from '../helpers/docker.ts'
import { startCluster } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

const TAG = `${process.pid}-${randomBytes(3).toString('hex')}`
const DRIVER = `chaac-test-${TAG}`
const SOCKET = `/run/docker/plugins/${DRIVER}.sock`
const ARGS = ['--volume-driver', DRIVER]
let image = ''
let agent: RunningAgent | undefined
const containers = new Set<string>()

let engine: PrivateDocker | undefined

t.before(async () => {
  engine = await startPrivateDocker()
  // For the docker CLI here, and for the agents' context monitors.
  process.env.DOCKER_HOST = engine.host
  image = await ensureBusyboxImage()
  agent = await startAgent({ args: ARGS })
})

t.teardown(async () => {
  for (const c of containers) await docker(['rm', '-f', c], { timeoutMs: 30_000 }).catch(() => {})
  // The engine first, while the driver answers.
  await engine?.stop()
  await cleanupAgent(agent)
})

function current (): RunningAgent {
  if (!agent) throw new Error('no agent')
  return agent
}

function volumeName (what: string): string {
  return `${what}-${TAG}`
}

function containerName (what: string): string {
  const name = `chaac-vol-${what}-${TAG}`
  containers.add(name)
  return name
}

async function ok (args: string[]): Promise<string> {
  const r = await docker(args, { timeoutMs: 60_000 })
  if (r.code !== 0) throw new Error(`docker ${args.join(' ')} failed (${r.code}): ${r.stderr}`)
  return r.stdout.trim()
}

async function listed (driver = DRIVER): Promise<string[]> {
  const out = await ok(['volume', 'ls', '--quiet', '--filter', `driver=${driver}`])
  return out === '' ? [] : out.split('\n').sort()
}

async function inspect (name: string): Promise<any> {
  return JSON.parse(await ok(['volume', 'inspect', name]))[0]
}

/** A request straight to a driver's socket, as Docker sends it. */
async function plugin (endpoint: string, body: object, socketPath = SOCKET): Promise<{ status: number, body: any }> {
  return await new Promise((resolve, reject) => {
    const req = request({ socketPath, path: endpoint, method: 'POST', timeout: 10_000 }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (s: string) => { text += s })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error(`${endpoint}: no answer`)))
    req.end(JSON.stringify(body))
  })
}

/** Waits for a detached container to exit (within the deadline) and returns its exit code and output. */
async function finished (name: string): Promise<RunResult> {
  const waited = await docker(['wait', name], { timeoutMs: 90_000, onTimeout: () => docker(['kill', name], { timeoutMs: 15_000 }) })
  const logs = await docker(['logs', name], { timeoutMs: 30_000 })
  return { code: Number(waited.stdout.trim()), stdout: logs.stdout, stderr: logs.stderr }
}

t.test('docker volumes - create, ls, inspect and rm through the docker CLI', async (t) => {
  const a = current()
  const name = volumeName('basic')
  const before = Date.now()
  // An agent alone keeps one copy of each ball (on etcd it is a cluster of one: its --replicas).
  const k = String((await a.json('/status')).cluster.replicas)
  t.equal(await ok(['volume', 'create', '-d', DRIVER, '--name', name, '-o', `replicas=${k}`]), name)
  t.same(await listed(), [name])
  const v = await inspect(name)
  t.equal(v.Driver, DRIVER)
  t.equal(v.Mountpoint, join(a.mount, 'volumes', name), 'a folder of the chaac path')
  t.equal(v.Scope, 'global', 'one namespace for the whole cluster')
  t.same(v.Options, { replicas: k })
  t.same(v.Status, { options: { replicas: k }, replicas: Number(k), mountsHere: 0, mountsElsewhere: 0 })
  const created = Date.parse(v.CreatedAt)
  t.ok(created >= Math.floor(before / 1000) * 1000 && created <= Date.now(), `CreatedAt ${String(v.CreatedAt)} is the time of the create`)

  // The folder is there on the mount, with what is put in it.
  await shOk(`test -d '${v.Mountpoint as string}' && mkdir '${v.Mountpoint as string}/sub' && echo kept > '${v.Mountpoint as string}/sub/file'`)
  t.equal(await ok(['volume', 'create', '-d', DRIVER, '--name', name]), name, 'creating it again keeps it')
  t.equal(await shOk(`cat '${v.Mountpoint as string}/sub/file'`), 'kept\n')

  const status = await a.json('/status')
  t.same(status.volumeDriver, { name: DRIVER, socket: SOCKET, listening: true })
  t.match(await shOk(`node bin/chaac.mjs status --http ${a.http}`, { cwd: PROJECT }),
    `docker volume driver: ${DRIVER} listening on ${SOCKET} (docker volume create -d ${DRIVER})`)

  t.equal(await ok(['volume', 'rm', name]), name)
  t.same(await listed(), [])
  t.same(await plugin('/VolumeDriver.Get', { Name: name }), { status: 500, body: { Err: `no volume named ${name}` } })
  const left = await sh(`ls -a '${join(a.mount, 'volumes')}'; ls -a '${join(a.mount, 'volumes', '.info')}'`)
  t.notMatch(left.stdout, name, 'its folder, its files and its info are gone')

  // Made again at once under the same name: a new, empty folder that a container gets.
  await ok(['volume', 'create', '-d', DRIVER, '--name', name])
  const again = await docker(['run', '--rm', '--network', 'none', '-v', `${name}:/data`, image, 'sh', '-c', 'ls -A /data; echo new > /data/f; cat /data/f'])
  t.same({ code: again.code, out: again.stdout }, { code: 0, out: 'new\n' }, again.stderr)
  await ok(['volume', 'rm', name])
})

t.test('docker volumes - a second agent with the same driver name runs without the driver, saying why', async (t) => {
  const second = await startAgent({ args: ARGS })
  t.teardown(async () => {
    await second.kill9()
    await cleanupAgent({ ...second, volumeSocket: undefined }) // the socket is the first agent's
  })
  const why = `another process serves the Docker plugin socket ${SOCKET}`
  t.same((await second.json('/status')).volumeDriver, { name: DRIVER, socket: SOCKET, listening: false, reason: why })
  t.match(second.log(), `no Docker volume driver ${DRIVER}: ${why}`)
  t.match(await shOk(`node bin/chaac.mjs status --http ${second.http}`, { cwd: PROJECT }), `docker volume driver: ${DRIVER} not listening: ${why}`)
  t.same((await plugin('/Plugin.Activate', {})).body, { Implements: ['VolumeDriver'] }, 'the first agent still answers')
})

t.test('docker volumes - two containers at once see each other\'s closed files', async (t) => {
  const name = volumeName('shared')
  await ok(['volume', 'create', '-d', DRIVER, '--name', name])
  const secret = randomBytes(8).toString('hex')
  const reader = containerName('reader')
  const writer = containerName('writer')
  // Each waits for the other's file, so both run at once; a file is renamed into place once closed.
  await ok(['run', '-d', '--network', 'none', '--name', reader, '-v', `${name}:/data`, image, 'sh', '-c',
    'until [ -f /data/done ]; do sleep 0.1; done; cat /data/msg > /data/reply.tmp && mv /data/reply.tmp /data/reply'])
  await ok(['run', '-d', '--network', 'none', '--name', writer, '-v', `${name}:/data`, image, 'sh', '-c',
    `until [ -f /data/go ]; do sleep 0.1; done; echo ${secret} > /data/msg && touch /data/done; until [ -f /data/reply ]; do sleep 0.1; done; cat /data/reply`])
  const mountpoint = join(current().mount, 'volumes', name)
  await waitFor(async () => (await inspect(name)).Status.mountsHere === 2, { timeoutMs: 30_000, what: 'both containers to mount the volume' })
  await shOk(`touch '${mountpoint}/go'`)
  const w = await finished(writer)
  t.same({ code: w.code, out: w.stdout.trim() }, { code: 0, out: secret }, 'the writer read the reader\'s reply to its message')
  t.equal((await finished(reader)).code, 0)
  t.equal(await shOk(`cat '${mountpoint}/msg' '${mountpoint}/reply'`), `${secret}\n${secret}\n`, 'the host sees both files on the mount')

  // Stopped, the containers still hold the volume for Docker.
  const inUse = await docker(['volume', 'rm', name])
  t.not(inUse.code, 0)
  t.match(inUse.stderr, /volume is in use/)
  await ok(['rm', reader, writer])
  t.equal((await inspect(name)).Status.mountsHere, 0, 'Docker unmounted both')
  await ok(['volume', 'rm', name])
})

t.test('docker volumes - Docker keeps a volume the driver refuses to remove', async (t) => {
  const name = volumeName('held')
  await ok(['volume', 'create', '-d', DRIVER, '--name', name])
  // A mount Docker does not count (as by another engine's container would be): only the driver refuses.
  t.same(await plugin('/VolumeDriver.Mount', { Name: name, ID: 'elsewhere' }), { status: 200, body: { Mountpoint: join(current().mount, 'volumes', name) } })
  const refused = await docker(['volume', 'rm', name])
  t.not(refused.code, 0)
  t.match(refused.stderr, `VolumeDriver.Remove: volume ${name} is in use by 1 container (1 on this host, 0 on other hosts)`)
  t.same(await listed(), [name], 'Docker still lists it')
  t.equal((await inspect(name)).Status.mountsHere, 1)
  await shOk(`test -d '${join(current().mount, 'volumes', name)}'`)
  t.same(await plugin('/VolumeDriver.Unmount', { Name: name, ID: 'elsewhere' }), { status: 200, body: {} })
  await ok(['volume', 'rm', name])
  t.same(await listed(), [])
})

t.test('docker volumes - bad names and options get clear errors', async (t) => {
  const k: number = (await current().json('/status')).cluster.replicas
  const cases: Array<[string[], RegExp]> = [
    [['--name', 'x'], /'x' is not a valid volume name: at least 2 characters of letters, digits/],
    [['--name', `-x${TAG}`], /not a valid volume name/],
    [['--name', volumeName('opt'), '-o', 'size=1G'], /unknown volume option 'size' \(the chaac driver takes: replicas\)/],
    [['--name', volumeName('opt'), '-o', `replicas=${k + 1}`], new RegExp(`replicas=${k + 1}: Chaac keeps every ball here in ${k} cop.*a volume cannot have its own`)],
    [['--name', volumeName('opt'), '-o', 'replicas=two'], /replicas must be a whole number of copies/]
  ]
  for (const [args, err] of cases) {
    const r = await docker(['volume', 'create', '-d', DRIVER, ...args])
    t.not(r.code, 0, args.join(' '))
    t.match(r.stderr, err, args.join(' '))
  }
  t.same(await listed(), [], 'nothing was created')
  const missing = await docker(['run', '--rm', '--network', 'none', '--volume-driver', DRIVER, '-v', `never-made-${TAG}:/data`, image, 'true'])
  // Docker creates a volume a container names, through the driver given.
  t.equal(missing.code, 0, missing.stderr)
  t.same(await listed(), [`never-made-${TAG}`])
  await ok(['volume', 'rm', `never-made-${TAG}`])
})

t.test('docker volumes - a cluster has one set of volumes: made through one agent, used and refused through another', async (t) => {
  // Two agents of a cluster, each the driver of its own name; requests to B's socket stand for another host's Docker.
  const [A, B] = [`${DRIVER}-a`, `${DRIVER}-b`]
  const socketB = `/run/docker/plugins/${B}.sock`
  const cluster = await startCluster(t, { size: 2, cloud: 'none', env: (i) => ({ CHAAC_VOLUME_DRIVER: i === 0 ? A : B }) })
  const [a, b] = cluster.agents
  const name = volumeName('cluster')
  const one = await docker(['volume', 'create', '-d', A, '--name', volumeName('cluster-one'), '-o', 'replicas=1'])
  t.match(one.stderr, /replicas=1: Chaac keeps every ball here in 2 copies/, 'a cluster keeps its --replicas')
  await ok(['volume', 'create', '-d', A, '--name', name, '-o', 'replicas=2'])
  const w = containerName('cluster-w')
  await ok(['run', '--network', 'none', '--name', w, '-v', `${name}:/data`, image, 'sh', '-c', 'echo from-a > /data/f'])
  await ok(['rm', w])

  t.same((await plugin('/VolumeDriver.List', {}, socketB)).body.Volumes.map((v: { Name: string }) => v.Name), [name], 'the other agent lists it')
  t.same(await plugin('/VolumeDriver.Mount', { Name: name, ID: 'on-b' }, socketB), { status: 200, body: { Mountpoint: join(b.mount, 'volumes', name) } })
  const r = containerName('cluster-r')
  const read = await docker(['run', '--network', 'none', '--name', r, '-v', `${join(b.mount, 'volumes', name)}:/data`, image, 'cat', '/data/f'])
  t.same({ code: read.code, out: read.stdout }, { code: 0, out: 'from-a\n' }, read.stderr)
  await ok(['rm', r])

  const refused = await docker(['volume', 'rm', name])
  t.match(refused.stderr, `volume ${name} is in use by 1 container (0 on this host, 1 on other hosts)`, 'a mount through the other agent holds it')
  t.same((await inspect(name)).Status, { options: { replicas: '2' }, replicas: 2, mountsHere: 0, mountsElsewhere: 1 })
  await plugin('/VolumeDriver.Unmount', { Name: name, ID: 'on-b' }, socketB)
  await ok(['volume', 'rm', name])
  t.same(await plugin('/VolumeDriver.Get', { Name: name }, socketB), { status: 500, body: { Err: `no volume named ${name}` } }, 'gone for the other agent too')
  t.same(await listed(A), [])
  t.ok(a.volumeSocket !== undefined && b.volumeSocket === socketB)
})

t.test('docker volumes - a container using a volume reads and writes on through a kill -9 of the agent and a restart', async (t) => {
  const name = volumeName('through')
  await ok(['volume', 'create', '-d', DRIVER, '--name', name])
  // A control folder off the mount: the test pauses the container's writes around the kill
  // (writes the dead agent had not committed are lost, and answer EIO), its reads go on.
  const ctl = await mkdtemp(join(tmpdir(), 'chaac-vol-ctl-'))
  t.teardown(async () => await rm(ctl, { recursive: true, force: true }))
  const c = containerName('through')
  await ok(['run', '-d', '--network', 'none', '--name', c, '-v', `${name}:/data`, '-v', `${ctl}:/ctl`, image, 'sh', '-c', appendingLoop('v')])
  const log = (): string => join(current().mount, 'volumes', name, 'v.log')
  const lines = async (): Promise<number> => {
    const r = await sh(`wc -l < '${log()}'`, { timeoutMs: 30_000 })
    return r.code === 0 ? Number(r.stdout.trim()) : 0
  }
  await waitFor(async () => await lines() >= 10, { what: 'the container to write', timeoutMs: 60_000 })
  await writeFile(join(ctl, 'pause'), '')
  await waitFor(async () => await access(join(ctl, 'paused.v')).then(() => true, () => false), { what: 'the container to pause its writes' })
  const before = await lines()
  const first = current()
  await first.kill9({ keepKeeper: true })
  await rm(join(ctl, 'pause'))
  agent = await startAgent({ data: first.data, args: ARGS, env: { CHAAC_LOG_LEVEL: 'info' } })
  t.match(current().log(), /took over the mount/)
  await waitFor(async () => await lines() >= before + 10, { what: 'the container to write on after the restart', timeoutMs: 60_000 })
  await writeFile(join(ctl, 'stop'), '')
  const waited = await docker(['wait', c], { timeoutMs: 60_000 })
  const logs = await docker(['logs', c], { timeoutMs: 30_000 })
  const out = logs.stdout + logs.stderr
  t.equal(waited.stdout.trim(), '0', `the container ran through: ${out}`)
  t.notMatch(out, /Transport endpoint is not connected/)
  const n = Number(/done (\d+)/.exec(out)?.[1])
  t.equal(await shOk(`cat '${log()}'`), Array.from({ length: n }, (_, k) => `${k}\n`).join(''), `every line, in order (${n})`)
  await ok(['rm', c])
  await ok(['volume', 'rm', name])
})

t.test('docker volumes - volumes outlive agent restarts; the socket goes at a clean stop and a stale one is replaced', async (t) => {
  const name = volumeName('restart')
  await ok(['volume', 'create', '-d', DRIVER, '--name', name])
  const w = containerName('restart-w')
  await ok(['run', '--network', 'none', '--name', w, '-v', `${name}:/data`, image, 'sh', '-c', 'echo before > /data/f'])
  await ok(['rm', w])
  const created = (await inspect(name)).CreatedAt
  // A mount Docker asked for before the restart is still counted after it.
  await plugin('/VolumeDriver.Mount', { Name: name, ID: 'across-restart' })

  const first = current()
  t.equal(await first.stop(), 0)
  await t.rejects(lstat(SOCKET), { code: 'ENOENT' }, 'a clean stop removes the socket')
  agent = await startAgent({ data: first.data, args: ARGS })
  t.same(await listed(), [name], 'listed again after a restart')
  t.equal((await inspect(name)).CreatedAt, created, 'with its creation time')
  t.equal((await inspect(name)).Status.mountsHere, 1, 'and its mounts')
  await plugin('/VolumeDriver.Unmount', { Name: name, ID: 'across-restart' })

  await current().kill9()
  t.ok((await lstat(SOCKET)).isSocket(), 'kill -9 leaves the socket behind')
  agent = await startAgent({ data: first.data, args: ARGS })
  t.equal((await current().json('/status')).volumeDriver.listening, true, 'the stale socket was replaced')
  const r = containerName('restart-r')
  const read = await docker(['run', '--network', 'none', '--name', r, '-v', `${name}:/data`, image, 'sh', '-c', 'cat /data/f; echo after >> /data/f'], { timeoutMs: 60_000 })
  t.same({ code: read.code, out: read.stdout }, { code: 0, out: 'before\n' }, read.stderr)
  await ok(['rm', r])
  t.equal(await shOk(`cat '${join(current().mount, 'volumes', name, 'f')}'`), 'before\nafter\n')
  await ok(['volume', 'rm', name])
})
