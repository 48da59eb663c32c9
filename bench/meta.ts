// Metadata engines side by side: the same small-file workload on a non-pool
// agent's mount of a LevelDB pool cluster and of an etcd cluster, and on
// GlusterFS and MooseFS; then faults on the etcd cluster while a writer
// creates and fsyncs files (longest op, nothing acknowledged lost); then the
// memory each etcd member and the agent take per 100,000 files.
//
//   npm run bench:meta                       # 3 rounds, results into bench/results-meta.md
//   npm run bench:meta -- --rounds 1 --files 500 --files-100k 0.2   # a quick run
//
// Clusters: the LevelDB pool agent on 127.0.0.2, the measured agent joined on
// 127.0.0.3; the etcd cluster of three members on 127.0.0.5-7 (scripts/lib/etcd.ts)
// with agents on 127.0.0.2 and 127.0.0.3 (the measured one). Every writer is its
// own process (bench/lib/meta-worker.py, plain syscalls). Everything is stopped
// by PID in a finally (and on SIGINT), mounts unmounted lazily, temp folders removed.
import { spawn } from 'node:child_process'
import { mkdir, readFile, statfs, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { startEtcd, type EtcdCluster } from '../scripts/lib/etcd.ts'
import { commandLine, filesystemOf, machineBasics, sourceState } from './lib/machine.ts'
import {
  Daemon, delay, dropKernelCaches, killChildren, log, makeTempFolders, median, onInterrupt, printLogTails, removeTempFolders, run, runBench,
  unmount, waitFor, waitQuiet
} from './lib/proc.ts'
import { glusterTarget, moosefsTarget } from './lib/targets.ts'

const PROJECT = resolve(import.meta.dirname, '..')
const CLI = join(PROJECT, 'bin', 'chaac.mjs')
const WORKER = join(PROJECT, 'bench', 'lib', 'meta-worker.py')
const GiB = 1024 ** 3
const MB = 1e6

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    files: { type: 'string', default: '2000' },
    'files-100k': { type: 'string', default: '1' },
    'fault-seconds': { type: 'string', default: '15' },
    only: { type: 'string', default: 'workload,faults,memory' },
    out: { type: 'string', default: join(PROJECT, 'bench') },
    help: { type: 'boolean', default: false }
  }
})

if (flags.help) {
  console.log(`usage: npm run bench:meta -- [--rounds N] [--files N] [--files-100k X] [--fault-seconds S] [--only PARTS] [--out DIR]
  --rounds N         rounds of the workload on every target, the order rotated (default 3)
  --files N          files per writer (default 2000; 1 writer and 8 writers each create N)
  --files-100k X     the memory part creates X * 100,000 files (default 1; e.g. 0.2 for a quick run)
  --fault-seconds S  how long the writer runs after each fault (default 15)
  --only PARTS       comma-separated: workload, faults, memory (default all three)
  --out DIR          where results-meta.md goes (default bench/)
Temporary folders go under CHAAC_BENCH_DIR (default: the system temp folder) and /dev/shm.
Run as root (it drops the kernel's caches and mounts FUSE); needs 127.0.0.2-3 and 127.0.0.5-7.`)
  process.exit(0)
}

const ROUNDS = Number(flags.rounds)
const FILES = Number(flags.files)
const FILES_MEM = Math.round(Number(flags['files-100k']) * 100_000)
const FAULT_MS = Number(flags['fault-seconds']) * 1000
const PARTS = new Set(flags.only.split(',').map((s) => s.trim()))
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error('--rounds must be a positive integer')
if (!Number.isInteger(FILES) || FILES < 1) throw new Error('--files must be a positive integer')
if (!Number.isInteger(FILES_MEM) || FILES_MEM < 8) throw new Error('--files-100k is too small')
if (!(FAULT_MS >= 1000)) throw new Error('--fault-seconds must be at least 1')
for (const p of PARTS) if (!['workload', 'faults', 'memory'].includes(p)) throw new Error(`--only: unknown part ${p}`)

const WRITERS = 8
const ETCD_HOSTS = ['127.0.0.5', '127.0.0.6', '127.0.0.7']
// Ports of our own, so that a test's etcd on the same addresses does not collide with ours.
const ETCD_PORT = 40_000 + (process.pid % 2000) * 4
const SECRET = Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2)
const AIM_LONGEST_MS = 3000

// ------------------------------------------------------------------ agents

/** One Chaac agent of a cluster on its own loopback address, started and stopped (or killed) by PID. */
class Agent {
  daemon?: Daemon
  url = ''
  printed = ''
  constructor (readonly name: string, readonly dir: string, readonly shm: string, readonly host: string, readonly role: string[]) {}

  get mount (): string { return join(this.dir, 'mnt') }
  get logFile (): string { return join(this.dir, 'agent.log') }
  get pid (): number | undefined { return this.daemon?.pid }
  get args (): string[] {
    return ['agent', '--volume-driver', 'none', '--no-share-folder', '--data', join(this.dir, 'data'), '--mount', this.mount, '--http', `${this.host}:0`, '--listen', `${this.host}:0`,
      '--bin', `mem:${join(this.shm, 'mem')}:256MiB`, '--bin', `disk:${join(this.dir, 'data', 'bins', 'disk0')}:64GiB`,
      '--cloud', 'none', ...this.role]
  }

  async start (): Promise<void> {
    for (const d of [this.mount, join(this.shm, 'mem')]) await mkdir(d, { recursive: true })
    const before = (await readFile(this.logFile, 'utf8').catch(() => '')).length
    const d = new Daemon(`agent ${this.name}`, process.execPath, [CLI, ...this.args], this.logFile,
      { ...process.env, CHAAC_SECRET: SECRET, CHAAC_LOG_LEVEL: 'warn' })
    this.daemon = d
    await d.start()
    await waitFor(`agent ${this.name} to start`, async () => /status:\s+http:/.test((await d.logText()).slice(before)), 120_000, () => d.assertRunning())
    this.printed = (await d.logText()).slice(before)
    this.url = /status:\s+(http:\/\/[\d.]+:\d+)\/status/.exec(this.printed)?.[1] ?? ''
  }

  /** ws://HOST:PORT other agents join (a pool agent's). */
  get peerUrl (): string {
    const url = /peers:\s+(ws:\/\/[\d.]+:\d+)/.exec(this.printed)?.[1]
    if (url === undefined) throw new Error(`agent ${this.name} printed no peer address:\n${this.printed}`)
    return url
  }

  async stop (): Promise<void> {
    await this.daemon?.stop(30_000)
    await lazyUnmount(this.mount)
  }

  /** kill -9, then the mount unmounted lazily (its FUSE connection is gone). */
  async kill9 (): Promise<void> {
    const d = this.daemon
    if (d?.child === undefined || !d.running) return
    d.child.kill('SIGKILL')
    await waitFor(`agent ${this.name} to exit`, async () => !d.running, 10_000)
    await lazyUnmount(this.mount)
  }

  /** Error and fatal lines of its log (pino levels 50 and 60). */
  async errors (): Promise<string[]> {
    return (await readFile(this.logFile, 'utf8').catch(() => '')).split('\n').filter((l) => /"level":(50|60)/.test(l))
  }
}

async function lazyUnmount (dir: string): Promise<void> {
  await run('fusermount', ['-uz', dir], { timeoutMs: 30_000 }).catch(async () => await unmount(dir))
}

/** An etcd cluster of three members and two agents on it; the measured agent is `b` (127.0.0.3). */
interface EtcdSetup { etcd: EtcdCluster, a: Agent, b: Agent, url: string }

async function startEtcdSetup (root: string, shm: string, name: string, port: number): Promise<EtcdSetup> {
  const etcd = await startEtcd({ hosts: ETCD_HOSTS, root: join(root, name, 'etcd'), clientPort: port, peerPort: port + 1, log })
  live.etcds.push(etcd)
  await etcd.waitHealthy()
  const url = `etcd://${etcd.endpoints.join(',')}/bench-${name}`
  const a = new Agent(`${name}-a`, join(root, name, 'a'), join(shm, name, 'a'), '127.0.0.2', ['--meta', url])
  const b = new Agent(`${name}-b`, join(root, name, 'b'), join(shm, name, 'b'), '127.0.0.3', ['--meta', url])
  live.agents.push(a, b)
  await a.start()
  await b.start()
  return { etcd, a, b, url }
}

// What is running, for the cleanup.
const live = { agents: [] as Agent[], etcds: [] as EtcdCluster[], teardowns: [] as Array<() => Promise<void>> }

// ---------------------------------------------------------------- workload

type TargetId = 'pool' | 'etcd' | 'glusterfs' | 'moosefs'
const TARGETS: TargetId[] = ['pool', 'etcd', 'glusterfs', 'moosefs']
const TARGET_NAMES: Record<TargetId, string> = { pool: 'LevelDB pool', etcd: 'etcd', glusterfs: 'GlusterFS', moosefs: 'MooseFS' }

interface MetaTarget { id: TargetId, dir: string, pids: () => number[], describe: string }

interface Workload { id: string, label: string, unit: string, aim?: { vs: 'pool' | 'moosefs', at: number } }

const WORKLOADS: Workload[] = [
  { id: 'create1', label: '1 writer: create + write 4 KiB', unit: 'ops/s' },
  { id: 'stat1', label: '1 writer: stat', unit: 'ops/s' },
  { id: 'readdir1', label: '1 writer: readdir', unit: 'entries/s' },
  { id: 'rename1', label: '1 writer: rename', unit: 'ops/s' },
  { id: 'unlink1', label: '1 writer: unlink', unit: 'ops/s' },
  { id: 'create8', label: '8 writers, own directories: create + write 4 KiB', unit: 'ops/s', aim: { vs: 'moosefs', at: 1 } },
  { id: 'stat8', label: '8 writers, own directories: stat', unit: 'ops/s', aim: { vs: 'pool', at: 0.9 } },
  { id: 'readdir8', label: '8 writers, own directories: readdir', unit: 'entries/s', aim: { vs: 'pool', at: 0.9 } },
  { id: 'rename8', label: '8 writers, own directories: rename', unit: 'ops/s' },
  { id: 'unlink8', label: '8 writers, own directories: unlink', unit: 'ops/s', aim: { vs: 'moosefs', at: 1 } },
  { id: 'createShared', label: '8 writers, one shared directory: create + write 4 KiB', unit: 'ops/s' },
  { id: 'unlinkShared', label: '8 writers, one shared directory: unlink', unit: 'ops/s' }
]

const samples = new Map<string, Partial<Record<TargetId, number[]>>>(WORKLOADS.map((w) => [w.id, {}]))

/** Runs one phase in every writer at once (each its own process, all starting at one instant); total ops per second of wall clock. */
async function phase (kind: string, dirs: string[], count: number, tags: string[], perDir = 0): Promise<number> {
  // Python's start for 8 processes on 2 cores takes well under this.
  const startAt = Date.now() / 1000 + 1.5
  const outs = await Promise.all(dirs.map(async (dir, i) => {
    const { stdout } = await run('python3', [WORKER, kind, dir, String(count), tags[i], String(startAt), String(perDir)], { timeoutMs: 3_600_000 })
    return JSON.parse(stdout) as { ops: number, start: number, end: number }
  }))
  const ops = outs.reduce((s, o) => s + o.ops, 0)
  return ops / (Math.max(...outs.map((o) => o.end)) - Math.min(...outs.map((o) => o.start)))
}

function record (id: string, t: TargetId, value: number): void {
  const s = samples.get(id) as Partial<Record<TargetId, number[]>>
  ;(s[t] ??= []).push(value)
  log(`  ${TARGET_NAMES[t].padEnd(12)} ${id.padEnd(13)} ${format(value)}`)
}

/** create, stat, readdir, rename and unlink with the writers each in a directory of its own. */
async function ownDirs (t: MetaTarget, base: string, writers: number): Promise<void> {
  const dirs = Array.from({ length: writers }, (_, i) => join(base, `w${i}`))
  const tags = dirs.map((_, i) => `w${i}`)
  const n = String(writers)
  record(`create${n}`, t.id, await phase('create', dirs, FILES, tags))
  await waitQuiet(t.pids(), 0.1, 30_000)
  // Through the filesystem, not the kernel's dentry and inode caches.
  await dropKernelCaches()
  record(`stat${n}`, t.id, await phase('stat', dirs, FILES, tags))
  await dropKernelCaches()
  record(`readdir${n}`, t.id, await phase('readdir', dirs, FILES, tags))
  record(`rename${n}`, t.id, await phase('rename', dirs, FILES, tags))
  record(`unlink${n}`, t.id, await phase('unlink-renamed', dirs, FILES, tags))
}

async function sharedDir (t: MetaTarget, base: string): Promise<void> {
  const dirs = Array.from({ length: WRITERS }, () => join(base, 'shared'))
  const tags = dirs.map((_, i) => `w${i}`)
  record('createShared', t.id, await phase('create', dirs, FILES, tags))
  await waitQuiet(t.pids(), 0.1, 30_000)
  record('unlinkShared', t.id, await phase('unlink', dirs, FILES, tags))
}

async function workloadRound (t: MetaTarget, round: number): Promise<void> {
  const base = join(t.dir, `round${round}`)
  await run('mkdir', ['-p', base])
  await waitQuiet(t.pids(), 0.1, 30_000)
  await ownDirs(t, join(base, 'one'), 1)
  await waitQuiet(t.pids(), 0.1, 30_000)
  await ownDirs(t, join(base, 'own'), WRITERS)
  await waitQuiet(t.pids(), 0.1, 30_000)
  await sharedDir(t, base)
  await run('rm', ['-rf', base], { timeoutMs: 600_000 })
}

// ------------------------------------------------------------------ faults

interface Op { ok: boolean, name: string, start: number, ms: number, error?: string }

interface FaultResult {
  label: string
  /** What happened, with times since the writer started. */
  events: string[]
  ops: Op[]
  baselineP50: number
  longestMs: number
  longestAt: number
  errors: Op[]
  checked: number
  missing: string[]
  wrong: string[]
  writerExited: boolean
}

/** Runs the writer on `mount`/faults/NAME, does `fault` after a steady start, lets it run FAULT_MS more, stops it, checks every acknowledged file. */
async function faultRun (label: string, mount: string, root: string, name: string, fault: (event: (s: string) => void) => Promise<void>): Promise<FaultResult> {
  const dir = join(mount, 'faults', name)
  const stopFile = join(root, `stop-${name}`)
  const ops: Op[] = []
  const events: string[] = []
  const t0 = Date.now()
  const event = (s: string): void => {
    events.push(`${((Date.now() - t0) / 1000).toFixed(2)} s: ${s}`)
    log(`  ${label}: ${s}`)
  }
  const child = spawn('python3', [WORKER, 'writer', dir, stopFile], { stdio: ['ignore', 'pipe', 'pipe'] })
  live.teardowns.push(async () => { child.kill('SIGKILL') })
  let buf = ''
  let stderr = ''
  child.stdout.on('data', (d) => {
    buf += String(d)
    const lines = buf.split('\n')
    buf = lines.pop() as string
    for (const line of lines) {
      const [kind, n, start, ms, ...rest] = line.split(' ')
      ops.push({ ok: kind === 'ok', name: n, start: Number(start) * 1000, ms: Number(ms), error: kind === 'ok' ? undefined : rest.join(' ') })
    }
  })
  child.stderr.on('data', (d) => { stderr += String(d) })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  await waitFor('the writer to get going', async () => ops.length >= 200 || Date.now() - t0 > 5000, 60_000)
  const before = ops.length
  const faultAt = Date.now()
  await fault(event)
  await delay(FAULT_MS)
  event(`the writer stops (${ops.length - before} ops since the fault)`)
  await writeFile(stopFile, '')
  const writerExited = await Promise.race([exited.then(() => true), delay(120_000).then(() => false)])
  if (!writerExited) {
    event('the writer did not finish its op within 120 s of being told to stop: killed')
    child.kill('SIGKILL')
  }
  if (stderr.trim() !== '') event(`writer stderr: ${stderr.trim().slice(-500)}`)
  const baseline = ops.slice(0, before).filter((o) => o.ok).map((o) => o.ms)
  const longest = ops.reduce((m, o) => (o.ms > m.ms ? o : m), { ms: 0, start: t0 } as Op)
  const acked = ops.filter((o) => o.ok).map((o) => o.name)
  const { stdout } = await spawnWithInput('python3', [WORKER, 'check', dir], acked.join('\n') + '\n')
  const check = JSON.parse(stdout) as { checked: number, missing: string[], wrong: string[] }
  const r: FaultResult = {
    label, events, ops, baselineP50: median(baseline), longestMs: longest.ms, longestAt: (longest.start - faultAt) / 1000,
    errors: ops.filter((o) => !o.ok), checked: check.checked, missing: check.missing, wrong: check.wrong, writerExited
  }
  log(`  ${label}: ${ops.length} ops, baseline p50 ${r.baselineP50.toFixed(1)} ms, longest ${r.longestMs.toFixed(0)} ms ` +
    `(started ${r.longestAt.toFixed(2)} s after the fault), ${r.errors.length} errors; ${check.checked} acknowledged files checked: ` +
    `${check.missing.length} missing, ${check.wrong.length} wrong`)
  return r
}

async function spawnWithInput (cmd: string, args: string[], input: string): Promise<{ stdout: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += String(d) })
    child.stderr.on('data', (d) => { stderr += String(d) })
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000)
    child.on('close', (code) => {
      clearTimeout(timer)
      if (code === 0) resolve({ stdout })
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${stderr.slice(-2000)}`))
    })
    child.stdin.end(input)
  })
}

async function faults (s: EtcdSetup, root: string): Promise<FaultResult[]> {
  const results: FaultResult[] = []
  let killed: typeof s.etcd.members[number] | undefined
  results.push(await faultRun('(i) etcd leader killed', s.b.mount, root, 'leader', async (event) => {
    const leader = await s.etcd.leader()
    event(`kill -9 the etcd leader ${leader.name} (${leader.host}, pid ${leader.pid})`)
    await s.etcd.kill(leader)
    killed = leader
  }))
  results.push(await faultRun('(ii) the other agent killed', s.b.mount, root, 'agent', async (event) => {
    event(`kill -9 agent ${s.a.host} (pid ${s.a.pid})`)
    await s.a.kill9()
  }))
  results.push(await faultRun('(iii) the killed member restarted', s.b.mount, root, 'restart', async (event) => {
    const m = killed as typeof s.etcd.members[number]
    event(`restart etcd ${m.name} (${m.host})`)
    await s.etcd.restart(m)
    event(`etcd ${m.name} healthy again`)
  }))
  results.push(await faultRun('(iv) a follower killed', s.b.mount, root, 'follower', async (event) => {
    const leader = await s.etcd.leader()
    // Another than the one just back, so that the restarted member has to serve.
    const follower = s.etcd.members.find((x) => x.pid !== undefined && x !== leader && x !== killed) ??
      s.etcd.members.find((x) => x.pid !== undefined && x !== leader) as typeof leader
    event(`kill -9 the follower ${follower.name} (${follower.host}, pid ${follower.pid}); the leader is ${leader.name}`)
    await s.etcd.kill(follower)
  }))
  // Every file of every run, once more at the end.
  const all = results.flatMap((r, i) => r.ops.filter((o) => o.ok).map((o) => join(['leader', 'agent', 'restart', 'follower'][i], o.name)))
  const { stdout } = await spawnWithInput('python3', [WORKER, 'check', join(s.b.mount, 'faults')], all.join('\n') + '\n')
  const final = JSON.parse(stdout) as { checked: number, missing: string[], wrong: string[] }
  log(`faults: ${final.checked} acknowledged files checked at the end: ${final.missing.length} missing, ${final.wrong.length} wrong`)
  finalCheck = final
  return results
}
let finalCheck: { checked: number, missing: string[], wrong: string[] } | undefined

// ------------------------------------------------------------------ memory

interface Rss { rss: number, anon: number, file: number }

interface MemoryResult {
  files: number
  seconds: number
  rows: Array<{ what: string, before: Rss, after: Rss }>
  dbSize: { before: number, after: number }
}

async function etcdDbSize (etcd: EtcdCluster): Promise<number> {
  const { stdout } = await run('etcdctl', [`--endpoints=${etcd.endpoints.join(',')}`, 'endpoint', 'status', '-w', 'json'], { timeoutMs: 30_000 })
  const list = JSON.parse(stdout) as Array<{ Status: { dbSize: number } }>
  return Math.max(...list.map((x) => x.Status.dbSize))
}

/** VmRSS and its anonymous and file-backed parts (etcd maps its database file), bytes; zeros when the process is gone. */
async function rssOf (pid: number | undefined): Promise<Rss> {
  const status = pid === undefined ? '' : await readFile(`/proc/${pid}/status`, 'utf8').catch(() => '')
  const kB = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024
  return { rss: kB('VmRSS'), anon: kB('RssAnon'), file: kB('RssFile') }
}

async function memory (s: EtcdSetup): Promise<MemoryResult> {
  const procs = (): Array<{ what: string, pid: number | undefined }> => [
    ...s.etcd.members.map((m) => ({ what: `etcd ${m.name} (${m.host})`, pid: m.pid })),
    { what: `agent ${s.b.host} (the writers' mount)`, pid: s.b.pid },
    { what: `agent ${s.a.host}`, pid: s.a.pid }
  ]
  const pids = (): number[] => procs().map((p) => p.pid).filter((p): p is number => p !== undefined)
  await waitQuiet(pids(), 0.05, 60_000)
  const before = await Promise.all(procs().map(async (p) => await rssOf(p.pid)))
  const dbBefore = await etcdDbSize(s.etcd)
  const perWriter = Math.ceil(FILES_MEM / WRITERS)
  const dirs = Array.from({ length: WRITERS }, (_, i) => join(s.b.mount, 'memory', `w${i}`))
  const t0 = performance.now()
  log(`memory: ${WRITERS} writers create ${perWriter} files each (directories of 1,000)`)
  await phase('create', dirs, perWriter, dirs.map((_, i) => `w${i}`), 1000)
  const seconds = (performance.now() - t0) / 1000
  await waitQuiet(pids(), 0.05, 120_000)
  const after = await Promise.all(procs().map(async (p) => await rssOf(p.pid)))
  const dbAfter = await etcdDbSize(s.etcd)
  const rows = procs().map((p, i) => ({ what: p.what, before: before[i], after: after[i] }))
  for (const r of rows) log(`  ${r.what}: ${(r.before.rss / MB).toFixed(0)} -> ${(r.after.rss / MB).toFixed(0)} MB (anonymous ${(r.after.anon / MB).toFixed(0)}, file-backed ${(r.after.file / MB).toFixed(0)})`)
  return { files: perWriter * WRITERS, seconds, rows, dbSize: { before: dbBefore, after: dbAfter } }
}

// ----------------------------------------------------------------- results

function format (x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '-'
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(x >= 10 ? 1 : 2)
}

function formatRatio (r: number): string {
  return Number.isFinite(r) ? r.toFixed(2) : '-'
}

function workloadTable (): string {
  const lines = [
    `| workload | unit | ${TARGETS.map((t) => TARGET_NAMES[t]).join(' | ')} | etcd / LevelDB pool | etcd / MooseFS | aim |`,
    `| --- | --- | ${TARGETS.map(() => '---:').join(' | ')} | ---: | ---: | --- |`
  ]
  for (const w of WORKLOADS) {
    const s = samples.get(w.id) as Partial<Record<TargetId, number[]>>
    const m = (t: TargetId): number => median(s[t] ?? [])
    const vsPool = m('etcd') / m('pool')
    const vsMoose = m('etcd') / m('moosefs')
    let aim = ''
    if (w.aim !== undefined) {
      const r = w.aim.vs === 'pool' ? vsPool : vsMoose
      aim = `etcd >= ${w.aim.at === 1 ? '' : `${w.aim.at}x `}${w.aim.vs === 'pool' ? 'LevelDB pool' : 'MooseFS'}: ${!Number.isFinite(r) ? '-' : r >= w.aim.at ? 'met' : '**MISSED**'}`
    }
    lines.push(`| ${w.label} | ${w.unit} | ${TARGETS.map((t) => format(m(t))).join(' | ')} | ${formatRatio(vsPool)} | ${formatRatio(vsMoose)} | ${aim} |`)
  }
  return lines.join('\n')
}

function roundsTable (): string {
  const lines = [`| workload | ${TARGETS.map((t) => TARGET_NAMES[t]).join(' | ')} |`, `| --- | ${TARGETS.map(() => '---').join(' | ')} |`]
  for (const w of WORKLOADS) {
    const s = samples.get(w.id) as Partial<Record<TargetId, number[]>>
    lines.push(`| ${w.label} | ${TARGETS.map((t) => (s[t] ?? []).map(format).join(', ') || '-').join(' | ')} |`)
  }
  return lines.join('\n')
}

function faultTable (results: FaultResult[]): string {
  const lines = [
    `| fault | ops | errors | baseline p50 | longest op | it started (from the fault) | acknowledged files checked | missing | wrong | aim: longest <= ${AIM_LONGEST_MS / 1000} s, nothing lost |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |'
  ]
  for (const r of results) {
    const met = r.longestMs <= AIM_LONGEST_MS && r.missing.length === 0 && r.wrong.length === 0 && r.writerExited
    lines.push(`| ${r.label} | ${r.ops.length} | ${r.errors.length} | ${r.baselineP50.toFixed(1)} ms | ${(r.longestMs / 1000).toFixed(2)} s | ` +
      `${r.longestAt.toFixed(2)} s | ${r.checked} | ${r.missing.length} | ${r.wrong.length} | ${met ? 'met' : '**MISSED**'} |`)
  }
  return lines.join('\n')
}

function memoryTable (m: MemoryResult): string {
  const per = (before: number, after: number): string => ((after - before) / MB / m.files * 100_000).toFixed(0)
  const mb = (x: number): string => (x / MB).toFixed(0)
  const lines = [
    `| process | RSS before (MB) | RSS after ${m.files.toLocaleString('en-US')} files (MB) | of which anonymous / file-backed (MB) | RSS per 100,000 files (MB) | anonymous per 100,000 files (MB) |`,
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    ...m.rows.map((r) => `| ${r.what} | ${mb(r.before.rss)} | ${mb(r.after.rss)} | ${mb(r.after.anon)} / ${mb(r.after.file)} | ${per(r.before.rss, r.after.rss)} | ${per(r.before.anon, r.after.anon)} |`),
    `| etcd database size (largest member; a file, not RSS) | ${mb(m.dbSize.before)} | ${mb(m.dbSize.after)} | | ${per(m.dbSize.before, m.dbSize.after)} | |`
  ]
  return lines.join('\n')
}

interface Report {
  facts: Record<string, string>
  started: Date
  seconds: number
  targets: MetaTarget[]
  faults?: FaultResult[]
  memory?: MemoryResult
  logErrors: string[]
}

async function writeResults (r: Report): Promise<void> {
  const sections: string[] = []
  if (PARTS.has('workload')) {
    sections.push(`## Small files, side by side

Files of 4 KiB, each writer its own process (\`bench/lib/meta-worker.py\`: \`os.open(O_CREAT|O_EXCL)\`, one \`write\`, \`close\`;
\`os.stat\`; \`os.scandir\` of the directory 5 times, names only; \`os.rename\` to a new name in the same directory; \`os.unlink\`),
one phase after another; the writers of a phase start at one instant and the rate is all their ops over the wall clock from
the first start to the last end. ${FILES.toLocaleString('en-US')} files per writer: 1 writer; ${WRITERS} writers, each in a directory of its own;
${WRITERS} writers creating in one shared directory, then unlinking. The kernel's caches are dropped before stat and before readdir,
so both go to the filesystem. ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}, the order of the targets rotated every round; medians.

${workloadTable()}

Targets:
${r.targets.map((t) => `- **${TARGET_NAMES[t.id]}**: ${t.describe}`).join('\n')}

### Every round

${roundsTable()}
`)
  }
  if (r.faults !== undefined) {
    sections.push(`## Faults on the etcd cluster

A writer on agent 127.0.0.3's mount creates files of 4 KiB in a loop (\`open(O_CREAT|O_EXCL)\`, \`write\`, \`fsync\`, \`close\`),
recording each op's latency; a file counts as acknowledged once its \`close\` returned. After a steady start the fault happens,
and the writer goes on for ${FAULT_MS / 1000} s. Then every acknowledged file is read back on that mount and compared byte for byte.
The faults run one after another on the same cluster (the member killed in (i) stays down until (iii) restarts it; the agent
killed in (ii) stays down; (iv) kills a follower other than the restarted member, which then has to serve). The time of the
longest op is from the start of the fault (a negative one was in flight when the fault began).

${faultTable(r.faults)}

${finalCheck !== undefined ? `At the end, all ${finalCheck.checked.toLocaleString('en-US')} acknowledged files of the four runs read back: ${finalCheck.missing.length} missing, ${finalCheck.wrong.length} with wrong bytes.` : ''}

${r.faults.map((f) => `**${f.label}**:\n${f.events.map((e) => `- ${e}`).join('\n')}${f.errors.length > 0 ? `\n- errors the writer saw: ${f.errors.slice(0, 5).map((e) => `${e.name}: ${e.error ?? ''}`).join('; ')}` : ''}${f.missing.length + f.wrong.length > 0 ? `\n- lost: ${[...f.missing, ...f.wrong].slice(0, 10).join(', ')}` : ''}`).join('\n\n')}
`)
  }
  if (r.memory !== undefined) {
    const m = r.memory
    sections.push(`## Memory

A fresh etcd cluster (three members) and two agents; ${WRITERS} writers on agent 127.0.0.3's mount create
${m.files.toLocaleString('en-US')} files of 4 KiB (directories of 1,000 files) in ${m.seconds.toFixed(0)} s
(${format(m.files / m.seconds)} files/s). VmRSS before and after, each time once the processes are quiet; MB = 10^6 bytes.

${memoryTable(m)}
`)
  }
  const md = `# Metadata engines: LevelDB pool, etcd, GlusterFS, MooseFS

Command: \`${commandLine('bench/meta.ts')}\` (as root)
Date: ${r.started.toISOString()} (${Math.round(r.seconds / 60)} min)${ROUNDS < 3 && PARTS.has('workload') ? `, ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}: one sample per figure, no median` : ''}
Machine:
${Object.entries(r.facts).map(([k, v]) => `- ${k}: ${v}`).join('\n')}

Chaac agents: \`chaac agent --cloud none\` with a memory-level bin on tmpfs and a disk-level bin on the disk, default
replicas (2), inline files up to 4 KiB (the default: these files live in the metadata, no balls). LevelDB pool cluster:
the pool agent on 127.0.0.2 (\`--pool\`), the measured agent on 127.0.0.3 (\`--join\`). etcd cluster: three etcd members on
127.0.0.5-7 (Debian etcd-server, scripts/lib/etcd.ts: heartbeat 100 ms, election timeout 1 s), agents on 127.0.0.2 and
127.0.0.3 (\`--meta etcd://.../PREFIX\`), the measured one on 127.0.0.3. Everything shares the machine's cores.

${sections.join('\n')}
## Errors in the agents' logs

${r.logErrors.length === 0 ? 'None (no lines at level error or fatal).' : r.logErrors.map((l) => `- \`${l.slice(0, 400)}\``).join('\n')}
`
  await mkdir(flags.out, { recursive: true })
  await writeFile(join(flags.out, 'results-meta.md'), md)
}

// -------------------------------------------------------------------- main

async function preflight (root: string): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the bench drops kernel caches, mounts FUSE filesystems and starts GlusterFS and MooseFS')
  const tools: Array<[string, string[]]> = [['etcd', ['--version']], ['etcdctl', ['version']], ['python3', ['--version']], ['glusterd', ['--version']], ['mfsmaster', ['-v']]]
  for (const [tool, args] of tools) {
    await run(tool, args).catch((err: Error) => {
      if (/ENOENT/.test(err.message)) throw new Error(`${tool} is missing: npm run bench:meta installs it (scripts/ensure-deps.mjs --bench)`)
    })
  }
  const { bavail, bsize } = await statfs(root)
  if (bavail * bsize < 10 * GiB) throw new Error(`${root}: needs 10 GiB free`)
}

async function main (): Promise<void> {
  const started = new Date()
  const t0 = performance.now()
  const { root, shm } = await makeTempFolders('chaac-meta-')
  const cleanup = async (): Promise<void> => {
    killChildren()
    for (const f of live.teardowns.reverse()) await f().catch((err: Error) => log(`teardown: ${err.message}`))
    for (const a of live.agents.reverse()) await a.stop().catch((err: Error) => log(`agent ${a.name}: ${err.message}`))
    for (const e of live.etcds) await e.stop().catch((err: Error) => log(`etcd: ${err.message}`))
    live.teardowns = []
    live.agents = []
    live.etcds = []
    await removeTempFolders(root, [shm])
  }
  const interrupted = onInterrupt('stopping agents, etcd and the peers, removing temporary folders', cleanup)
  const report: Report = { facts: {}, started, seconds: 0, targets: [], logErrors: [] }
  const allAgents: Agent[] = []
  try {
    await preflight(root)
    report.facts = {
      ...await machineBasics(),
      filesystem: `${await filesystemOf(root)} (every target's data; Chaac's memory-level bins on tmpfs)`,
      etcd: (await run('etcd', ['--version'])).stdout.split('\n')[0].trim(),
      commit: await sourceState(['src', 'bench', 'scripts/lib']),
      'load at start': (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
    }
    let etcdSetup: EtcdSetup | undefined
    if (PARTS.has('workload') || PARTS.has('faults')) {
      log('starting the etcd cluster and its agents')
      etcdSetup = await startEtcdSetup(root, shm, 'etcd', ETCD_PORT)
      allAgents.push(etcdSetup.a, etcdSetup.b)
    }
    if (PARTS.has('workload')) {
      const s = etcdSetup as EtcdSetup
      log('starting the LevelDB pool cluster')
      const poolA = new Agent('pool-a', join(root, 'pool', 'a'), join(shm, 'pool', 'a'), '127.0.0.2', ['--pool'])
      live.agents.push(poolA)
      await poolA.start()
      const poolB = new Agent('pool-b', join(root, 'pool', 'b'), join(shm, 'pool', 'b'), '127.0.0.3', ['--join', poolA.peerUrl])
      live.agents.push(poolB)
      await poolB.start()
      allAgents.push(poolA, poolB)
      const agentPids = (...as: Agent[]) => (): number[] => as.map((a) => a.pid).filter((p): p is number => p !== undefined)
      const targets: MetaTarget[] = [
        { id: 'pool', dir: poolB.mount, pids: agentPids(poolA, poolB), describe: `\`chaac ${poolB.args.join(' ').replaceAll(root, '<tmp>').replaceAll(shm, '<tmpfs>')}\` (joined to the pool agent on 127.0.0.2)` },
        {
          id: 'etcd',
          dir: s.b.mount,
          pids: () => [...agentPids(s.a, s.b)(), ...s.etcd.members.map((m) => m.pid).filter((p): p is number => p !== undefined)],
          describe: `\`chaac ${s.b.args.join(' ').replaceAll(root, '<tmp>').replaceAll(shm, '<tmpfs>')}\` (three etcd members on 127.0.0.5-7, another agent on 127.0.0.2)`
        }
      ]
      for (const make of [glusterTarget, moosefsTarget]) {
        const t = make(root)
        log(`starting ${t.id}`)
        live.teardowns.push(t.teardown)
        await t.setup()
        let pids: number[] = []
        pids = await t.pids()
        targets.push({ id: t.id as TargetId, dir: t.dir, pids: () => pids, describe: t.describe })
      }
      report.targets = targets
      for (let round = 1; round <= ROUNDS; round++) {
        const order = targets.map((_, i) => targets[(i + round - 1) % targets.length])
        log(`round ${round}/${ROUNDS}: ${order.map((t) => TARGET_NAMES[t.id]).join(', ')}`)
        for (const t of order) await workloadRound(t, round)
      }
      console.log('\n' + workloadTable() + '\n')
      // The peers and the pool cluster go; the faults and the memory have the machine to themselves.
      for (const f of live.teardowns.reverse()) await f()
      live.teardowns = []
      await poolB.stop()
      await poolA.stop()
    }
    if (PARTS.has('faults')) {
      const s = etcdSetup as EtcdSetup
      log('faults on the etcd cluster')
      report.faults = await faults(s, root)
    }
    if (etcdSetup !== undefined) {
      await etcdSetup.b.stop()
      await etcdSetup.a.stop()
      await etcdSetup.etcd.stop()
    }
    if (PARTS.has('memory')) {
      log('memory: a fresh etcd cluster and its agents')
      const s = await startEtcdSetup(root, shm, 'mem', ETCD_PORT + 2)
      allAgents.push(s.a, s.b)
      report.memory = await memory(s)
      await s.b.stop()
      await s.a.stop()
      await s.etcd.stop()
    }
    for (const a of allAgents) report.logErrors.push(...(await a.errors()).map((l) => `${a.name}: ${l}`))
    report.facts['load at end'] = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
    report.seconds = (performance.now() - t0) / 1000
    await writeResults(report)
    log(`results: ${join(flags.out, 'results-meta.md')} (${Math.round(report.seconds)} s)`)
    if (report.logErrors.length > 0) log(`${report.logErrors.length} error lines in the agents' logs (see the results)`)
  } catch (err) {
    await printLogTails(allAgents.map((a) => ({ name: `agent ${a.name}'s log`, file: a.logFile })))
    throw err
  } finally {
    if (!interrupted()) await cleanup()
  }
}

runBench(main)
