// The agent in a container of its own, as deploy/Dockerfile and
// deploy/compose.yaml run it: SYS_ADMIN and /dev/fuse, the folder of the
// chaac path bind-mounted with `rshared` so that its mount reaches the host,
// the Docker socket for the context. A second container bind-mounts that
// folder with `rslave` and uses the filesystem; the host sees the same files.
//
// No registry is reachable here, so the test makes the image with `docker
// import` from a root filesystem it assembles from this host: busybox (as
// test/helpers/docker.ts builds its image), this host's node and the shared
// libraries it and the native addons load (as ldd lists them), libfuse's
// fusermount, and the project with its production dependencies and built
// addon. deploy/Dockerfile builds the same from Debian packages and `npm ci`.
// (An import writes the files once; a Dockerfile's COPY of them took four
// times as long here.)
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import t from 'tap'
import { PROJECT, sh, shOk } from '../helpers/agent.ts'
import { buildBusyboxRoot, docker, dockerRun, ensureBusyboxImage, run } from '../helpers/docker.ts'
import { waitFor } from '../helpers/wait.ts'

// Containers carry it; the image is removed by its id.
const LABEL = `chaac.test=agent-image-${process.pid}`
const ADDON = join(PROJECT, 'native', 'chaac-fuse', 'build', 'Release', 'chaac_fuse.node')
// Inside the image, as deploy/Dockerfile lays it out.
const FOLDER = '/var/lib/chaac/mount'
// deploy/Dockerfile's, on the folder the agent's container binds.
const ENTRYPOINT = ['node', '/opt/chaac/bin/chaac.mjs', 'agent', '--data', '/var/lib/chaac/data', '--mount', `${FOLDER}/fs`, '--http', '127.0.0.1:7070']

/** The shared libraries `ldd` says these binaries load, the dynamic loader included. */
async function librariesOf (binaries: string[]): Promise<string[]> {
  const libs = new Set<string>()
  for (const bin of binaries) {
    const out = await run('ldd', [bin])
    if (out.code !== 0) continue // a static binary (esbuild's) loads none
    for (const m of out.stdout.matchAll(/(?:=> )?(\/\S+) \(0x/g)) libs.add(m[1])
  }
  return [...libs]
}

/** The top-level packages npm installed for production (`dev` marks the others). */
async function productionPackages (): Promise<string[]> {
  const lock = JSON.parse(await readFile(join(PROJECT, 'node_modules', '.package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  return Object.entries(lock.packages)
    .filter(([path, p]) => p.dev !== true && /^node_modules\/(@[^/]+\/)?[^/]+$/.test(path))
    .map(([path]) => path)
}

/**
 * The image's root filesystem as a tar file: busybox, then symbolic links to
 * this host's files that tar follows (-h) as it appends them.
 */
async function rootfsTar (dir: string): Promise<string> {
  const base = join(dir, 'base')
  const stage = join(dir, 'stage')
  await buildBusyboxRoot(base)
  const link = async (source: string, target: string): Promise<void> => {
    await mkdir(dirname(join(stage, target)), { recursive: true })
    await symlink(source, join(stage, target))
  }
  const packages = await productionPackages()
  const addons = (await shOk(`find ${packages.map((p) => join(PROJECT, p)).join(' ')} -name '*.node' -path '*linux-x64*' -o -name '*.node' -path '*/build/Release/*'`)).split('\n').filter(Boolean)
  for (const lib of await librariesOf([process.execPath, ADDON, '/usr/bin/fusermount3', ...addons])) await link(lib, lib)
  await link(process.execPath, '/usr/local/bin/node')
  await link('/usr/bin/fusermount3', '/usr/local/bin/fusermount3')
  await symlink('fusermount3', join(stage, 'usr', 'local', 'bin', 'fusermount'))
  for (const p of ['package.json', 'tsconfig.json', 'bin', 'src', ...packages]) await link(join(PROJECT, p), `/opt/chaac/${p}`)
  await link(ADDON, '/opt/chaac/native/chaac-fuse/build/Release/chaac_fuse.node')
  // Docker refuses a path twice in one layer: only what busybox's tree lacks is appended.
  const added = [...(await readdir(stage)).filter((d) => d !== 'usr'), ...(await readdir(join(stage, 'usr'))).map((d) => `usr/${d}`)]
  const tar = join(dir, 'rootfs.tar')
  const owner = '--numeric-owner --owner=0 --group=0'
  await shOk(`tar -C ${base} ${owner} -cf ${tar} . && tar -C ${stage} ${owner} -rhf ${tar} ${added.join(' ')}`, { timeoutMs: 60_000 })
  return tar
}

/** The mount points of this host (the test's mount namespace) at or under `dir`. */
async function mountsAt (dir: string): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  return info.split('\n').map((line) => line.split(' ')[4]).filter((m) => m !== undefined && (m === dir || m.startsWith(dir + '/')))
}

t.test('agent image - runs the agent in a container whose mount a second container and the host use', async (t) => {
  const busybox = await ensureBusyboxImage()
  const work = await mkdtemp(join(tmpdir(), 'chaac-agent-image-'))
  const folder = join(work, 'mount')
  let image = ''
  let agent = ''
  t.teardown(async () => {
    if (agent !== '') await docker(['rm', '-f', agent], { timeoutMs: 60_000 }).catch(() => {})
    if (image !== '') await docker(['rmi', '-f', image], { timeoutMs: 60_000 }).catch(() => {})
    // Deepest first: the chaac path (left only by a failure), then the shared bind mount.
    for (const m of (await mountsAt(folder)).reverse()) {
      if ((await sh(`umount ${m}`)).code !== 0) await sh(`umount -l ${m}`)
    }
    await rm(work, { recursive: true, force: true })
  })

  // Docker accepts rshared only for a source on a shared mount; this machine's root may be private.
  await mkdir(folder)
  await shOk(`mount --bind ${folder} ${folder} && mount --make-rshared ${folder}`)

  const tar = await rootfsTar(join(work, 'image'))
  const imported = await docker(['import', '--change', 'ENV PATH=/usr/local/bin:/bin', '--change', `ENTRYPOINT ${JSON.stringify(ENTRYPOINT)}`, tar], { timeoutMs: 90_000 })
  await rm(join(work, 'image'), { recursive: true, force: true })
  t.equal(imported.code, 0, 'the image is made without a registry', { stderr: imported.stderr })
  image = imported.stdout.trim()
  if (image === '') return

  const started = await docker(['run', '-d', '--label', LABEL, '--network', 'none',
    '--cap-add', 'SYS_ADMIN', '--device', '/dev/fuse', '--security-opt', 'apparmor=unconfined', '--shm-size', '256m',
    '-v', `${folder}:${FOLDER}:rshared`, '-v', '/var/run/docker.sock:/var/run/docker.sock', image], { timeoutMs: 60_000 })
  t.equal(started.code, 0, 'the agent\'s container starts', { stderr: started.stderr })
  agent = started.stdout.trim()
  const logs = async (): Promise<string> => { const r = await docker(['logs', agent]); return r.stdout + r.stderr }

  const chaacPath = join(folder, 'fs')
  await waitFor(async () => {
    const state = (await docker(['inspect', '-f', '{{.State.Running}}', agent])).stdout.trim()
    if (state !== 'true') throw new Error(`the agent's container stopped:\n${await logs()}`)
    return (await mountsAt(chaacPath)).length > 0
  }, { timeoutMs: 60_000, intervalMs: 250, what: 'the chaac path to reach the host' })
  t.pass('the agent\'s mount reaches the host through the rshared bind mount')

  const text = `from a container ${randomBytes(8).toString('hex')}`
  const used = await dockerRun(['--label', LABEL, '-v', `${folder}:/chaac:rslave`, busybox,
    'sh', '-c', `echo '${text}' > /chaac/fs/greeting && sync && cat /chaac/fs/greeting`], { timeoutMs: 60_000 })
  t.equal(used.code, 0, 'a second container writes on the chaac path', { stderr: used.stderr })
  t.equal(used.stdout.trim(), text, 'and reads it back')
  t.equal((await shOk(`cat ${join(chaacPath, 'greeting')}`)).trim(), text, 'the host reads the same file')

  t.ok(await waitFor(async () => /Docker engine \S+ at \/var\/run\/docker.sock: host and containers' context/.test(await logs()),
    { timeoutMs: 20_000, what: 'the agent to find the Docker engine' }), 'the agent found the Docker engine through the socket')

  const stopped = await docker(['stop', '-t', '30', agent], { timeoutMs: 60_000 })
  t.equal(stopped.code, 0, 'docker stop (SIGTERM)')
  t.equal((await docker(['inspect', '-f', '{{.State.ExitCode}}', agent])).stdout.trim(), '0', 'the agent exits 0', { logs: await logs() })
  t.same(await mountsAt(chaacPath), [], 'its unmount reaches the host too')
})
