// Containers keep working through a kill -9 of the agent and a restart: the
// keeper holds the mount's FUSE connection, the next agent takes it over, so
// a container that binds the chaac path (with rslave, as the README says, or
// a plain bind) never sees "Transport endpoint is not connected". The host
// folder is a private mount before the agent starts: the agent makes the
// folder of its chaac path a shared mount itself, or Docker would refuse rslave.
import { mkdtemp, rm, writeFile, access } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, sh, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { appendingLoop, docker, ensureBusyboxImage, ensureDocker } from '../helpers/docker.ts'
import { waitFor } from '../helpers/wait.ts'

const PREFIX = `chaac-takeover-${process.pid}`


t.test('container - bind mounts of the chaac path (rslave and plain) read and write on through a kill -9 of the agent and a restart', { timeout: 240_000 }, async (t) => {
  await ensureDocker()
  const image = await ensureBusyboxImage()
  // A private mount of its own: Docker refuses rslave on it until the agent shares the folder.
  const base = await mkdtemp(join(tmpdir(), 'chaac-takeover-'))
  const ctl = join(base, 'ctl')
  const names = [`${PREFIX}-rslave`, `${PREFIX}-plain`]
  let agent: RunningAgent | undefined
  t.teardown(async () => {
    for (const n of names) await docker(['rm', '-f', n], { timeoutMs: 30_000 }).catch(() => {})
    await cleanupAgent(agent, false)
    await sh(`umount -l ${join(base, 'srv')}; umount -l ${base}`)
    await rm(base, { recursive: true, force: true })
  })
  await shOk(`mount --bind ${base} ${base} && mount --make-private ${base} && mkdir -p ${ctl}`)
  t.equal((await shOk(`findmnt -n -o PROPAGATION ${base}`)).trim(), 'private', 'the host folder is private before the agent starts')

  agent = await startAgent({ data: join(base, 'srv', 'data'), env: { CHAAC_LOG_LEVEL: 'info' } })
  const first = agent
  const srv = join(base, 'srv')
  t.equal((await shOk(`findmnt -n -o PROPAGATION ${srv}`)).trim(), 'shared', 'the agent made the folder of its chaac path a shared mount')
  t.match((await first.json('/status')).mount.folder, { path: srv, madeShared: true })
  t.match(first.log(), new RegExp(`docker run --rm -v ${srv}:/chaac:rslave`), 'the banner shows the bind that survives restarts')

  await shOk('seq 1 50000 > static', { cwd: first.mount })
  const sum = (await shOk('md5sum < static', { cwd: first.mount })).split(' ')[0]
  const binds = [['-v', `${first.mount}:/data:rslave`], ['-v', `${first.mount}:/data`]]
  for (const [i, name] of names.entries()) {
    const short = i === 0 ? 'rslave' : 'plain'
    const r = await docker(['run', '-d', '--name', name, '--network', 'none', ...binds[i], '-v', `${ctl}:/ctl`, image, 'sh', '-c', appendingLoop(short, sum)], { timeoutMs: 60_000 })
    t.equal(r.code, 0, `container ${short} started: ${r.stderr}`)
  }
  const lines = async (short: string): Promise<number> => {
    const r = await sh(`wc -l < ${join(first.mount, short + '.log')}`, { timeoutMs: 30_000 })
    return r.code === 0 ? Number(r.stdout.trim()) : 0
  }
  await waitFor(async () => (await lines('rslave')) >= 10 && (await lines('plain')) >= 10, { what: 'the containers to write', timeoutMs: 60_000 })

  // Writes pause (what they wrote is committed at each close); reads go on through the kill.
  await writeFile(join(ctl, 'pause'), '')
  await waitFor(async () => await Promise.all(['rslave', 'plain'].map(async (n) => await access(join(ctl, `paused.${n}`)).then(() => true, () => false))).then((all) => all.every(Boolean)),
    { what: 'the containers to pause their writes' })
  const before = { rslave: await lines('rslave'), plain: await lines('plain') }
  await first.kill9({ keepKeeper: true })
  // Without an agent, the containers' next requests wait in the kernel.
  await rm(join(ctl, 'pause'))
  agent = await startAgent({ data: first.data, env: { CHAAC_LOG_LEVEL: 'info' } })
  t.match(agent.log(), /took over the mount/)
  await waitFor(async () => (await lines('rslave')) >= before.rslave + 10 && (await lines('plain')) >= before.plain + 10,
    { what: 'the containers to write on after the restart', timeoutMs: 60_000 })

  await writeFile(join(ctl, 'stop'), '')
  for (const [i, name] of names.entries()) {
    const short = i === 0 ? 'rslave' : 'plain'
    const waited = await docker(['wait', name], { timeoutMs: 60_000 })
    const logs = await docker(['logs', name], { timeoutMs: 30_000 })
    const out = logs.stdout + logs.stderr
    t.equal(waited.stdout.trim(), '0', `container ${short} ran through: ${out}`)
    t.notMatch(out, /Transport endpoint is not connected/, `no ENOTCONN in container ${short}`)
    const n = Number(/done (\d+)/.exec(out)?.[1])
    const expected = Array.from({ length: n }, (_, k) => `${k}\n`).join('')
    t.equal(await shOk(`cat ${short}.log`, { cwd: agent.mount }), expected, `every line container ${short} wrote, in order (${n})`)
  }
})
