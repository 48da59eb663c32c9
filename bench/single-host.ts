// Single-host benchmark: the chaac mount against the plain folder underneath
// it (a directory on the same filesystem as the agent's disk bin, i.e. the
// physical limit), run side by side and interleaved (native, chaac, native,
// chaac, ...) for several rounds, so that both see the same machine state.
//
//   npm run bench:single-host                  # 3 rounds, results into bench/
//   npm run bench:single-host -- --rounds 5
//
// The agent is a separate process (node bin/chaac.mjs agent ...), stopped by
// PID at the end. All file I/O on the mount happens in child processes (dd,
// fio, cp, python3, rm): the mount is served by another process, but a
// synchronous call on it from here could still stall this script for good if
// the agent hung. Nothing is left mounted, running or on disk afterwards,
// even when a workload fails or the run is interrupted.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, readdir, rm, stat, statfs, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { commandLine, filesystemOf, machineBasics, sourceState } from './lib/machine.ts'
import { ddRate, delay, dropKernelCaches, isMounted, log, median } from './lib/proc.ts'
import { FuseClient } from './lib/targets.ts'

const PROJECT = resolve(import.meta.dirname, '..')
const CLI = join(PROJECT, 'bin', 'chaac.mjs')
const SMALL_FILES_SCRIPT = join(PROJECT, 'bench', 'small-files.py')
const PAGE_CACHE_SCRIPT = join(PROJECT, 'bench', 'page-cache.py')
const FLOOR_SOURCE = join(PROJECT, 'bench', 'fuse-floor.c')
const MiB = 1024 * 1024
const GiB = 1024 * MiB

// ---------------------------------------------------------------- settings

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    'random-seconds': { type: 'string', default: '10' },
    'mem-bin': { type: 'string', default: '256MiB' },
    out: { type: 'string', default: join(PROJECT, 'bench') },
    help: { type: 'boolean', default: false }
  }
})

if (flags.help) {
  console.log(`usage: npm run bench:single-host -- [--rounds N] [--random-seconds S] [--mem-bin SIZE] [--out DIR]
  --rounds N          rounds of native + chaac per workload (default 3, at least 3 for a median)
  --random-seconds S  length of each 4 KiB random-read run (default 10)
  --mem-bin SIZE      capacity of the agent's memory-level bin (default 256MiB, the agent's default)
  --out DIR           where results-single-host.{md,json} go (default bench/)
Temporary folders go under CHAAC_BENCH_DIR (default: the system temp folder); the
agent's disk bin and the native folder share that filesystem.
CHAAC_BENCH_AGENT_NODE_ARGS go on the agent's node command line, e.g.
'--cpu-prof --cpu-prof-dir=/tmp/prof' (Node 20 refuses --cpu-prof in NODE_OPTIONS).`)
  process.exit(0)
}

const ROUNDS = Number(flags.rounds)
const RANDOM_SECONDS = Number(flags['random-seconds'])
const SEQ_SIZE = 1 * GiB
const CP_SIZE = 2 * GiB
const SMALL_FILES = 2000
const SMALL_FILE_SIZE = 4096
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error('--rounds must be a positive integer')
if (!(RANDOM_SECONDS > 0)) throw new Error('--random-seconds must be above zero')

type Side = 'native' | 'chaac'
const SIDES: readonly Side[] = ['native', 'chaac']

// What the table shows. An aim is either a floor on chaac/native or a bound on
// chaac's own value.
interface Workload {
  id: string
  label: string
  unit: string
  /** Only chaac has a value (the agent's memory). */
  chaacOnly?: boolean
  /** How the rounds are summed up: the median, or the highest (for a peak). */
  summary?: 'median' | 'max'
  aim?: { ratioAtLeast: number } | { atLeast: number } | { below: number }
}

const WORKLOADS: Workload[] = [
  { id: 'seqWrite', label: 'sequential write 1 GiB (dd bs=1M conv=fsync)', unit: 'MB/s', aim: { ratioAtLeast: 0.25 } },
  { id: 'seqReadCold', label: 'sequential read 1 GiB, cold (dd bs=1M)', unit: 'MB/s' },
  { id: 'seqReadHot', label: 'sequential re-read 1 GiB, hot (dd bs=1M)', unit: 'MB/s', aim: { ratioAtLeast: 0.5 } },
  { id: 'randRead', label: `4 KiB random reads, ${RANDOM_SECONDS} s from cold (fio psync QD1)`, unit: 'IOPS' },
  { id: 'create', label: `${SMALL_FILES} small files (4 KiB): create`, unit: 'ops/s', aim: { atLeast: 2000 } },
  { id: 'stat', label: `${SMALL_FILES} small files: stat`, unit: 'ops/s' },
  { id: 'read', label: `${SMALL_FILES} small files: read`, unit: 'ops/s' },
  { id: 'unlink', label: `${SMALL_FILES} small files: unlink`, unit: 'ops/s' },
  { id: 'cp', label: 'cp 2 GiB into the folder, then back out', unit: 'MB/s' },
  { id: 'peakRss', label: 'agent peak RSS during that cp (highest round)', unit: 'MB', chaacOnly: true, summary: 'max', aim: { below: 300 } }
]

const samples = new Map<string, Record<Side, number[]>>(WORKLOADS.map((w) => [w.id, { native: [], chaac: [] }]))

function record (id: string, side: Side, value: number): void {
  samples.get(id)?.[side].push(value)
}

// The FUSE floor (bench/fuse-floor.c: a file served from memory, no agent
// work at all) is re-read hot after chaac and native; for all three, the
// shape of the page cache right after the hot re-read.
type CacheSide = Side | 'floor'
interface PageCacheShape { largeFolios: number, meanRun: number }
const floorHot: number[] = []
const pageCache: Record<CacheSide, PageCacheShape[]> = { native: [], chaac: [], floor: [] }

// --------------------------------------------------------- child processes

// Children still running; killed if the run is torn down early.
const children = new Set<ChildProcess>()

interface RunResult { stdout: string, stderr: string, ms: number }

/** Runs a command in a child process; rejects on a non-zero exit or after timeoutMs. */
async function run (cmd: string, args: string[], timeoutMs = 300_000): Promise<RunResult> {
  return await new Promise((resolve, reject) => {
    const start = performance.now()
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    children.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += String(d) })
    child.stderr.on('data', (d) => { stderr += String(d) })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', reject)
    child.on('close', (code, signal) => {
      const ms = performance.now() - start
      clearTimeout(timer)
      children.delete(child)
      if (code === 0) resolve({ stdout, stderr, ms })
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}):\n${stdout}${stderr}`))
    })
  })
}

// ---------------------------------------------------------------- the agent

// One agent process over a fixed data folder, memory bin and chaac path, so
// that it can be restarted with the same files (to empty its memory level).
class AgentProcess {
  child?: ChildProcess
  private output = ''

  constructor (private readonly data: string, readonly mount: string, private readonly memBin: string) {}

  get args (): string[] {
    return [
      'agent', '--volume-driver', 'none', '--no-share-folder', '--data', this.data, '--mount', this.mount, '--http', '127.0.0.1:0',
      '--bin', `mem:${this.memBin}:${flags['mem-bin']}`,
      '--bin', `disk:${join(this.data, 'bins', 'disk0')}:64GiB`,
      // In the embedded default the cloud tier is one more folder on this same
      // disk, written in the background: it would double every write and slow
      // the native runs too. Measured here: the mount and the bins.
      '--cloud', 'none'
    ]
  }

  get pid (): number {
    const pid = this.child?.pid
    if (pid === undefined) throw new Error('the agent is not running')
    return pid
  }

  async start (): Promise<void> {
    const env = { ...process.env, CHAAC_LOG_LEVEL: 'warn' }
    const nodeArgs = (process.env.CHAAC_BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
    const child = spawn(process.execPath, [...nodeArgs, CLI, ...this.args], { env, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child = child
    this.output = ''
    child.stdout?.on('data', (d) => { this.output += String(d) })
    child.stderr?.on('data', (d) => { this.output += String(d) })
    // The CLI prints its status URL once the mount and the HTTP API are up.
    const deadline = Date.now() + 60_000
    while (!/status:\s+http:\/\//.test(this.output)) {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the agent exited before it was ready:\n${this.output}`)
      if (Date.now() > deadline) throw new Error(`the agent was not ready within 60 s:\n${this.output}`)
      await delay(50)
    }
  }

  /** SIGTERM (a clean unmount); SIGKILL and a lazy unmount if it does not exit in time. */
  async stop (): Promise<void> {
    const child = this.child
    this.child = undefined
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve))
      child.kill('SIGTERM')
      if (await Promise.race([exited.then(() => true), delay(30_000).then(() => false)]) === false) {
        log(`the agent (pid ${child.pid}) ignored SIGTERM for 30 s; killing it`)
        child.kill('SIGKILL')
        await Promise.race([exited, delay(10_000)])
      }
    }
    if (await isMounted(this.mount)) await run('fusermount', ['-uz', this.mount]).catch(() => {})
  }

  /** Restarts the agent with an empty memory level, so reads come from the disk level. */
  async restartCold (): Promise<void> {
    await this.stop()
    for (const name of await readdir(this.memBin)) {
      // Keep the bin's identity file; drop the ball folders.
      if (name !== '.chaac-bin') await rm(join(this.memBin, name), { recursive: true, force: true })
    }
    await this.start()
  }

  /** The last lines the current agent process printed (its warnings and errors), for a failure report. */
  logTail (lines = 30): string {
    return this.output.trimEnd().split('\n').slice(-lines).join('\n')
  }

  /** Resets the kernel's record of peak RSS (VmHWM) for the agent; false where the kernel refuses. */
  async resetPeakRss (): Promise<boolean> {
    return await writeFile(`/proc/${this.pid}/clear_refs`, '5').then(() => true, () => false)
  }

  /** VmHWM and VmRSS in bytes, from /proc/PID/status. */
  async memory (): Promise<{ hwm: number, rss: number }> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8')
    const kB = (field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024
    return { hwm: kB('VmHWM'), rss: kB('VmRSS') }
  }
}

// ---------------------------------------------------------------- workloads

/** Fresh random bytes for the write source each round, so no ball of an earlier round can be reused. */
async function makeRandomFile (path: string, size: number): Promise<void> {
  await run('fio', ['--name=source', `--filename=${path}`, '--rw=write', '--bs=1M', `--size=${size}`,
    '--refill_buffers', '--randrepeat=0', '--ioengine=psync', '--output=/dev/null'])
}

async function seqWrite (source: string, target: string): Promise<number> {
  return ddRate((await run('dd', [`if=${source}`, `of=${target}`, 'bs=1M', 'conv=fsync'])).stderr)
}

async function seqRead (file: string): Promise<number> {
  return ddRate((await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'])).stderr)
}

async function pageCacheShape (file: string): Promise<PageCacheShape> {
  return JSON.parse((await run('python3', [PAGE_CACHE_SCRIPT, file])).stdout)
}

/** Compiles bench/fuse-floor.c against libfuse 2 (the headers chaac's addon is built with). */
async function buildFloor (binary: string): Promise<void> {
  await run('cc', ['-O2', '-Wall', '-o', binary, FLOOR_SOURCE, '-I/usr/include/fuse', '-D_FILE_OFFSET_BITS=64', '-lfuse', '-pthread'])
}

async function randRead (file: string): Promise<number> {
  const { stdout } = await run('fio', ['--name=randread', `--filename=${file}`, '--readonly', '--rw=randread', '--bs=4k',
    `--size=${SEQ_SIZE}`, '--ioengine=psync', '--iodepth=1', '--time_based', `--runtime=${RANDOM_SECONDS}`,
    '--output-format=json'], (RANDOM_SECONDS + 120) * 1000)
  return (JSON.parse(stdout) as { jobs: Array<{ read: { iops: number } }> }).jobs[0].read.iops
}

async function smallFiles (dir: string): Promise<Record<'create' | 'stat' | 'read' | 'unlink', number>> {
  const { stdout } = await run('python3', [SMALL_FILES_SCRIPT, dir, String(SMALL_FILES), String(SMALL_FILE_SIZE)])
  return JSON.parse(stdout)
}

/** cp a file into `dir` and back out to `back`; MB/s over both copies. */
async function cpInOut (source: string, dir: string, back: string): Promise<number> {
  const inside = join(dir, 'cp.bin')
  const ms = (await run('cp', [source, inside])).ms + (await run('cp', [inside, back])).ms
  await run('rm', ['-f', inside, back])
  return 2 * CP_SIZE / (ms / 1000) / 1e6
}

/** Watches the agent's memory while `work` runs: VmHWM reset before, read after; VmRSS polled as a fallback. */
async function peakRssDuring<T> (agent: AgentProcess, work: () => Promise<T>): Promise<{ result: T, peak: number }> {
  const reset = await agent.resetPeakRss()
  let polled = (await agent.memory()).rss
  const poller = setInterval(() => {
    agent.memory().then((m) => { polled = Math.max(polled, m.rss) }, () => {})
  }, 100)
  try {
    const result = await work()
    const { hwm } = await agent.memory()
    return { result, peak: reset ? Math.max(hwm, polled) : polled }
  } finally {
    clearInterval(poller)
  }
}

// ------------------------------------------------------------------- rounds

interface Folders { root: string, native: string, data: string, mount: string, memBin: string, source: string, cpSource: string }

async function oneRound (round: number, f: Folders, agent: AgentProcess, floor: FuseClient): Promise<void> {
  const dirOf = (side: Side): string => side === 'native' ? f.native : f.mount
  const seqFile = (side: Side): string => join(dirOf(side), 'seq.bin')
  // Kernel caches dropped; for chaac, also a fresh agent with an empty memory level.
  const makeCold = async (side: Side): Promise<void> => {
    if (side === 'chaac') await agent.restartCold()
    await dropKernelCaches()
  }
  const step = (what: string, side: CacheSide, value: number, unit: string): void => {
    log(`round ${round}/${ROUNDS}  ${side.padEnd(6)} ${what.padEnd(14)} ${format(value)} ${unit}`)
  }

  await makeRandomFile(f.source, SEQ_SIZE)
  for (const side of SIDES) {
    const v = await seqWrite(f.source, seqFile(side))
    record('seqWrite', side, v)
    step('seq write', side, v, 'MB/s')
  }
  await rm(f.source, { force: true })

  for (const side of SIDES) {
    await makeCold(side)
    const cold = await seqRead(seqFile(side))
    const hot = await seqRead(seqFile(side))
    pageCache[side].push(await pageCacheShape(seqFile(side)))
    record('seqReadCold', side, cold)
    record('seqReadHot', side, hot)
    step('seq read cold', side, cold, 'MB/s')
    step('seq read hot', side, hot, 'MB/s')
  }
  // The floor's cache is filled the same way: a cold read after the caches were dropped.
  const floorFile = join(floor.mount, 'f')
  await dropKernelCaches()
  await seqRead(floorFile)
  const hot = await seqRead(floorFile)
  pageCache.floor.push(await pageCacheShape(floorFile))
  floorHot.push(hot)
  step('seq read hot', 'floor', hot, 'MB/s')

  for (const side of SIDES) {
    await makeCold(side)
    const v = await randRead(seqFile(side))
    record('randRead', side, v)
    step('4k randread', side, v, 'IOPS')
  }
  for (const side of SIDES) await run('rm', ['-f', seqFile(side)])

  for (const side of SIDES) {
    const rates = await smallFiles(dirOf(side))
    for (const [op, v] of Object.entries(rates)) {
      record(op, side, v)
      step(`small ${op}`, side, v, 'ops/s')
    }
  }

  for (const side of SIDES) {
    const back = join(f.native, 'cp-back.bin')
    if (side === 'native') {
      const v = await cpInOut(f.cpSource, f.native, back)
      record('cp', side, v)
      step('cp in+out', side, v, 'MB/s')
    } else {
      const { result, peak } = await peakRssDuring(agent, async () => await cpInOut(f.cpSource, f.mount, back))
      record('cp', side, result)
      record('peakRss', side, peak / 1e6)
      step('cp in+out', side, result, 'MB/s')
      step('peak RSS', side, peak / 1e6, 'MB')
    }
  }
}

// ------------------------------------------------------------------ results

function format (x: number): string {
  if (!Number.isFinite(x)) return '-'
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(x >= 10 ? 1 : 2)
}

/** Two decimals; three below 0.1, so that a small ratio does not print as 0.00. */
function formatRatio (r: number): string {
  return r.toFixed(r < 0.1 ? 3 : 2)
}

interface Row {
  id: string
  workload: string
  unit: string
  native: number | null
  chaac: number
  ratio: number | null
  aim: string
  met: boolean | null
  rounds: Record<Side, number[]>
}

function summarize (): Row[] {
  return WORKLOADS.map((w) => {
    const s = samples.get(w.id) as Record<Side, number[]>
    const sum = w.summary === 'max' ? (xs: number[]) => Math.max(...xs) : median
    const native = w.chaacOnly ? null : sum(s.native)
    const chaac = sum(s.chaac)
    const ratio = native === null ? null : chaac / native
    let aim = ''
    let met: boolean | null = null
    if (w.aim && 'ratioAtLeast' in w.aim) {
      aim = `>= ${w.aim.ratioAtLeast.toFixed(2)} of native`
      met = ratio !== null && ratio >= w.aim.ratioAtLeast
    } else if (w.aim && 'atLeast' in w.aim) {
      aim = `>= ${format(w.aim.atLeast)} ${w.unit}`
      met = chaac >= w.aim.atLeast
    } else if (w.aim && 'below' in w.aim) {
      aim = `< ${format(w.aim.below)} ${w.unit}`
      met = chaac < w.aim.below
    }
    return { id: w.id, workload: w.label, unit: w.unit, native, chaac, ratio, aim, met, rounds: s }
  })
}

function table (rows: Row[]): string {
  const lines = [
    '| workload | unit | native | chaac | chaac/native | aim |',
    '| --- | --- | ---: | ---: | ---: | --- |',
    ...rows.map((r) => `| ${r.workload} | ${r.unit} | ${r.native === null ? '-' : format(r.native)} | ${format(r.chaac)} | ` +
      `${r.ratio === null ? '-' : formatRatio(r.ratio)} | ${r.aim === '' ? '' : `${r.aim}: ${r.met === true ? 'met' : 'MISSED'}`} |`)
  ]
  return lines.join('\n')
}

async function machineFacts (root: string): Promise<Record<string, string>> {
  return {
    ...await machineBasics(),
    filesystem: `${await filesystemOf(root)} (native folder and the agent's disk bin)`,
    fio: (await run('fio', ['--version'])).stdout.trim(),
    commit: await sourceState(['src'])
  }
}

/**
 * What else runs on the machine: the load average and other chaac agents
 * (e.g. other people's tests). Both skew the numbers; the results say so.
 */
async function backgroundLoad (ownData: string): Promise<string> {
  const load = (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
  let agents = 0
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue
    const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
    if (/chaac\.mjs\0agent/.test(cmd) && !cmd.includes(ownData)) agents++
  }
  return `load average ${load}, ${agents} other chaac agent${agents === 1 ? '' : 's'} running`
}

const COLD_NOTE = 'Cold: `sync; echo 3 > /proc/sys/vm/drop_caches` before the read. For chaac also a fresh agent whose ' +
  'memory-level bin was emptied while it was stopped, so every ball comes from the disk-level bin (through the kernel ' +
  'page cache of the ball files, which was dropped too). Hot: the same file read again right away.'

const FLOOR_NOTE = 'FUSE floor: `bench/fuse-floor.c`, a 1 GiB file served from memory through libfuse 2\'s low-level API ' +
  '(the agent\'s library) with the agent\'s read options, kept in the page cache across opens; it does no work beyond ' +
  'copying bytes. It is read after the caches were dropped, then hot, like the other two. Page cache: right after each ' +
  'hot re-read, `bench/page-cache.py` (pagemap and kpageflags) gives the share of the file\'s pages in large folios ' +
  'and the mean run of physically consecutive pages; a cached read copies folio by folio.'

interface FloorSummary { hot: Record<CacheSide, number>, largeFolios: Record<CacheSide, number>, meanRun: Record<CacheSide, number> }

function summarizeFloor (): FloorSummary {
  const hotSamples: Record<CacheSide, number[]> = { ...(samples.get('seqReadHot') as Record<Side, number[]>), floor: floorHot }
  const per = (f: (xs: number[]) => number, pick: (s: CacheSide) => number[]): Record<CacheSide, number> =>
    ({ native: f(pick('native')), chaac: f(pick('chaac')), floor: f(pick('floor')) })
  return {
    hot: per(median, (side) => hotSamples[side]),
    largeFolios: per(median, (side) => pageCache[side].map((p) => p.largeFolios)),
    meanRun: per(median, (side) => pageCache[side].map((p) => p.meanRun))
  }
}

function floorTable (fl: FloorSummary): string {
  const sides: CacheSide[] = ['native', 'chaac', 'floor']
  const row = (label: string, cell: (side: CacheSide) => string): string => `| ${label} | ${sides.map(cell).join(' | ')} |`
  return [
    '| hot re-read, 1 GiB | native | chaac | FUSE floor |',
    '| --- | ---: | ---: | ---: |',
    row('MB/s (median)', (side) => format(fl.hot[side])),
    row('of native', (side) => formatRatio(fl.hot[side] / fl.hot.native)),
    row('pages in large folios', (side) => `${Math.round(fl.largeFolios[side] * 100)}%`),
    row('mean run of physically consecutive pages', (side) => format(fl.meanRun[side])),
    '',
    `chaac / FUSE floor: ${formatRatio(fl.hot.chaac / fl.hot.floor)}. FUSE floor every round (MB/s): ${floorHot.map(format).join(', ')}.`
  ].join('\n')
}

function roundsRow (r: Row): string {
  const { native, chaac } = r.rounds
  const ratios = native.length === 0 ? '-' : chaac.map((c, i) => formatRatio(c / native[i])).join(', ')
  return `| ${r.workload} | ${native.map(format).join(', ') || '-'} | ${chaac.map(format).join(', ')} | ${ratios} |`
}

async function writeResults (rows: Row[], facts: Record<string, string>, started: Date, seconds: number, agentArgs: string[]): Promise<void> {
  const command = commandLine('bench/single-host.ts')
  const md = `# Single-host benchmark: chaac mount vs the plain folder underneath

Command: \`${command}\`
Date: ${started.toISOString()} (${Math.round(seconds)} s)
Machine:
${Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`).join('\n')}

Native is a plain folder on the same filesystem as the agent's disk-level bin (the physical limit).
Each workload runs native then chaac, ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}; the table shows medians (peak RSS: the highest round).
MB = 10^6 bytes. Agent: \`chaac ${agentArgs.join(' ')}\` (temp folders replaced by their role).

${table(rows)}

${COLD_NOTE}

## Hot re-reads and the kernel's page cache

${floorTable(summarizeFloor())}

${FLOOR_NOTE}

## How each workload ran

Random reads: fio randread, 4 KiB, psync, queue depth 1, buffered, ${RANDOM_SECONDS} s over the 1 GiB file, starting cold as above.
Small files: \`bench/small-files.py\` (python3), ${SMALL_FILES} files of ${SMALL_FILE_SIZE} bytes, one phase after the other.
cp: a 2 GiB file of random bytes copied into the folder and from there back to the native folder (no fsync; total bytes / total time).
Peak RSS: the agent's VmHWM (reset through /proc/PID/clear_refs before the copy), cross-checked by polling VmRSS every 100 ms.

## Every round

| workload | native | chaac | chaac/native |
| --- | --- | --- | --- |
${rows.map(roundsRow).join('\n')}
`
  await mkdir(flags.out, { recursive: true })
  await writeFile(join(flags.out, 'results-single-host.md'), md)
  const json = {
    command, date: started.toISOString(), seconds: Math.round(seconds), machine: facts, rounds: ROUNDS, agentArgs, cold: COLD_NOTE, results: rows,
    floor: { note: FLOOR_NOTE, seqReadHot: floorHot, pageCache, summary: summarizeFloor() }
  }
  await writeFile(join(flags.out, 'results-single-host.json'), JSON.stringify(json, null, 2) + '\n')
}

// --------------------------------------------------------------------- main

async function preflight (root: string): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: dropping the kernel caches needs /proc/sys/vm/drop_caches')
  for (const tool of ['fio', 'python3', 'dd', 'fusermount', 'cc']) {
    await run(tool, ['--version']).catch(() => { throw new Error(`${tool} is missing (npm run bench:single-host installs it)`) })
  }
  const { bavail, bsize } = await statfs(root)
  const need = 12 * GiB
  if (bavail * bsize < need) throw new Error(`${root}: needs ${need / GiB} GiB free, has ${(bavail * bsize / GiB).toFixed(1)} GiB`)
}

async function main (): Promise<void> {
  const started = new Date()
  const t0 = performance.now()
  const root = await mkdtemp(join(resolve(process.env.CHAAC_BENCH_DIR ?? tmpdir()), 'chaac-bench-'))
  // On tmpfs: the memory-level bin (as the agent's default one is) and the
  // write source (so that reading it costs next to nothing).
  const shm = await mkdtemp('/dev/shm/chaac-bench-')
  const f: Folders = {
    root,
    native: join(root, 'native'),
    data: join(root, 'data'),
    mount: join(root, 'mnt'),
    memBin: join(shm, 'mem-bin'),
    source: join(shm, 'source.bin'),
    cpSource: join(root, 'cp-source.bin')
  }
  await mkdir(f.memBin)
  const agent = new AgentProcess(f.data, f.mount, f.memBin)
  const floorBinary = join(root, 'fuse-floor')
  const floor = new FuseClient('fuse-floor', join(root, 'floor'), floorBinary, [String(SEQ_SIZE / MiB), join(root, 'floor')],
    join(root, 'fuse-floor.log'))
  let interrupted = false
  const cleanup = async (): Promise<void> => {
    for (const child of children) child.kill('SIGKILL')
    await agent.stop()
    await floor.unmountIt()
    // Never remove a folder that still has something mounted in it.
    if (!await isMounted(f.mount) && !await isMounted(floor.mount)) await rm(root, { recursive: true, force: true })
    else log(`something is still mounted under ${root}; left it in place`)
    await rm(shm, { recursive: true, force: true })
  }
  const onSignal = (signal: NodeJS.Signals): void => {
    if (interrupted) return
    interrupted = true
    log(`${signal}: stopping the agent and removing temporary folders`)
    cleanup().finally(() => process.exit(130))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)

  try {
    await preflight(root)
    await mkdir(f.native)
    const facts = await machineFacts(root)
    const binDev = (await stat(root)).dev
    if ((await stat(f.native)).dev !== binDev) throw new Error('the native folder is not on the filesystem of the disk bin')
    facts['load at start'] = await backgroundLoad(f.data)
    log(`machine: ${Object.values(facts).slice(0, 5).join(', ')}`)
    log(`load at start: ${facts['load at start']}`)
    log(`folders under ${root} and ${shm}`)
    await makeRandomFile(f.cpSource, CP_SIZE)
    await buildFloor(floorBinary)
    await mkdir(floor.mount)
    await floor.mountIt()
    await agent.start()
    log(`agent pid ${agent.pid}: ${agent.mount}; FUSE floor pid ${floor.daemon?.pid}: ${floor.mount}`)
    for (let round = 1; round <= ROUNDS; round++) await oneRound(round, f, agent, floor)

    facts['load at end'] = await backgroundLoad(f.data)
    // The agent restarts between rounds: a source change meanwhile would mix two versions.
    const sourceAtEnd = await sourceState(['src'])
    if (sourceAtEnd !== facts.commit) facts['commit at end (source changed during the run)'] = sourceAtEnd
    const rows = summarize()
    const shownArgs = agent.args.map((a) => a.replace(f.data, '<data>').replace(f.mount, '<mount>').replace(f.memBin, '<tmpfs dir>'))
    const seconds = (performance.now() - t0) / 1000
    console.log('\n' + table(rows) + '\n')
    console.log(COLD_NOTE + '\n')
    console.log(floorTable(summarizeFloor()) + '\n')
    await writeResults(rows, facts, started, seconds, shownArgs)
    log(`results: ${join(flags.out, 'results-single-host.md')} and .json (${Math.round(seconds)} s)`)
  } catch (err) {
    console.error(`the agent's last output:\n${agent.logTail()}`)
    throw err
  } finally {
    if (!interrupted) await cleanup()
  }
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack ?? err.message}`)
  process.exitCode = 1
})
