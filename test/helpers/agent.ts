// Starts real agent processes for integration tests: a fresh temporary data
// folder and chaac path each, HTTP on a free loopback port, and a teardown
// that kills by PID and unmounts lazily so a failed test leaves no mount.
import { spawn, execFile, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { killKeeper, loadKeeper } from '../../src/fuse/keeper.ts'
import { waitFor, withDeadline } from './wait.ts'

const execFileP = promisify(execFile)
export const PROJECT = resolve(import.meta.dirname, '..', '..')
const CLI = join(PROJECT, 'bin', 'chaac.mjs')

export interface AgentOptions {
  /** Extra `chaac agent` flags. */
  args?: string[]
  /** Reuse this data folder (restart tests); a fresh one otherwise. */
  data?: string
  env?: NodeJS.ProcessEnv
}

export interface RunningAgent {
  pid: number
  root: string
  data: string
  mount: string
  /** http://127.0.0.1:PORT */
  url: string
  /** HOST:PORT of the HTTP API */
  http: string
  /** The socket of the Docker volume driver the agent was started with (--volume-driver NAME). */
  volumeSocket?: string
  log: () => string
  /** SIGTERM (or the signal given) and wait for a clean exit (unmounts). */
  stop: (signal?: NodeJS.Signals) => Promise<number | null>
  /**
   * SIGKILL of the agent, then of the keeper that holds its mount's
   * connection: the mount is left behind stale, as after a crash of both.
   * With `keepKeeper` the keeper lives on: processes using the mount wait
   * for the next agent, which takes the mount over.
   */
  kill9: (opts?: { keepKeeper?: boolean }) => Promise<void>
  /** The pid of the keeper of the agent's mount, from its data folder (undefined: none). */
  keeperPid: () => Promise<number | undefined>
  json: (path: string) => Promise<any>
}

const running = new Set<{ child: ChildProcess, mount: string }>()

/**
 * The contract suite runs the mount and cluster tests again with every agent
 * on etcd: CHAAC_TEST_META names the members (etcd://HOST:PORT,...), and each
 * agent alone gets a prefix of its own, kept across restarts on its data folder.
 */
export function testMeta (): string | undefined {
  const base = process.env.CHAAC_TEST_META
  return base === undefined || base === '' || base === 'leveldb' ? undefined : base.replace(/\/+$/, '')
}

function metaArgs (args: string[], data: string): string[] {
  const base = testMeta()
  if (base === undefined || ['--meta', '--pool', '--join'].some((f) => args.includes(f))) return []
  const prefix = createHash('sha256').update(resolve(data)).digest('hex').slice(0, 16)
  return ['--meta', `${base}/t-${prefix}`, ...(args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0'])]
}

export async function startAgent (opts: AgentOptions = {}): Promise<RunningAgent> {
  const root = opts.data ? resolve(opts.data, '..') : await mkdtemp(join(tmpdir(), 'chaac-test-'))
  const data = opts.data ?? join(root, 'data')
  const mount = join(root, 'mnt')
  const hasBin = (opts.args ?? []).includes('--bin')
  const args = [
    CLI, 'agent', '--data', data, '--mount', mount, '--http', '127.0.0.1:0',
    ...(hasBin ? [] : ['--bin', `mem:${join(root, 'shm')}:64MiB`, '--bin', `disk:${join(data, 'bins', 'disk0')}:4GiB`]),
    ...metaArgs(opts.args ?? [], data),
    // Test agents serve no Docker volume driver unless a test names one: a socket of the shared dockerd that a
    // killed agent left behind would slow every `docker volume ls` on the host (Docker retries it for 30 s).
    ...(volumeDriverOf(opts) === undefined ? ['--volume-driver', 'none'] : []),
    ...(opts.args ?? [])
  ]
  const child = spawn(process.execPath, args, { env: { ...process.env, CHAAC_LOG_LEVEL: 'warn', ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const entry = { child, mount }
  running.add(entry)
  let out = ''
  child.stdout?.on('data', (d) => { out += String(d) })
  child.stderr?.on('data', (d) => { out += String(d) })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => {
    running.delete(entry)
    resolve(code)
  }))
  let gone = false
  void exited.then(() => { gone = true })
  const http = await waitFor(() => {
    if (gone) throw new Error(`agent exited before it was ready:\n${out}`)
    return /status:\s+http:\/\/([\d.]+:\d+)\/status/.exec(out)?.[1]
  }, { timeoutMs: 60_000, what: 'the agent to start' })
  const url = `http://${http}`
  return {
    pid: child.pid as number,
    root,
    data,
    mount,
    url,
    http,
    volumeSocket: volumeSocketOf(opts),
    log: () => out,
    stop: async (signal = 'SIGTERM') => {
      if (gone) return child.exitCode
      child.kill(signal)
      return await withDeadline(exited, 60_000, 'agent shutdown')
    },
    kill9: async (o = {}) => {
      if (!gone) {
        child.kill('SIGKILL')
        await withDeadline(exited, 10_000, 'agent exit after SIGKILL')
      }
      if (o.keepKeeper !== true) await stopKeeper(data)
    },
    keeperPid: async () => (await loadKeeper(data))?.pid,
    json: async (path: string) => {
      // Generous: on a loaded 2-core machine an agent starting up may take seconds to answer.
      const res = await fetch(url + path, { signal: AbortSignal.timeout(30_000) })
      return await res.json()
    }
  }
}

/** Kills what a test left running (the keeper too) and unmounts its chaac path and the folder around it; for t.teardown. */
export async function cleanupAgent (agent: RunningAgent | undefined, removeRoot = true): Promise<void> {
  if (!agent) return
  await agent.kill9()
  if (agent.volumeSocket !== undefined) await rm(agent.volumeSocket, { force: true })
  await unmountLazily(agent.mount)
  // The agent made the folder of its chaac path a shared mount of its own (a bind onto itself), which outlives it.
  if (await isMountPoint(agent.root)) await execFileP('umount', ['-l', agent.root]).catch(() => {})
  if (removeRoot) await rm(agent.root, { recursive: true, force: true })
}

/** Kills the keeper of the mount of an agent whose data folder is `data` (by its pid), and waits until it is gone. */
export async function stopKeeper (data: string): Promise<void> {
  const record = await loadKeeper(data)
  if (record === undefined) return
  await killKeeper(record)
  await waitFor(async () => !await readFile(`/proc/${record.pid}/environ`, 'utf8').then((env) => env.includes('CHAAC_KEEPER='), () => false),
    { timeoutMs: 10_000, what: `the keeper (pid ${record.pid}) to exit` })
}

async function isMountPoint (dir: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  return info.split('\n').some((line) => line.split(' ')[4] === resolve(dir))
}

// The --volume-driver (or CHAAC_VOLUME_DRIVER) a test gave an agent.
function volumeDriverOf (opts: AgentOptions): string | undefined {
  const args = opts.args ?? []
  return args.includes('--volume-driver') ? args[args.indexOf('--volume-driver') + 1] : opts.env?.CHAAC_VOLUME_DRIVER
}

function volumeSocketOf (opts: AgentOptions): string | undefined {
  const name = volumeDriverOf(opts)
  return name === undefined || name === 'none' ? undefined : `/run/docker/plugins/${name}.sock`
}

export async function unmountLazily (mount: string): Promise<void> {
  await execFileP('fusermount', ['-uz', mount]).catch(() => {})
}

export interface ShResult { code: number, stdout: string, stderr: string }

/** Runs a shell command in a child process (never synchronously: the mount is served by another process, but tests stay uniform). */
export async function sh (command: string, opts: { cwd?: string, timeoutMs?: number, env?: NodeJS.ProcessEnv } = {}): Promise<ShResult> {
  return await new Promise((resolve) => {
    const child = spawn('bash', ['-c', command], { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += String(d) })
    child.stderr.on('data', (d) => { stderr += String(d) })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 120_000)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr: stderr + (signal ? `\nkilled by ${signal} (timeout)` : '') })
    })
  })
}

/** Like sh, but fails on a non-zero exit with the command's output. */
export async function shOk (command: string, opts: { cwd?: string, timeoutMs?: number } = {}): Promise<string> {
  const r = await sh(command, opts)
  if (r.code !== 0) throw new Error(`command failed (${r.code}): ${command}\n${r.stdout}\n${r.stderr}`)
  return r.stdout
}

/** Python one-off in a child process, for exact syscalls and errno checks. */
export async function py (code: string, opts: { cwd?: string, timeoutMs?: number } = {}): Promise<string> {
  const file = join(await mkdtemp(join(tmpdir(), 'chaac-py-')), 'script.py')
  await writeFile(file, code)
  try {
    return await shOk(`python3 ${file}`, opts)
  } finally {
    await rm(resolve(file, '..'), { recursive: true, force: true })
  }
}


process.on('exit', () => {
  for (const { child } of running) child.kill('SIGKILL')
})
