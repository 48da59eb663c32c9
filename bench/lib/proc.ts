// Processes, mounts and timing for the benchmarks: child processes that are
// tracked and killed by PID, daemons started in their own session with their
// output in a log file, mount checks read from /proc (never from the mount).
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, open, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

export function log (msg: string): void {
  console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`)
}

export function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// Short-lived children still running; killed if the run is torn down early.
const children = new Set<ChildProcess>()

export function killChildren (): void {
  for (const child of children) child.kill('SIGKILL')
}

export interface RunResult { stdout: string, stderr: string, ms: number }

/** Runs a command in a child process; rejects on a non-zero exit or after timeoutMs (then SIGKILL). */
export async function run (cmd: string, args: string[], opts: { timeoutMs?: number, cwd?: string, env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return await new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd, env: opts.env ?? process.env })
    children.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += String(d) })
    child.stderr.on('data', (d) => { stderr += String(d) })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 600_000)
    child.on('error', (err) => {
      clearTimeout(timer)
      children.delete(child)
      reject(err)
    })
    child.on('close', (code, signal) => {
      const ms = performance.now() - start
      clearTimeout(timer)
      children.delete(child)
      if (code === 0) resolve({ stdout, stderr, ms })
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${(stdout + stderr).slice(-4000)}`))
    })
  })
}

/** Empties the kernel's page, dentry and inode caches. */
export async function dropKernelCaches (): Promise<void> {
  await run('sync', [])
  await writeFile('/proc/sys/vm/drop_caches', '3')
}

async function mountTargets (): Promise<string[]> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  return info.split('\n').map((line) => line.split(' ')[4]).filter((x) => x !== undefined)
}

/** True when something is mounted at `dir` (from mountinfo: the mount itself is never touched). */
export async function isMounted (dir: string): Promise<boolean> {
  const target = resolve(dir).replace(/ /g, '\\040')
  return (await mountTargets()).includes(target)
}

/** Every mount point at or under `root`. */
export async function mountsUnder (root: string): Promise<string[]> {
  const r = resolve(root)
  return (await mountTargets()).filter((m) => m === r || m.startsWith(r + '/'))
}

/** A run's temporary folders: `root` under CHAAC_BENCH_DIR (default: the system temp folder) with `logs/` in it, and `shm` on tmpfs. */
export async function makeTempFolders (prefix: string): Promise<{ root: string, shm: string }> {
  const root = await mkdtemp(join(resolve(process.env.CHAAC_BENCH_DIR ?? tmpdir()), prefix))
  const shm = await mkdtemp(join('/dev/shm', prefix))
  await mkdir(join(root, 'logs'))
  return { root, shm }
}

/**
 * Removes a run's temporary folders once its processes are stopped: whatever
 * is still mounted under `root` (a setup that failed half-way) is unmounted
 * first, and `root` is left in place if that fails.
 */
export async function removeTempFolders (root: string, others: string[]): Promise<void> {
  for (const m of (await mountsUnder(root)).reverse()) await unmount(m)
  const left = await mountsUnder(root)
  if (left.length === 0) await rm(root, { recursive: true, force: true })
  else log(`still mounted: ${left.join(', ')}; left ${root} in place`)
  for (const dir of others) await rm(dir, { recursive: true, force: true })
}

/**
 * On the first SIGINT or SIGTERM (Ctrl-C), runs `cleanup` and exits with 130.
 * Returns whether that happened, so that the run's own finally does not clean up twice.
 */
export function onInterrupt (what: string, cleanup: () => Promise<void>): () => boolean {
  let interrupted = false
  const handler = (signal: NodeJS.Signals): void => {
    if (interrupted) return
    interrupted = true
    log(`${signal}: ${what}`)
    cleanup().finally(() => process.exit(130))
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return () => interrupted
}

export async function waitFor (what: string, check: () => Promise<boolean>, timeoutMs = 60_000, alive?: () => void): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!await check()) {
    alive?.()
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`)
    await delay(100)
  }
}

/** Unmounts `dir`: umount, then a lazy umount if it is busy; no-op when nothing is mounted. */
export async function unmount (dir: string): Promise<void> {
  if (!await isMounted(dir)) return
  await run('umount', [dir], { timeoutMs: 60_000 }).catch(async () => {
    await run('umount', ['-l', dir], { timeoutMs: 30_000 }).catch(() => {})
  })
}

/**
 * A long-running process in its own session (setsid, so the PID is the
 * daemon's and a signal to us does not reach it), stdout and stderr appended
 * to a log file; stopped by PID.
 */
export class Daemon {
  child?: ChildProcess
  private exited?: Promise<void>

  constructor (readonly name: string, readonly cmd: string, readonly args: string[], readonly logFile: string,
    private readonly env?: NodeJS.ProcessEnv) {}

  async start (): Promise<void> {
    const fh = await open(this.logFile, 'a')
    try {
      const child = spawn(this.cmd, this.args, { detached: true, stdio: ['ignore', fh.fd, fh.fd], env: this.env ?? process.env })
      this.child = child
      this.exited = new Promise((resolve) => child.once('exit', () => resolve()))
      await new Promise<void>((resolve, reject) => {
        child.once('spawn', resolve)
        child.once('error', reject)
      })
    } finally {
      await fh.close()
    }
  }

  get running (): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
  }

  get pid (): number | undefined {
    return this.running ? this.child?.pid : undefined
  }

  /** Throws with the log's tail if the daemon is gone (for waits). */
  assertRunning (): void {
    if (!this.running) throw new Error(`${this.name} exited (${this.child?.exitCode ?? this.child?.signalCode}); see ${this.logFile}`)
  }

  async logText (): Promise<string> {
    return await readFile(this.logFile, 'utf8').catch(() => '')
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop (graceMs = 30_000): Promise<void> {
    const child = this.child
    if (child === undefined || !this.running) return
    child.kill('SIGTERM')
    if (!await exitsWithin(this.exited, graceMs)) {
      log(`${this.name} (pid ${child.pid}) ignored SIGTERM for ${graceMs / 1000} s; killing it`)
      child.kill('SIGKILL')
      await exitsWithin(this.exited, 10_000)
    }
  }
}

// Whether `exited` settles within `ms`; the timer goes with it, so it does not keep the bench alive.
async function exitsWithin (exited: Promise<unknown> | undefined, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<boolean>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
  try {
    return await Promise.race([(exited ?? Promise.resolve()).then(() => true), late])
  } finally {
    clearTimeout(timer)
  }
}

/** PIDs of processes whose command line mentions `text` (e.g. a temp folder), this process excluded. */
export async function pidsMentioning (text: string): Promise<number[]> {
  const pids: number[] = []
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    const cmd = await readFile(`/proc/${name}/cmdline`, 'utf8').catch(() => '')
    if (cmd.includes(text)) pids.push(Number(name))
  }
  return pids
}

/** Kills processes by PID (SIGTERM, then SIGKILL for those still there after `graceMs`). */
export async function killPids (pids: number[], graceMs = 5000): Promise<void> {
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0)
      return true
    } catch {
      return false
    }
  }
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGTERM')
  const deadline = Date.now() + graceMs
  while (pids.some(alive) && Date.now() < deadline) await delay(100)
  for (const pid of pids) if (alive(pid)) process.kill(pid, 'SIGKILL')
}

/** VmRSS and VmHWM of a process in bytes; zeros when it is gone. */
export async function memoryOf (pid: number): Promise<{ rss: number, hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  const kB = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024
  return { rss: kB('VmRSS'), hwm: kB('VmHWM') }
}

/** CPU time (user and system, every thread) the processes have used so far together, in seconds; one that is gone counts 0. */
export async function cpuSecondsOf (pids: number[]): Promise<number> {
  const one = async (pid: number): Promise<number> => {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
    if (stat === '') return 0
    // The fields after the command name (in parentheses, may hold spaces) start at
    // the state; utime and stime are the 12th and 13th of them, in USER_HZ (100 on Linux).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / 100
  }
  return (await Promise.all(pids.map(one))).reduce((s, x) => s + x, 0)
}

/**
 * Waits until the processes together use less than `share` of one core over a
 * second: the background work of the step before (cache fills, deletes) must
 * not run into the next measurement. After `timeoutMs` it logs and goes on.
 */
export async function waitQuiet (pids: number[], share = 0.05, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let before = await cpuSecondsOf(pids)
  while (Date.now() < deadline) {
    await delay(1000)
    const now = await cpuSecondsOf(pids)
    if (now - before < share) return
    before = now
  }
  log(`processes ${pids.join(', ')} were still busy after ${timeoutMs / 1000} s; going on`)
}

/** Fresh random bytes (fio, 1 MiB writes), so that no ball of an earlier round can be reused. */
export async function writeRandomFile (path: string, bytes: number): Promise<void> {
  await run('fio', ['--name=source', `--filename=${path}`, '--rw=write', '--bs=1M', `--size=${bytes}`,
    '--refill_buffers', '--randrepeat=0', '--ioengine=psync', '--output=/dev/null'])
}

/**
 * MB/s from dd's own summary line ("N bytes (...) copied, S s, ..."): dd's
 * clock stops after the output's fsync and close. With `bytes`, a dd that
 * copied another amount is an error.
 */
export function ddRate (stderr: string, bytes?: number): number {
  const m = /(\d+) bytes .* copied, ([\d.]+) s/.exec(stderr)
  if (!m) throw new Error(`unexpected dd output: ${stderr}`)
  if (bytes !== undefined && Number(m[1]) !== bytes) throw new Error(`dd copied ${m[1]} bytes, not ${bytes}`)
  return Number(m[1]) / Number(m[2]) / 1e6
}

export function median (xs: number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/** After a failed run: the last lines of each log that has any, so that the cause shows with the error. */
export async function printLogTails (logs: Array<{ name: string, file: string }>, lines = 20): Promise<void> {
  for (const { name, file } of logs) {
    const text = await readFile(file, 'utf8').catch(() => '')
    if (text !== '') console.error(`--- the end of ${name}:\n${text.trimEnd().split('\n').slice(-lines).join('\n')}`)
  }
}

/** Runs a benchmark's main: a failure is printed and sets the exit code. */
export function runBench (main: () => Promise<void>): void {
  main().catch((err: Error) => {
    console.error(`bench failed: ${err.stack ?? err.message}`)
    process.exitCode = 1
  })
}
