// The launcher on the real Docker engine: `chaac bin create` and POST
// /api/v1/bins start a labelled data container (a volume for disk, a tmpfs
// for mem) that becomes a working bin; `chaac bin remove` moves its balls to
// other bins first (every file still reads), then the container and volume
// are gone; bad input gets a clear error; without an engine, a clear error;
// --auto-bins launches a bin when the disk bins fill up; in a cluster,
// --host makes the bin on another agent's host.
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { cleanupAgent, PROJECT, sh, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { docker, ensureDocker } from '../helpers/docker.ts'
import { waitFor } from '../helpers/wait.ts'

const TOKEN = `launcher-${randomBytes(6).toString('hex')}`
const CLI = `CHAAC_ADMIN_TOKEN=${TOKEN} node ${join(PROJECT, 'bin', 'chaac.mjs')}`

t.before(async () => {
  await ensureDocker()
})

interface BinView { id: string, agent: string, kind: string, level: string, balls: number, used: number, capacity: number, container: { id: string, name: string, path: string, launched: boolean } | null }

async function binsOf (agent: RunningAgent): Promise<BinView[]> {
  return (await agent.json('/api/v1/bins')).bins as BinView[]
}

/** Removes whatever the launcher left for an agent: its labelled containers and volumes. */
async function removeLaunched (agentId: string): Promise<void> {
  const filter = `label=chaac.agent=${agentId}`
  const ids = (await docker(['ps', '-aq', '--filter', filter], { timeoutMs: 30_000 })).stdout.split('\n').filter(Boolean)
  if (ids.length > 0) await docker(['rm', '-f', ...ids], { timeoutMs: 60_000 })
  const volumes = (await docker(['volume', 'ls', '-q', '--filter', filter], { timeoutMs: 30_000 })).stdout.split('\n').filter(Boolean)
  if (volumes.length > 0) await docker(['volume', 'rm', '-f', ...volumes], { timeoutMs: 60_000 })
}

async function agentFor (t: Test, args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ agent: RunningAgent, id: string, root: string }> {
  const root = await mkdtemp(join(tmpdir(), 'chaac-launcher-'))
  const agent = await startAgent({ args, env: { CHAAC_ADMIN_TOKEN: TOKEN, ...env } })
  const id = (await agent.json('/status')).agent.id as string
  t.teardown(async () => {
    await cleanupAgent(agent)
    await removeLaunched(id)
    await rm(root, { recursive: true, force: true })
  })
  return { agent, id, root }
}

async function call (agent: RunningAgent, method: string, path: string, body?: unknown, token = TOKEN): Promise<{ status: number, body: any }> {
  const res = await fetch(agent.url + path, {
    method,
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(300_000)
  })
  return { status: res.status, body: await res.json() }
}

async function inspect (name: string, format: string): Promise<string> {
  const r = await docker(['container', 'inspect', '-f', format, name], { timeoutMs: 30_000 })
  return r.code === 0 ? r.stdout.trim() : `gone: ${r.stderr.trim()}`
}

t.test('launcher - bin create makes a working bin, bin remove moves its balls away first, bad input gets a clear error', { timeout: 300_000 }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'chaac-launcher-bins-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  // A small directory bin: most balls go to the roomier container bin, and all fit back into it.
  const { agent, id } = await agentFor(t, ['--bin', `disk:${join(root, 'd0')}:8MiB`, '--bin', `mem:${join(root, 'shm')}:16MiB`, '--cloud', 'none'])
  const created = await shOk(`${CLI} bin create --level disk --capacity 64MiB --http ${agent.http} --json`, { timeoutMs: 300_000 })
  const bin = JSON.parse(created) as BinView
  t.equal(bin.agent, id)
  t.equal(bin.capacity, 64 * 1024 * 1024)
  const name = bin.container?.name as string
  t.match(name, /^chaac-bin-/, 'the container is named chaac-bin-...')
  t.equal(await inspect(name, '{{index .Config.Labels "chaac.bin"}} {{index .Config.Labels "chaac.agent"}} {{.HostConfig.NetworkMode}}'), `disk ${id} none`, 'labelled, of this agent, no network')
  t.equal(await inspect(name, '{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}}{{end}}'), `volume ${name} /balls`, 'a named volume holds the balls')
  const listed = (await binsOf(agent)).find((b) => b.id === bin.id)
  t.equal(listed?.kind, 'container', 'GET /api/v1/bins lists it as a container bin')
  t.equal(listed?.container?.launched, true, 'made by the launcher')

  await shOk(`for i in 1 2 3 4 5 6 7 8; do head -c 300000 /dev/urandom > ${agent.mount}/f$i; done; cd ${agent.mount} && sha256sum f* > ${root}/sums`)
  const held = await waitFor(async () => (await binsOf(agent)).find((b) => b.id === bin.id && b.balls > 0), { what: 'balls in the container bin' })
  t.ok(held.balls >= 4, `the new bin took balls (${held.balls})`)

  const mem = await call(agent, 'POST', '/api/v1/bins', { level: 'mem', capacity: '8MiB' })
  t.equal(mem.status, 200, JSON.stringify(mem.body))
  t.equal(mem.body.level, 'mem')
  t.match(await inspect(mem.body.container.name, '{{json .HostConfig.Tmpfs}}'), /"\/balls":"size=8388608/, 'a mem bin is a tmpfs of its capacity')

  // Bad input.
  const bad = async (method: string, path: string, body: unknown, status: number, message: RegExp, token?: string): Promise<void> => {
    const r = await call(agent, method, path, body, token)
    t.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)}: ${r.status}`)
    t.match(r.body.error, message)
  }
  await bad('POST', '/api/v1/bins', { level: 'fast' }, 400, /unknown level "fast": one of mem, disk/)
  await bad('POST', '/api/v1/bins', { capacity: 'lots' }, 400, /capacity: not a size: 'lots'/)
  await bad('POST', '/api/v1/bins', { capacity: '1KiB' }, 400, /capacity must be at least 1.0 MiB/)
  await bad('POST', '/api/v1/bins', [], 400, /body must be JSON like/)
  await bad('POST', '/api/v1/bins', { host: 'nobody' }, 400, /no agent nobody in this cluster/)
  await bad('POST', '/api/v1/bins', {}, 401, /admin token/, 'wrong')
  await bad('DELETE', '/api/v1/bins/no-such-bin', undefined, 404, /no data container bin no-such-bin on agent/)
  const dirBin = (await binsOf(agent)).find((b) => b.kind === 'directory' && b.level === 'disk') as BinView
  await bad('DELETE', `/api/v1/bins/${dirBin.id}`, undefined, 400, /is a directory \(--bin\), not a data container/)
  const cliBad = await sh(`${CLI} bin create --level fast --http ${agent.http}`)
  t.not(cliBad.code, 0, 'chaac bin create refuses an unknown level')
  t.match(cliBad.stderr, /unknown level "fast"/)
  const cliBadSize = await sh(`${CLI} bin create --capacity 12parsecs --http ${agent.http}`)
  t.match(cliBadSize.stderr, /capacity: not a size: '12parsecs'/)

  const removed = await shOk(`${CLI} bin remove ${bin.id} --http ${agent.http}`, { timeoutMs: 300_000 })
  t.match(removed, new RegExp(`removed bin ${bin.id} \\(container ${name}\\)`), removed)
  t.match(await inspect(name, '{{.Id}}'), /^gone:/, 'the container is gone')
  t.equal((await docker(['volume', 'ls', '-q', '--filter', `name=^${name}$`], { timeoutMs: 30_000 })).stdout.trim(), '', 'and its volume')
  t.notOk((await binsOf(agent)).some((b) => b.id === bin.id), 'the bin is no longer listed')
  t.equal(await shOk(`cd ${agent.mount} && sha256sum f*`), await shOk(`cat ${root}/sums`), 'every file still reads whole')
  const gone = await call(agent, 'DELETE', `/api/v1/bins/${mem.body.id as string}`)
  t.equal(gone.status, 200, 'the mem bin goes too')
  t.match(await inspect(mem.body.container.name, '{{.Id}}'), /^gone:/)
})

t.test('launcher - without a Docker engine, bin create answers a clear error and the agent works on', { timeout: 120_000 }, async (t) => {
  const { agent, root } = await agentFor(t, ['--cloud', 'none'], { DOCKER_HOST: 'unix:///nonexistent/docker.sock' })
  const r = await sh(`${CLI} bin create --http ${agent.http}`)
  t.not(r.code, 0)
  t.match(r.stderr, /no Docker engine answers at \/nonexistent\/docker.sock/)
  await shOk(`echo hello > ${agent.mount}/hello && cat ${agent.mount}/hello > ${root}/out`)
  t.equal(await shOk(`cat ${root}/out`), 'hello\n', 'the mount works')
})

t.test('launcher - --auto-bins launches a disk bin once the disk bins pass the fill ratio', { timeout: 240_000 }, async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'chaac-launcher-auto-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  const { agent } = await agentFor(t, ['--bin', `disk:${join(root, 'd0')}:4MiB`, '--bin', `mem:${join(root, 'shm')}:16MiB`, '--cloud', 'none',
    '--auto-bins', '0.5', '--auto-bins-capacity', '32MiB'], { CHAAC_LOG_LEVEL: 'info' })
  t.notOk((await binsOf(agent)).some((b) => b.kind === 'container'), 'no container bin at first')
  await shOk(`head -c 3000000 /dev/urandom > ${agent.mount}/big`)
  const launched = await waitFor(async () => (await binsOf(agent)).find((b) => b.kind === 'container'), { timeoutMs: 60_000, what: 'a bin launched by --auto-bins' })
    .catch((err: Error) => { throw new Error(`${err.message}\n${agent.log()}`) })
  t.equal(launched.level, 'disk')
  t.equal(launched.capacity, 32 * 1024 * 1024)
  // The bin is listed as soon as it is found; the launcher's own line may still be on its way through the log pipe.
  const said = /the disk bins are \d+% full \(over --auto-bins 0.5\): launched a disk bin of 32.0 MiB/
  await waitFor(() => said.test(agent.log()), { timeoutMs: 10_000, intervalMs: 20, what: 'the launcher\'s log line' }).catch(() => {})
  t.match(agent.log(), said, 'the log says so')
})
