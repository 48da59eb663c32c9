// What speaking the kernel's FUSE protocol ourselves would bring over libfuse 2
// (issue 12): bench/fuse-proto.c, a minimal server on /dev/fuse, in each of its
// modes, beside the local disk and bench/fuse-floor.c (libfuse 2, the library
// chaac-fuse uses), all reading the same 1 GiB file of random bytes.
//
//   npm run bench:fuse-proto                  # 5 rounds (about 25 minutes), results into bench/results-fuse-proto.md
//   npm run bench:fuse-proto -- --rounds 3
//
// Every workload runs on every target in turn, the order rotated by one each
// round. All file I/O on the mounts runs in child processes (dd, fio); mounts
// are checked through /proc/self/mountinfo only. Every server is stopped by
// PID and every mount unmounted in the end, also after a failure or Ctrl-C.
import { mkdir, readFile, statfs, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { commandLine, filesystemOf, machineBasics, sourceState } from './lib/machine.ts'
import {
  cpuSecondsOf, ddRate, dropKernelCaches, killChildren, log, makeTempFolders, median, onInterrupt, printLogTails,
  removeTempFolders, run, runBench, waitFor, writeRandomFile
} from './lib/proc.ts'
import { format, formatRatio } from './lib/report.ts'
import { FuseClient } from './lib/targets.ts'

const PROJECT = resolve(import.meta.dirname, '..')
const PROTO_SOURCE = join(PROJECT, 'bench', 'fuse-proto.c')
const FLOOR_SOURCE = join(PROJECT, 'bench', 'fuse-floor.c')
const MiB = 1024 * 1024
const RESULTS = 'results-fuse-proto.md'
const CONCLUSIONS = '## What this means for chaac-fuse'

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    'random-seconds': { type: 'string', default: '8' },
    'size-mib': { type: 'string', default: '1024' },
    out: { type: 'string', default: join(PROJECT, 'bench') },
    help: { type: 'boolean', default: false }
  }
})

if (flags.help) {
  console.log(`usage: npm run bench:fuse-proto -- [--rounds N] [--random-seconds S] [--size-mib M] [--out DIR]
  --rounds N          rounds of every workload on every target (default 5)
  --random-seconds S  length of each 4 KiB random-read run (default 8)
  --size-mib M        size of the file read (default 1024)
  --out DIR           where ${RESULTS} goes (default bench/); its section "${CONCLUSIONS.slice(3)}" is kept
Run as root (mount(2), drop_caches, sysfs). Temporary folders go under CHAAC_BENCH_DIR (default: the system temp folder).`)
  process.exit(0)
}

const ROUNDS = Number(flags.rounds)
const RANDOM_SECONDS = Number(flags['random-seconds'])
const SIZE = Number(flags['size-mib']) * MiB
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error('--rounds must be a positive integer')
if (!(RANDOM_SECONDS > 0)) throw new Error('--random-seconds must be above zero')
if (!Number.isInteger(SIZE / MiB) || SIZE <= 0) throw new Error('--size-mib must be a positive integer')

// ------------------------------------------------------------------ targets

interface TargetDef {
  id: string
  label: string
  /** fuse-proto's flags; none for the local disk and the floor. */
  proto?: string[]
  /** The mount's bdi read_ahead_kb, set after mounting; the kernel default (128) where absent. */
  readAheadKb?: number
}

// max_pages 256 is only used by reads through the page cache when the
// readahead window is as large: the kernel sizes those requests by it.
const TARGETS: TargetDef[] = [
  { id: 'local', label: 'local disk' },
  { id: 'floor', label: 'libfuse 2 floor (from memory)' },
  { id: 'p32t1', label: 'proto 128 KiB, 1 thread', proto: ['--max-pages', '32', '--threads', '1'] },
  { id: 'p32t4', label: 'proto 128 KiB, 4 threads', proto: ['--max-pages', '32', '--threads', '4'] },
  { id: 'p256t1', label: 'proto 1 MiB, 1 thread', proto: ['--max-pages', '256', '--threads', '1'], readAheadKb: 1024 },
  { id: 'p256t4', label: 'proto 1 MiB, 4 threads', proto: ['--max-pages', '256', '--threads', '4'], readAheadKb: 1024 },
  { id: 'p256t4c', label: 'proto 1 MiB, 4 threads, cloned fds', proto: ['--max-pages', '256', '--threads', '4', '--clone'], readAheadKb: 1024 },
  { id: 'pass', label: 'proto passthrough', proto: ['--passthrough'] }
]

interface Mounted {
  def: TargetDef
  /** The file read. */
  file: string
  client?: FuseClient
  logFile?: string
  /** The mount's read_ahead_kb as measured. */
  readAheadKb?: number
  /** The server's CPU seconds when last asked. */
  cpuSeen?: number
}

// --------------------------------------------------------------- workloads

interface Workload { id: string, label: string, unit: string }

const SIZE_LABEL = SIZE % 1024 ** 3 === 0 ? `${SIZE / 1024 ** 3} GiB` : `${SIZE / MiB} MiB`
const WORKLOADS: Workload[] = [
  { id: 'seqCold', label: `sequential read ${SIZE_LABEL}, cold (dd bs=1M)`, unit: 'MB/s' },
  { id: 'seqHot', label: `sequential re-read ${SIZE_LABEL}, hot (dd bs=1M)`, unit: 'MB/s' },
  { id: 'dio1', label: `4 KiB random reads, O_DIRECT, QD1, 1 job, ${RANDOM_SECONDS} s`, unit: 'IOPS' },
  { id: 'dio4', label: `4 KiB random reads, O_DIRECT, QD1, 4 jobs, ${RANDOM_SECONDS} s`, unit: 'IOPS' },
  { id: 'bufRand', label: `4 KiB random reads, buffered, from cold, ${RANDOM_SECONDS} s`, unit: 'IOPS' }
]

// samples[workload][target] = one value a round
const samples = new Map<string, Map<string, number[]>>(WORKLOADS.map((w) => [w.id, new Map(TARGETS.map((t) => [t.id, []]))]))
// What each FUSE server did during each workload, all rounds together: READ
// requests and bytes (fuse-proto only), CPU seconds (user and system), and fio's reads.
interface Served { reads: number, bytes: number, max: number, cpu: number, fioReads: number }
const served = new Map<string, Served>()
// The load average (1, 5, 15 min) and running tasks before each round and at the end.
const loads: string[] = []

function record (workload: string, target: string, value: number): void {
  samples.get(workload)?.get(target)?.push(value)
}

async function seqRead (file: string): Promise<number> {
  const { stderr } = await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'], { timeoutMs: 300_000 })
  return ddRate(stderr, SIZE)
}

/** fio 4 KiB random reads; IOPS and the number of reads done (all jobs). */
async function fioRandRead (file: string, opts: { direct: boolean, jobs: number }): Promise<{ iops: number, ios: number }> {
  const { stdout } = await run('fio', ['--name=randread', `--filename=${file}`, '--readonly', '--rw=randread', '--bs=4k',
    `--size=${SIZE}`, `--direct=${opts.direct ? 1 : 0}`, '--ioengine=psync', '--iodepth=1', `--numjobs=${opts.jobs}`,
    '--group_reporting', '--time_based', `--runtime=${RANDOM_SECONDS}`, '--output-format=json'],
  { timeoutMs: (RANDOM_SECONDS + 120) * 1000 })
  const read = (JSON.parse(stdout) as { jobs: Array<{ read: { iops: number, total_ios: number } }> }).jobs[0].read
  return { iops: read.iops, ios: read.total_ios }
}

// --------------------------------------------------- fuse-proto and the floor

/**
 * What the server did since it was last asked: its CPU time, and for
 * fuse-proto the READs it served (SIGUSR1; it answers with a line in its log).
 */
async function servedSince (m: Mounted): Promise<Omit<Served, 'fioReads'> | undefined> {
  const pid = m.client?.daemon?.pid
  if (pid === undefined) return undefined
  const cpuNow = await cpuSecondsOf([pid])
  const cpu = cpuNow - (m.cpuSeen ?? 0)
  m.cpuSeen = cpuNow
  if (m.def.proto === undefined || m.logFile === undefined) return { reads: 0, bytes: 0, max: 0, cpu }
  const lines = async (): Promise<string[]> => (await readFile(m.logFile as string, 'utf8')).split('\n').filter((l) => l.startsWith('fuse-proto: reads '))
  const before = (await lines()).length
  process.kill(pid, 'SIGUSR1')
  await waitFor(`${m.def.id} to report`, async () => (await lines()).length > before, 10_000)
  const [, reads, bytes, max] = /reads (\d+) bytes (\d+) max (\d+)/.exec((await lines())[before]) as RegExpExecArray
  return { reads: Number(reads), bytes: Number(bytes), max: Number(max), cpu }
}

function addServed (workload: string, target: string, s: Omit<Served, 'fioReads'> | undefined, fioReads = 0): void {
  if (s === undefined) return
  const key = `${workload}/${target}`
  const sum = served.get(key) ?? { reads: 0, bytes: 0, max: 0, cpu: 0, fioReads: 0 }
  served.set(key, {
    reads: sum.reads + s.reads, bytes: sum.bytes + s.bytes, max: Math.max(sum.max, s.max), cpu: sum.cpu + s.cpu, fioReads: sum.fioReads + fioReads
  })
}

/** The bdi of the mount at `dir` (major:minor from mountinfo: the mount itself is never touched). */
async function bdiOf (dir: string): Promise<string> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  const line = info.split('\n').find((l) => l.split(' ')[4] === resolve(dir))
  if (line === undefined) throw new Error(`${dir} is not mounted`)
  return `/sys/class/bdi/${line.split(' ')[2]}/read_ahead_kb`
}

async function build (root: string): Promise<{ proto: string, floor: string }> {
  const proto = join(root, 'fuse-proto')
  const floor = join(root, 'fuse-floor')
  await run('cc', ['-O2', '-Wall', '-Wextra', '-o', proto, PROTO_SOURCE, '-pthread'])
  await run('cc', ['-O2', '-Wall', '-o', floor, FLOOR_SOURCE, '-I/usr/include/fuse', '-D_FILE_OFFSET_BITS=64', '-lfuse', '-pthread'])
  return { proto, floor }
}

/** Mounts every target into `mounted` as it goes, so that a failure half-way still unmounts those up. */
async function mountAll (root: string, backing: string, bins: { proto: string, floor: string }, mounted: Mounted[]): Promise<void> {
  for (const def of TARGETS) {
    if (def.id === 'local') {
      mounted.push({ def, file: backing })
      continue
    }
    const dir = join(root, 'mnt', def.id)
    const logFile = join(root, 'logs', `${def.id}.log`)
    await mkdir(dir, { recursive: true })
    const client = def.proto === undefined
      ? new FuseClient(def.id, dir, bins.floor, [String(SIZE / MiB), dir], logFile)
      : new FuseClient(def.id, dir, bins.proto, [...def.proto, backing, dir], logFile)
    const m: Mounted = { def, file: join(dir, 'f'), client, logFile }
    mounted.push(m)
    await client.mountIt()
    const readAhead = await bdiOf(dir)
    if (def.readAheadKb !== undefined) await writeFile(readAhead, String(def.readAheadKb))
    m.readAheadKb = Number(await readFile(readAhead, 'utf8'))
    log(`${def.label}: ${dir} (pid ${client.daemon?.pid}, read_ahead_kb ${m.readAheadKb})`)
  }
}

/** The read_ahead_kb of the block device under `dir` (a partition's is its disk's). */
async function diskReadAhead (dir: string): Promise<string> {
  const source = (await run('findmnt', ['-n', '-o', 'SOURCE', '--target', dir])).stdout.trim()
  const name = source.replace(/^\/dev\//, '')
  for (const f of [`/sys/class/block/${name}/queue/read_ahead_kb`, `/sys/class/block/${name}/../queue/read_ahead_kb`]) {
    const kb = await readFile(f, 'utf8').catch(() => '')
    if (kb !== '') return `${kb.trim()} (${source})`
  }
  return `? (${source})`
}

// ------------------------------------------------------------------- rounds

async function loadNow (): Promise<string> {
  const [l1, l5, l15, tasks] = (await readFile('/proc/loadavg', 'utf8')).split(' ')
  return `load average ${l1} ${l5} ${l15}, ${tasks} tasks running/total`
}

async function oneRound (round: number, order: Mounted[]): Promise<void> {
  const step = (what: string, m: Mounted, value: number, unit: string): void => {
    log(`round ${round}/${ROUNDS}  ${m.def.id.padEnd(8)} ${what.padEnd(10)} ${format(value)} ${unit}`)
  }
  for (const m of order) {
    await dropKernelCaches()
    await servedSince(m)
    const cold = await seqRead(m.file)
    addServed('seqCold', m.def.id, await servedSince(m))
    const hot = await seqRead(m.file)
    addServed('seqHot', m.def.id, await servedSince(m))
    record('seqCold', m.def.id, cold)
    record('seqHot', m.def.id, hot)
    step('seq cold', m, cold, 'MB/s')
    step('seq hot', m, hot, 'MB/s')
  }
  // Each random run starts with the caches dropped, so that none reads what an earlier one left.
  for (const [id, direct, jobs] of [['dio1', true, 1], ['dio4', true, 4], ['bufRand', false, 1]] as const) {
    for (const m of order) {
      await dropKernelCaches()
      const { iops, ios } = await fioRandRead(m.file, { direct, jobs })
      addServed(id, m.def.id, await servedSince(m), ios)
      record(id, m.def.id, iops)
      step(id, m, iops, 'IOPS')
    }
  }
}

// ------------------------------------------------------------------ results

const label = (id: string): string => TARGETS.find((t) => t.id === id)?.label ?? id

function mediansOf (workload: string): Map<string, number> {
  const per = samples.get(workload) as Map<string, number[]>
  return new Map([...per].map(([t, xs]) => [t, median(xs)]))
}

function mainTable (): string {
  const head = `| workload | unit | ${TARGETS.map((t) => t.label).join(' | ')} |`
  const sep = `| --- | --- | ${TARGETS.map(() => '---:').join(' | ')} |`
  const rows = WORKLOADS.map((w) => {
    const med = mediansOf(w.id)
    return `| ${w.label} | ${w.unit} | ${TARGETS.map((t) => format(med.get(t.id))).join(' | ')} |`
  })
  return [head, sep, ...rows].join('\n')
}

function ratioTable (): string {
  const shown = TARGETS.filter((t) => t.id !== 'local')
  const head = `| workload | ${shown.map((t) => t.label).join(' | ')} |`
  const sep = `| --- | ${shown.map(() => '---:').join(' | ')} |`
  const rows = WORKLOADS.map((w) => {
    const med = mediansOf(w.id)
    const local = med.get('local') as number
    return `| ${w.label} | ${shown.map((t) => formatRatio((med.get(t.id) as number) / local)).join(' | ')} |`
  })
  return [head, sep, ...rows].join('\n')
}

function roundsTable (): string {
  const head = `| workload | ${TARGETS.map((t) => t.label).join(' | ')} |`
  const sep = `| --- | ${TARGETS.map(() => '---').join(' | ')} |`
  const rows = WORKLOADS.map((w) => {
    const per = samples.get(w.id) as Map<string, number[]>
    return `| ${w.label} | ${TARGETS.map((t) => (per.get(t.id) ?? []).map(format).join(', ')).join(' | ')} |`
  })
  return [head, sep, ...rows].join('\n')
}

function servedTable (): string {
  const proto = TARGETS.filter((t) => t.proto !== undefined)
  const head = `| workload | ${proto.map((t) => t.label).join(' | ')} |`
  const sep = `| --- | ${proto.map(() => '---').join(' | ')} |`
  const rows = WORKLOADS.map((w) => `| ${w.label} | ${proto.map((t) => {
    const s = served.get(`${w.id}/${t.id}`)
    if (s === undefined || s.reads === 0) return '0 READs'
    const perFio = s.fioReads > 0 ? `, ${(s.reads / s.fioReads).toFixed(2)} per fio read` : ''
    return `${format(s.reads)} READs of ${format(s.bytes / s.reads / 1024)} KiB (max ${s.max / 1024} KiB)${perFio}`
  }).join(' | ')} |`)
  return [head, sep, ...rows].join('\n')
}

function cpuTable (): string {
  const servers = TARGETS.filter((t) => t.id !== 'local')
  const head = `| workload | ${servers.map((t) => t.label).join(' | ')} |`
  const sep = `| --- | ${servers.map(() => '---:').join(' | ')} |`
  const rows = WORKLOADS.map((w) => `| ${w.label} | ${servers.map((t) => {
    const s = served.get(`${w.id}/${t.id}`)
    if (s === undefined) return '-'
    const gib = (samples.get(w.id)?.get(t.id)?.length ?? 0) * SIZE / 1024 ** 3
    return s.fioReads > 0 ? `${format(s.cpu / s.fioReads * 1e6)} us/read` : `${format(s.cpu / gib)} s/GiB`
  }).join(' | ')} |`)
  return [head, sep, ...rows].join('\n')
}

/** The section written by hand from an earlier run's file, kept when the results are rewritten. */
async function keptConclusions (file: string): Promise<string> {
  const old = await readFile(file, 'utf8').catch(() => '')
  const at = old.indexOf(CONCLUSIONS)
  return at < 0 ? `${CONCLUSIONS}\n\n(to be written from the numbers above)\n` : old.slice(at)
}

async function writeResults (facts: Record<string, string>, mounted: Mounted[], started: Date, seconds: number): Promise<string> {
  const file = join(flags.out, RESULTS)
  const described = mounted.map((m) => {
    const how = m.def.id === 'local'
      ? 'the backing file itself, read directly'
      : m.def.proto === undefined
        ? `\`fuse-floor ${SIZE / MiB} MOUNT\` (bench/fuse-floor.c): libfuse 2 low-level API, the agent's mount options, data from memory`
        : `\`fuse-proto ${m.def.proto.join(' ')} BACKING MOUNT\` (bench/fuse-proto.c)`
    return `| ${m.def.label} | ${how} | ${m.readAheadKb ?? '-'} |`
  })
  const md = `# FUSE protocol spoken directly (issue 12): max_pages, threads, passthrough

Command: \`${commandLine('bench/fuse-proto.ts')}\`
Date: ${started.toISOString()} (${Math.round(seconds)} s)
Machine:
${Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`).join('\n')}

Load before each round and at the end: ${loads.join('; ')}.

Every workload ran on every target in turn, ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}, the order rotated by one target each round.
Medians over the rounds; MB = 10^6 bytes. All targets but the floor read the same ${SIZE_LABEL} file of random bytes on the local disk.

| target | what | read_ahead_kb |
| --- | --- | ---: |
${described.join('\n')}

## Medians

${mainTable()}

## Ratio to the local disk

${ratioTable()}

Cold: \`sync; echo 3 > /proc/sys/vm/drop_caches\` right before (this drops the FUSE files' page cache and the backing
file's). Hot: the same dd right after. Random reads: \`fio --rw=randread --bs=4k --ioengine=psync --iodepth=1
--time_based --runtime=${RANDOM_SECONDS}\` with \`--direct=1\` (1 job, then \`--numjobs=4 --group_reporting\`) or buffered,
each run after dropping the caches. fuse-proto answers READs with a buffered pread of the backing file, so its
O_DIRECT runs read the backing file's page cache as it fills during the run (the local disk's do not); the floor
serves every READ from memory, so its cold read touches no disk at all.

## What the kernel sent to fuse-proto

READ requests seen by fuse-proto (SIGUSR1 after each workload), all rounds together, with their mean and largest
size; for the fio runs also READs per fio read.

${servedTable()}

## The servers' CPU time

User and system time of the server process (all its threads; not the kernel's work on the reader's side), all rounds
together, per GiB read or per fio read. /proc counts it in 10 ms ticks.

${cpuTable()}

## Every round

${roundsTable()}

${await keptConclusions(file)}`
  await mkdir(flags.out, { recursive: true })
  await writeFile(file, md)
  return file
}

// --------------------------------------------------------------------- main

async function preflight (root: string): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: mount(2), /proc/sys/vm/drop_caches and sysfs need it')
  for (const tool of ['fio', 'dd', 'cc']) {
    await run(tool, ['--version']).catch(() => { throw new Error(`${tool} is missing`) })
  }
  const { bavail, bsize } = await statfs(root)
  if (bavail * bsize < 2 * SIZE) throw new Error(`${root}: needs ${2 * SIZE / MiB} MiB free`)
}

async function main (): Promise<void> {
  const started = new Date()
  const t0 = performance.now()
  const { root, shm } = await makeTempFolders('chaac-fuse-proto-')
  const mounted: Mounted[] = []
  const cleanup = async (): Promise<void> => {
    killChildren()
    for (const m of mounted) await m.client?.unmountIt()
    await removeTempFolders(root, [shm])
  }
  const interrupted = onInterrupt('unmounting and removing temporary folders', cleanup)
  try {
    await preflight(root)
    const facts: Record<string, string> = {
      ...await machineBasics(),
      filesystem: `${await filesystemOf(root)} (the backing file)`,
      fio: (await run('fio', ['--version'])).stdout.trim(),
      'fs.fuse.max_pages_limit': (await readFile('/proc/sys/fs/fuse/max_pages_limit', 'utf8').catch(() => '?')).trim(),
      source: await sourceState(['bench/fuse-proto.c', 'bench/fuse-proto.ts', 'bench/fuse-floor.c'])
    }
    log(`machine: ${Object.values(facts).slice(0, 5).join(', ')}; folders under ${root}`)
    const bins = await build(root)
    const backing = join(root, 'backing.bin')
    await writeRandomFile(backing, SIZE)
    // The first read after the write is slower than any later cold read (the
    // host caches the VM's disk): read once, uncounted, so that no target pays it.
    await dropKernelCaches()
    facts['first cold read of the new file (not counted)'] = `${format(await seqRead(backing))} MB/s`
    facts['disk read_ahead_kb'] = await diskReadAhead(root)
    await mountAll(root, backing, bins, mounted)
    for (let round = 1; round <= ROUNDS; round++) {
      loads.push(`round ${round}: ${await loadNow()}`)
      const order = mounted.map((_, i) => mounted[(i + round - 1) % mounted.length])
      log(`round ${round}/${ROUNDS} (${loads.at(-1)}): ${order.map((m) => m.def.id).join(', ')}`)
      await oneRound(round, order)
    }
    loads.push(`end: ${await loadNow()}`)
    console.log('\n' + mainTable() + '\n\n' + ratioTable() + '\n\n' + servedTable() + '\n\n' + cpuTable() + '\n')
    const file = await writeResults(facts, mounted, started, (performance.now() - t0) / 1000)
    log(`results: ${file}`)
  } catch (err) {
    await printLogTails(mounted.filter((m) => m.logFile !== undefined).map((m) => ({ name: m.def.id, file: m.logFile as string })))
    throw err
  } finally {
    if (!interrupted()) await cleanup()
  }
}

runBench(main)
