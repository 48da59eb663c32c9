// Containers on a real Docker engine use the chaac path through a bind mount:
// busybox tools write, copy, rename, append and read; the host checks every
// byte (sha256) through the mount and the agent's API; a container running as
// an unprivileged user owns what it creates; a container keeps seeing the
// filesystem across an agent restart.
//
// Docker accepts `rslave` only for a source on a shared (or slave) mount. The
// root of this machine may be private (it is in many CI sandboxes), so each
// agent here lives in a temporary folder bind-mounted onto itself and made
// shared: that is what a user does on such a host (see README, "Using it from
// containers"). All I/O on the mount runs in child processes or containers.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { cleanupAgent, py, sh, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { docker, dockerRun, ensureBusyboxImage, ensureDocker } from '../helpers/docker.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const PREFIX = `chaac-docker-${process.pid}`
let image = ''
let containers = 0
/** Every temporary folder this file made a mount of. */
const roots = new Set<string>()

t.before(async () => {
  await ensureDocker()
  image = await ensureBusyboxImage()
})

/** A name for a container of this file. */
function containerName (): string {
  return `${PREFIX}-${++containers}`
}

async function removeContainer (name: string): Promise<void> {
  await docker(['rm', '-f', name], { timeoutMs: 30_000 }).catch(() => {})
}

/** Mounts at or under `root` as listed in /proc/mounts, deepest first. */
async function mountsUnder (root: string): Promise<string[]> {
  const table = await shOk('cat /proc/mounts')
  return table.split('\n')
    .map((line) => line.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((m): m is string => m !== undefined && (m === root || m.startsWith(root + '/')))
    .sort((a, b) => b.length - a.length)
}

/**
 * An agent whose folder (data, bins, chaac path) is a shared mount of its own,
 * so that containers can bind-mount the chaac path, or the folder around it,
 * with `rslave`. Teardown stops the agent and leaves no mount and no folder.
 */
interface Shared {
  root: string
  agent: RunningAgent
  /** Stops the agent, then starts it again on the same data folder and chaac path. */
  restart: () => Promise<RunningAgent>
  /** Names a container of this test; teardown removes it by name. */
  name: () => string
}

async function sharedAgent (t: Test): Promise<Shared> {
  const root = await mkdtemp(join(tmpdir(), 'chaac-docker-'))
  roots.add(root)
  let agent: RunningAgent | undefined
  const names: string[] = []
  t.teardown(async () => {
    // Containers first (one still running after a timeout would hold the mount), then the agent.
    for (const n of names) await removeContainer(n)
    await cleanupAgent(agent, false)
    // The agent has exited (cleanupAgent waits for it), so nothing holds files
    // under the folder any more and a plain unmount succeeds.
    for (const m of await mountsUnder(root)) {
      if ((await sh(`umount ${m}`)).code !== 0) await shOk(`umount -l ${m}`)
    }
    await rm(root, { recursive: true, force: true })
  })
  await shOk(`mount --bind ${root} ${root} && mount --make-shared ${root}`)
  agent = await startAgent({ data: join(root, 'data') })
  const restart = async (): Promise<RunningAgent> => {
    const data = (agent as RunningAgent).data
    t.equal(await (agent as RunningAgent).stop(), 0, 'the agent stops cleanly')
    agent = await startAgent({ data })
    return agent
  }
  const name = (): string => {
    const n = containerName()
    names.push(n)
    return n
  }
  return { root, agent, restart, name }
}

/** Parses `sha256sum` output into path -> hash, paths relative (./a/b -> a/b). */
function sums (text: string): Map<string, string> {
  const map = new Map<string, string>()
  for (const line of text.split('\n')) {
    const m = /^([0-9a-f]{64})\s+\*?(?:\.\/)?(.+)$/.exec(line.trim())
    if (m) map.set(m[2], m[1])
  }
  return map
}

/** Parses `stat -c '%s %n'` output into path -> size. */
function sizes (text: string): Map<string, number> {
  const map = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^(\d+) (?:\.\/)?(.+)$/.exec(line.trim())
    if (m) map.set(m[2], Number(m[1]))
  }
  return map
}

/**
 * Drops the kernel's cached pages of these files (posix_fadvise DONTNEED), so
 * that the next read comes from the agent and not from the page cache that
 * the writer filled; mincore then must report no resident page.
 */
async function dropCache (files: string[]): Promise<void> {
  const resident = JSON.parse(await py(`
import ctypes, json, mmap, os
libc = ctypes.CDLL(None, use_errno=True)
left = {}
for p in ${JSON.stringify(files)}:
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    size = os.fstat(fd).st_size
    if size > 0:
        m = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
        buf = (ctypes.c_char * size).from_buffer(m)
        vec = (ctypes.c_ubyte * ((size + mmap.PAGESIZE - 1) // mmap.PAGESIZE))()
        if libc.mincore(ctypes.c_void_p(ctypes.addressof(buf)), ctypes.c_size_t(size), vec) != 0:
            raise OSError(ctypes.get_errno(), 'mincore ' + p)
        cached = sum(v & 1 for v in vec)
        if cached:
            left[p] = cached
        del buf
        m.close()
    os.close(fd)
print(json.dumps(left))
`))
  if (Object.keys(resident).length > 0) throw new Error(`pages still cached after dropping them: ${JSON.stringify(resident)}`)
}

/** Runs `sh -c script` in a fresh busybox container; fails with its output unless it exits 0. */
async function inContainer (name: string, args: string[], script: string, timeoutMs = 120_000): Promise<string> {
  const r = await dockerRun(['--name', name, ...args, image, 'sh', '-c', script], { timeoutMs })
  if (r.code !== 0) throw new Error(`container failed (${r.code}): ${script}\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

t.test('busybox container - writes, copies, renames, appends; every sha256 agrees on the host and in a fresh container', { timeout: 240_000 }, async (t) => {
  const { agent, name } = await sharedAgent(t)
  const bind = ['-v', `${agent.mount}:/data:rslave`]
  await shOk('mkdir t', { cwd: agent.mount })
  const written = await inContainer(name(), bind, `set -e
    cd /data/t
    mkdir -p in/deep out
    dd if=/dev/urandom of=in/empty bs=1 count=0 2>/dev/null
    dd if=/dev/urandom of=in/one bs=1 count=1 2>/dev/null
    dd if=/dev/urandom of=in/deep/odd bs=1000 count=77 2>/dev/null
    dd if=/dev/urandom of=in/page bs=4096 count=1 2>/dev/null
    dd if=/dev/urandom of=in/chunk bs=1048576 count=4 2>/dev/null
    dd if=/dev/urandom of=in/big bs=65537 count=160 2>/dev/null
    cp in/big out/big.copy
    cp in/deep/odd in/deep/odd.copy
    mv in/deep/odd.copy out/odd.moved
    mv in/one out/one.moved
    mkdir out/sub
    mv in/page out/sub/page
    echo first > out/log
    echo second >> out/log
    dd if=/dev/urandom bs=3333 count=7 2>/dev/null >> out/big.copy
    cat in/chunk >> out/sub/page
    echo ==sums
    find . -type f | sort | xargs sha256sum
    echo ==sizes
    find . -type f | sort | xargs stat -c '%s %n'
  `)
  const [, sumPart, sizePart] = written.split(/==sums\n|==sizes\n/)
  const inside = sums(sumPart)
  const insideSizes = sizes(sizePart)
  const files = ['in/big', 'in/chunk', 'in/deep/odd', 'in/empty', 'out/big.copy', 'out/log', 'out/odd.moved', 'out/one.moved', 'out/sub/page']
  t.same([...inside.keys()].sort(), files, 'the container sees exactly the files it made, renamed ones at their new names')
  t.same(Object.fromEntries(insideSizes), {
    'in/big': 65537 * 160,
    'in/chunk': 4 * MiB,
    'in/deep/odd': 77000,
    'in/empty': 0,
    'out/big.copy': 65537 * 160 + 3333 * 7,
    'out/log': 'first\nsecond\n'.length,
    'out/odd.moved': 77000,
    'out/one.moved': 1,
    'out/sub/page': 4096 + 4 * MiB
  }, 'sizes after writes and appends')
  t.equal(inside.get('out/odd.moved'), inside.get('in/deep/odd'), 'a copy moved across directories keeps its content')
  t.equal(inside.get('in/empty'), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'the empty file is empty')

  const host = agent.mount + '/t'
  t.same(sums(await shOk('find . -type f | xargs sha256sum', { cwd: host })), inside, 'sha256sum on the host agrees for every file')
  t.same(sizes(await shOk('find . -type f | xargs stat -c "%s %n"', { cwd: host })), insideSizes, 'sizes on the host agree')
  t.equal(await shOk('cat out/log', { cwd: host }), 'first\nsecond\n')
  const bigSize = 65537 * 160
  t.equal((await shOk(`head -c ${bigSize} out/big.copy | sha256sum`, { cwd: host })).split(' ')[0], inside.get('in/big'),
    'an append leaves the copied bytes before it unchanged')
  t.equal((await shOk('tail -c 4194304 out/sub/page | sha256sum', { cwd: host })).split(' ')[0], inside.get('in/chunk'),
    'a file appended to another ends with its bytes')

  // The agent's own view: the size it holds for each file, and a bin for every ball.
  for (const f of files) {
    const loc = await agent.json(`/api/v1/location?path=${encodeURIComponent('/t/' + f)}`)
    t.equal(loc.size, insideSizes.get(f), `the agent's size of ${f}`)
    t.ok(loc.balls.every((b: any) => b.hole || b.bins.length > 0), `every ball of ${f} is in a bin`)
  }

  // A fresh container reads everything back from the agent, not from cached pages.
  await dropCache(files.map((f) => join(host, f)))
  const again = await inContainer(name(), bind, 'cd /data/t && find . -type f | sort | xargs sha256sum')
  t.same(sums(again), inside, 'a fresh container reads back the same bytes')
})

t.test('256 MiB file - written in a container and read on the host, written on the host and read in a container, intact', { timeout: 480_000 }, async (t) => {
  const { root, agent, name } = await sharedAgent(t)
  const bind = ['-v', `${agent.mount}:/data:rslave`]
  const size = 256 * MiB

  let started = Date.now()
  const out = await inContainer(name(), bind, 'dd if=/dev/urandom of=/data/from-container bs=1M count=256 2>/dev/null && sha256sum /data/from-container', 300_000)
  const writeMs = Date.now() - started
  const inside = out.split(' ')[0]
  t.match(inside, /^[0-9a-f]{64}$/)
  const file = join(agent.mount, 'from-container')
  t.equal(Number(await shOk(`stat -c %s ${file}`)), size, 'the host sees all 256 MiB')
  await dropCache([file])
  started = Date.now()
  t.equal((await shOk(`sha256sum ${file}`, { timeoutMs: 300_000 })).split(' ')[0], inside, 'sha256 on the host == sha256 in the container')
  const readMs = Date.now() - started
  const loc = await agent.json('/api/v1/location?path=/from-container')
  t.equal(loc.size, size, 'the agent holds 256 MiB')
  t.equal(loc.balls.length, size / loc.chunkSize, 'in whole balls')

  // Written on the host: the source lies outside the mount, its sha256 taken there.
  const src = join(root, 'src-256')
  await shOk(`dd if=/dev/urandom of=${src} bs=1M count=256 status=none`)
  const expected = (await shOk(`sha256sum ${src}`)).split(' ')[0]
  const dest = join(agent.mount, 'from-host')
  started = Date.now()
  await shOk(`cp ${src} ${dest}`, { timeoutMs: 300_000 })
  const hostWriteMs = Date.now() - started
  await rm(src)
  await dropCache([dest])
  started = Date.now()
  const read = await inContainer(name(), bind, 'sha256sum /data/from-host && stat -c %s /data/from-host', 300_000)
  const containerReadMs = Date.now() - started
  t.same(read.trim().split('\n').map((l) => l.split(' ')[0]), [expected, String(size)], 'the container reads the host\'s 256 MiB intact')
  t.comment(`256 MiB: container dd write + sha ${writeMs} ms, host sha256 read ${readMs} ms, host cp write ${hostWriteMs} ms, container sha256 read ${containerReadMs} ms`)
})

t.test('--user 1000:1000 - creates, appends, reads its own files in its folder; refused in a root-owned one', { timeout: 120_000 }, async (t) => {
  const { agent, name } = await sharedAgent(t)
  const bind = ['-v', `${agent.mount}:/data:rslave`]
  await shOk('mkdir u1000 && chown 1000:1000 u1000 && mkdir locked && chmod 0755 locked', { cwd: agent.mount })
  t.equal(await shOk('stat -c "%u:%g %a" u1000 locked', { cwd: agent.mount }), '1000:1000 755\n0:0 755\n')

  const out = await inContainer(name(), ['--user', '1000:1000', ...bind], `set -e
    cd /data/u1000
    echo a > f; echo b >> f; echo c >> f
    cat f
    mkdir sub
    echo in-sub > sub/g
    echo ==ids
    id -u; id -g
    stat -c '%u:%g' f sub sub/g`)
  const [content, ids] = out.split('==ids\n')
  t.equal(content, 'a\nb\nc\n', 'the container reads back what it wrote and appended')
  t.equal(ids, '1000\n1000\n1000:1000\n1000:1000\n1000:1000\n', 'inside, the user and its files are 1000:1000')
  t.equal(await shOk('stat -c "%u" f; stat -c "%u:%g" sub sub/g; cat f sub/g', { cwd: join(agent.mount, 'u1000') }),
    '1000\n1000:1000\n1000:1000\na\nb\nc\nin-sub\n', 'the host sees files owned by uid 1000, with their content')

  const refused = await dockerRun(['--name', name(), '--user', '1000:1000', ...bind, image, 'sh', '-c',
    'echo x > /data/locked/f; echo "write=$?"; mkdir /data/locked/d; echo "mkdir=$?"; echo y >> /data/u1000/f; echo "own=$?"'])
  t.equal(refused.code, 0)
  t.equal(refused.stdout, 'write=1\nmkdir=1\nown=0\n', 'refused in the root-owned folder, still allowed in its own')
  t.match(refused.stderr, /Permission denied/, 'the error is "Permission denied" (EACCES)')
  t.equal(await shOk('ls -A locked; cat u1000/f', { cwd: agent.mount }), 'a\nb\nc\ny\n', 'nothing was made in the root-owned folder')
})

t.test('agent restart - a running container that bind-mounts the folder around the chaac path with rslave sees the new mount', { timeout: 180_000 }, async (t) => {
  const { root, agent, restart, name } = await sharedAgent(t)
  const viaParent = name() // binds the folder that holds the chaac path: survives restarts
  const viaPath = name() // binds the chaac path itself: keeps the old mount, which dies
  const rel = agent.mount.slice(root.length + 1)
  await shOk('echo before > before && dd if=/dev/urandom of=blob bs=65536 count=80 status=none', { cwd: agent.mount })
  const blobSum = (await shOk('sha256sum blob', { cwd: agent.mount })).split(' ')[0]
  for (const [name, bind] of [[viaParent, `${root}:/chaac:rslave`], [viaPath, `${agent.mount}:/data:rslave`]]) {
    const r = await docker(['run', '-d', '--name', name, '--network', 'none', '-v', bind, image, 'sleep', '600'], { timeoutMs: 60_000 })
    t.equal(r.code, 0, `container ${name} started: ${r.stderr}`)
  }
  const exec = async (name: string, script: string): Promise<{ code: number, stdout: string, stderr: string }> =>
    await docker(['exec', name, 'sh', '-c', script], { timeoutMs: 30_000 })
  t.equal((await exec(viaParent, `cat /chaac/${rel}/before`)).stdout, 'before\n')
  t.equal((await exec(viaPath, 'cat /data/before')).stdout, 'before\n')

  const again = await restart()
  t.equal(again.mount, agent.mount, 'the same chaac path')
  // The new mount reaches the container's namespace by propagation; poll, no sleeps.
  const seen = await waitFor(async () => {
    const r = await exec(viaParent, `cat /chaac/${rel}/before && sha256sum /chaac/${rel}/blob`)
    return r.code === 0 ? r.stdout : undefined
  }, { timeoutMs: 30_000, what: 'the container to see the remounted chaac path' })
  t.equal(seen, `before\n${blobSum}  /chaac/${rel}/blob\n`, 'docker exec reads the files written before the restart')
  t.equal((await exec(viaParent, `echo after > /chaac/${rel}/after && cat /chaac/${rel}/after`)).stdout, 'after\n')
  t.equal(await shOk('cat after', { cwd: again.mount }), 'after\n', 'and writes through the new mount')

  // Binding the chaac path itself pins the mount that existed when the
  // container started; its agent is gone, so it answers ENOTCONN (never hangs).
  const pinned = await exec(viaPath, 'cat /data/before')
  t.not(pinned.code, 0)
  t.match(pinned.stderr, /Transport endpoint is not connected/, 'a container that binds the chaac path itself needs a restart')
})

t.test('context - the agent reports the containers running on its host and the CPU they use (dockerode)', { timeout: 120_000 }, async (t) => {
  const { agent, name } = await sharedAgent(t)
  const busy = name()
  // A container that keeps one core busy until it is removed.
  const started = await docker(['run', '-d', '--network', 'none', '--name', busy, image, 'sh', '-c', 'while :; do :; done'], { timeoutMs: 60_000 })
  t.equal(started.code, 0, started.stderr)
  let seen: { running: number, cpuCores: number, memoryBytes: number } | undefined
  await waitFor(async () => {
    seen = (await agent.json('/status')).context?.containers
    return seen !== undefined && seen.running >= 1 && seen.cpuCores > 0.2
  }, { timeoutMs: 60_000, what: 'the busy container in the host context' })
  t.ok(seen !== undefined && seen.memoryBytes >= 0, `containers: ${JSON.stringify(seen)}`)
  await removeContainer(busy)
})

t.test('teardown - no container and no mount left behind', async (t) => {
  // After a timeout tap starts the next test while the timed-out one still
  // tears down, so this waits (bounded) for the teardowns to finish.
  const left = async (): Promise<string[]> => {
    const ps = await docker(['ps', '-a', '--filter', `name=${PREFIX}-`, '--format', '{{.Names}}'], { timeoutMs: 30_000 })
    const found = ps.stdout.split('\n').filter((n) => n !== '')
    for (const root of roots) {
      found.push(...await mountsUnder(root))
      if ((await sh(`test -e ${root}`)).code === 0) found.push(`folder ${root}`)
    }
    return found
  }
  let found: string[] = []
  await waitFor(async () => (found = await left()).length === 0, { timeoutMs: 60_000, intervalMs: 250 }).catch(() => {})
  t.same(found, [], 'no container, mount or folder of this file is left')
})
