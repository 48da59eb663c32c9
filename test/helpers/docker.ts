// Docker for the container tests: start the engine when none answers, build a
// tiny busybox image offline (no registry is reachable in CI), run containers
// with a deadline. Only async child_process calls: test files run in parallel
// and a blocked event loop would stall tap's timeouts too.
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmod, copyFile, mkdir, mkdtemp, open, readFile, rm, symlink, unlink, writeFile } from 'node:fs/promises'
import { constants as osConstants, tmpdir } from 'node:os'
import { join } from 'node:path'
import { waitFor } from './wait.ts'

export const BUSYBOX_IMAGE = 'chaac-busybox:latest'
const BUSYBOX = '/bin/busybox' // Debian's busybox-static, installed by scripts/ensure-deps.mjs --test
// Same flags as .ci/run: containers in tests use --network none, so the daemon
// needs no bridge and must not touch the host's firewall.
const DOCKERD_ARGS = ['--bridge=none', '--iptables=false']
const DOCKERD_LOG = process.env.CHAAC_DOCKERD_LOG ?? join(tmpdir(), 'chaac-dockerd.log')
// dockerd lives in sbin, which the PATH of a non-login shell may lack.
const PATH = [process.env.PATH, '/usr/local/sbin', '/usr/sbin', '/sbin'].filter(Boolean).join(':')

export interface RunResult { code: number, stdout: string, stderr: string }

export interface RunOptions {
  /** default 60 s; on expiry the promise rejects */
  timeoutMs?: number
  /** how to stop the work on timeout (default: SIGKILL the process); the process is SIGKILLed anyway after 10 s more */
  onTimeout?: () => Promise<unknown>
}

/** Runs `cmd` without a shell, collecting its output. Resolves with any exit code; rejects on timeout. */
export function run (cmd: string, args: string[], { timeoutMs = 60_000, onTimeout }: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PATH } })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    let timedOut = false
    let grace: NodeJS.Timeout | undefined
    const timer = setTimeout(() => {
      timedOut = true
      grace = setTimeout(() => child.kill('SIGKILL'), 10_000)
      if (onTimeout) onTimeout().catch(() => child.kill('SIGKILL'))
      else child.kill('SIGKILL')
    }, timeoutMs)
    const done = (): void => { clearTimeout(timer); clearTimeout(grace) }
    child.on('error', (err) => { done(); reject(err) })
    child.on('close', (code, signal) => {
      done()
      if (timedOut) {
        reject(new Error(`'${cmd} ${args.join(' ')}' timed out after ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`))
      } else {
        resolve({ code: code ?? 128 + (signal ? osConstants.signals[signal] : 0), stdout, stderr })
      }
    })
  })
}

/** Runs the docker CLI. */
export function docker (args: string[], opts?: RunOptions): Promise<RunResult> {
  return run('docker', args, opts)
}

async function dockerAnswers (): Promise<boolean> {
  try {
    return (await docker(['info', '--format', '{{.ServerVersion}}'], { timeoutMs: 10_000 })).code === 0
  } catch {
    return false // no CLI, or a daemon too wedged to answer: both mean "not available"
  }
}

function isAlive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/**
 * Runs `fn` holding a lock file shared by every process on this host, so that
 * two test files never start two daemons or import the image twice.
 */
async function withHostLock<T> (name: string, fn: () => Promise<T>, timeoutMs = 180_000): Promise<T> {
  const path = join(tmpdir(), `chaac-${name}.lock`)
  await waitFor(async () => {
    try {
      await writeFile(path, String(process.pid), { flag: 'wx' })
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      // A test process killed while holding the lock leaves the file behind.
      // (Two processes taking over the same stale lock at once could both get
      // it; that needs a kill and a race together, and costs a duplicate start.)
      const holder = Number(await readFile(path, 'utf8').catch(() => ''))
      if (holder > 0 && !isAlive(holder)) await unlink(path).catch(() => {})
      return false
    }
  }, { timeoutMs, intervalMs: 200, what: `the lock ${path}` })
  try {
    return await fn()
  } finally {
    await unlink(path).catch(() => {})
  }
}

async function logTail (path: string, bytes = 3000): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '')
  return text.slice(-bytes)
}

/** Starts dockerd detached, so it outlives this test process and serves the other test files too. */
async function spawnDockerd (): Promise<() => string | undefined> {
  const log = await open(DOCKERD_LOG, 'a')
  let exit: string | undefined
  try {
    const child = spawn('dockerd', DOCKERD_ARGS, {
      detached: true,
      stdio: ['ignore', log.fd, log.fd],
      env: { ...process.env, PATH }
    })
    child.on('error', (err) => { exit = err.message })
    child.on('exit', (code, signal) => { exit = `dockerd exited (${signal ?? code})` })
    child.unref()
  } finally {
    await log.close()
  }
  return () => exit
}

async function startDockerIfNeeded (): Promise<void> {
  if (await dockerAnswers()) return
  await withHostLock('dockerd', async () => {
    if (await dockerAnswers()) return // another test process started it meanwhile
    // A daemon that is alive but still starting (or started by .ci/run) only needs waiting for.
    const pid = Number(await readFile('/var/run/docker.pid', 'utf8').catch(() => ''))
    const exited = pid > 0 && isAlive(pid) ? () => undefined : await spawnDockerd()
    try {
      await waitFor(async () => {
        const why = exited()
        if (why) throw new Error(why)
        return await dockerAnswers()
      }, { timeoutMs: 90_000, intervalMs: 250, what: 'the Docker engine to answer' })
    } catch (err) {
      throw new Error(`cannot start the Docker engine: ${(err as Error).message}\n` +
        `last lines of ${DOCKERD_LOG}:\n${await logTail(DOCKERD_LOG)}`)
    }
  })
}

let starting: Promise<void> | undefined

/** Makes sure a Docker engine answers, starting dockerd if none does. */
export function ensureDocker (): Promise<void> {
  // Concurrent callers in one process share one attempt; a later call checks
  // again, so a daemon that died in between is started anew.
  starting ??= startDockerIfNeeded().finally(() => { starting = undefined })
  return starting
}

async function imageExists (image: string): Promise<boolean> {
  return (await docker(['image', 'inspect', image], { timeoutMs: 30_000 })).code === 0
}

/** Writes a root filesystem holding busybox, a symlink per applet, and the usual directories. */
export async function buildBusyboxRoot (root: string): Promise<void> {
  const list = await run(BUSYBOX, ['--list'])
  if (list.code !== 0) throw new Error(`${BUSYBOX} --list failed (is busybox-static installed?): ${list.stderr}`)
  await mkdir(join(root, 'bin'), { recursive: true })
  await copyFile(BUSYBOX, join(root, 'bin', 'busybox'))
  await chmod(join(root, 'bin', 'busybox'), 0o755)
  for (const applet of list.stdout.split('\n').map((s) => s.trim())) {
    if (applet && applet !== 'busybox' && !applet.includes('/')) await symlink('busybox', join(root, 'bin', applet))
  }
  // Merged /usr, so that scripts naming /usr/bin/env or /sbin/... find their applet.
  await mkdir(join(root, 'usr'))
  await symlink('bin', join(root, 'sbin'))
  await symlink('../bin', join(root, 'usr', 'bin'))
  await symlink('../bin', join(root, 'usr', 'sbin'))
  for (const dir of ['etc', 'root', 'tmp', 'data']) await mkdir(join(root, dir))
  await chmod(join(root, 'tmp'), 0o1777)
  await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n')
  await writeFile(join(root, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n')
}

/** Returns the name of a busybox image, importing it from the host's busybox-static if missing. */
export async function ensureBusyboxImage (): Promise<string> {
  await ensureDocker()
  if (await imageExists(BUSYBOX_IMAGE)) return BUSYBOX_IMAGE
  await withHostLock('busybox-image', async () => {
    if (await imageExists(BUSYBOX_IMAGE)) return // imported by another test process meanwhile
    const dir = await mkdtemp(join(tmpdir(), 'chaac-busybox-'))
    try {
      const root = join(dir, 'root')
      const tar = join(dir, 'rootfs.tar')
      await buildBusyboxRoot(root)
      const packed = await run('tar', ['-C', root, '--numeric-owner', '--owner=0', '--group=0', '-cf', tar, '.'])
      if (packed.code !== 0) throw new Error(`tar failed: ${packed.stderr}`)
      const imported = await docker(['import', '--change', 'CMD ["/bin/sh"]', '--change', 'ENV PATH=/bin',
        tar, BUSYBOX_IMAGE], { timeoutMs: 120_000 })
      if (imported.code !== 0) throw new Error(`docker import failed: ${imported.stderr}`)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
  return BUSYBOX_IMAGE
}

export interface PrivateDocker {
  /** unix:///.../docker.sock, for DOCKER_HOST */
  host: string
  /** Stops the engine (its containers with it) and removes its folder. */
  stop: () => Promise<void>
}

/**
 * A Docker engine of the caller's own, in a fresh folder (its data, its
 * containerd, its API socket), for tests that teach an engine something it
 * never forgets until it stops: a volume driver, which the engine keeps
 * asking for 15 s whenever its socket is gone (on every `docker volume ls`,
 * and before creating any volume), would slow the shared engine for everyone.
 */
export async function startPrivateDocker (): Promise<PrivateDocker> {
  const root = await mkdtemp(join(tmpdir(), 'chaac-dockerd-'))
  const sock = join(root, 'docker.sock')
  const host = `unix://${sock}`
  const log = await open(join(root, 'dockerd.log'), 'a')
  const tag = root.split('-').pop() as string
  const child = spawn('dockerd', [...DOCKERD_ARGS, '--ip-masq=false', '--data-root', join(root, 'data'), '--exec-root', join(root, 'exec'),
    '--pidfile', join(root, 'dockerd.pid'), '-H', host, '--containerd-namespace', `chaac-${tag}`, '--containerd-plugins-namespace', `chaac-${tag}-plugins`],
  { stdio: ['ignore', log.fd, log.fd], env: { ...process.env, PATH } })
  await log.close()
  let exited = false
  const gone = new Promise<void>((resolve) => child.on('exit', () => { exited = true; resolve() }))
  const kill = (): void => { child.kill('SIGKILL') }
  process.on('exit', kill)
  const stop = async (): Promise<void> => {
    process.off('exit', kill)
    if (!exited) {
      child.kill('SIGTERM')
      let timer: NodeJS.Timeout | undefined
      await Promise.race([gone, new Promise((resolve) => { timer = setTimeout(resolve, 30_000) })])
      clearTimeout(timer)
      if (!exited) child.kill('SIGKILL')
    }
    // Whatever it left mounted in its folder goes before the folder.
    const mounts = (await readFile('/proc/mounts', 'utf8')).split('\n').map((l) => l.split(' ')[1]).filter((m) => m?.startsWith(root + '/'))
    for (const m of mounts.sort((a, b) => b.length - a.length)) await run('umount', ['-l', m]).catch(() => {})
    await rm(root, { recursive: true, force: true })
  }
  try {
    await waitFor(async () => {
      if (exited) throw new Error(`dockerd exited:\n${await logTail(join(root, 'dockerd.log'))}`)
      return (await run('docker', ['-H', host, 'info', '--format', '{{.ServerVersion}}'], { timeoutMs: 10_000 })).code === 0
    }, { timeoutMs: 60_000, intervalMs: 250, what: 'a private Docker engine to answer' })
  } catch (err) {
    await stop()
    throw err
  }
  return { host, stop }
}

/** The value of a `--name` option in docker run arguments, if the caller gave one. */
function nameOption (args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--name') return args[i + 1]
    if (args[i].startsWith('--name=')) return args[i].slice('--name='.length)
  }
  return undefined
}

/**
 * `docker run --rm --network none ...args`. Resolves with the container's exit
 * code and output; on timeout kills the container (killing only the client
 * would leave it running) and rejects.
 */
export async function dockerRun (args: string[], { timeoutMs = 120_000 }: { timeoutMs?: number } = {}): Promise<RunResult> {
  const given = nameOption(args)
  const name = given ?? `chaac-test-${process.pid}-${randomBytes(4).toString('hex')}`
  const runArgs = ['run', '--rm', '--network', 'none', ...(given ? [] : ['--name', name]), ...args]
  return await docker(runArgs, { timeoutMs, onTimeout: () => docker(['kill', name], { timeoutMs: 15_000 }) })
}

// Each iteration: unless paused, appends its number to its own file and
// checks the last line (a write, a close, a read), then reads the static
// file through and checks its sum (when given). Stops when /ctl/stop appears, exit 1 at
// the first error. While /ctl/pause exists it only reads, and says so.
export function appendingLoop (name: string, sum?: string): string {
  return `i=0
while [ ! -e /ctl/stop ]; do
  if [ -e /ctl/pause ]; then
    touch /ctl/paused.${name}
  else
    rm -f /ctl/paused.${name}
    echo $i >> /data/${name}.log || { echo "append $i failed"; exit 1; }
    [ "$(tail -n 1 /data/${name}.log)" = "$i" ] || { echo "line $i reads wrong"; exit 1; }
    i=$((i+1))
  fi
${sum === undefined ? '' : `  [ "$(md5sum < /data/static)" = "${sum}  -" ] || { echo "static reads wrong"; exit 1; }\n`}  usleep 20000
done
echo "done $i"`
}
