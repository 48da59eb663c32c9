// The comparison users would make: the local disk, bindfs, GlusterFS, MooseFS
// and Chaac, side by side on this machine, loopback only.
//
//   npm run bench                     # 3 rounds, results into bench/results-compare.*
//   npm run bench -- --rounds 5
//
// Each target is brought up in a fresh folder (bench/lib/targets.ts); every
// workload runs on all of them in turn (A B C D E), and the whole sequence
// repeats for each round, the order rotated by one each round. Then a
// profiling pass runs each workload once more on a Chaac agent started with
// `node --cpu-prof`. Everything is taken down in a finally: daemons stopped by
// PID, mounts unmounted, temp folders removed. All file I/O on the mounts runs
// in child processes (dd, fio, cp, tar, git, rm, `chaac bench`).
import { mkdir, readFile, readdir, rm, statfs, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { summarizeProfiles, type ProfileSummary } from './lib/profile.ts'
import { ddRate, delay, dropKernelCaches, killChildren, log, makeTempFolders, median, memoryOf, onInterrupt, removeTempFolders, run, writeRandomFile } from './lib/proc.ts'
import { MATCH_TOLERANCE, TARGET_NAMES, format, formatRatio, mainTable, ratioChart, roundsTable, summarize, type Row, type WorkloadDef } from './lib/report.ts'
import { ChaacAgent, bindfsTarget, chaacTarget, glusterTarget, localTarget, moosefsTarget, type Target, type TargetId } from './lib/targets.ts'
import { commandLine, filesystemOf, machineBasics, sourceState } from './lib/machine.ts'

const PROJECT = resolve(import.meta.dirname, '..')
const CLI = join(PROJECT, 'bin', 'chaac.mjs')
const GiB = 1024 ** 3

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    'random-seconds': { type: 'string', default: '10' },
    'seq-size': { type: 'string', default: '1024' },
    files: { type: 'string', default: '2000' },
    tree: { type: 'string', default: '/usr/include' },
    targets: { type: 'string', default: 'local,bindfs,glusterfs,moosefs,chaac' },
    profile: { type: 'boolean', default: true },
    'no-profile': { type: 'boolean', default: false },
    out: { type: 'string', default: join(PROJECT, 'bench') },
    help: { type: 'boolean', default: false }
  }
})

if (flags.help) {
  console.log(`usage: npm run bench -- [options]
  --rounds N           rounds of every workload on every target (default 3)
  --random-seconds S   length of each 4 KiB random-read run (default 10)
  --seq-size MIB       size of the sequential file in MiB (default 1024)
  --files N            small files (default 2000)
  --tree DIR           source tree for cp -a and the git repository (default /usr/include)
  --targets LIST       comma-separated subset of local,bindfs,glusterfs,moosefs,chaac
  --no-profile         skip the profiling pass on Chaac
  --out DIR            where results-compare.{md,json,svg} go (default bench/)
Temporary folders go under CHAAC_BENCH_DIR (default: the system temp folder) and /dev/shm.
CHAAC_BENCH_AGENT_NODE_ARGS go on the measured agent's node command line.`)
  process.exit(0)
}

const ROUNDS = Number(flags.rounds)
const RANDOM_SECONDS = Number(flags['random-seconds'])
const SEQ_MIB = Number(flags['seq-size'])
const FILES = Number(flags.files)
const TREE = resolve(flags.tree)
const PROFILE = flags.profile && !flags['no-profile']
const ALL: TargetId[] = ['local', 'bindfs', 'glusterfs', 'moosefs', 'chaac']
const WANTED = flags.targets.split(',').map((s) => s.trim()) as TargetId[]
for (const t of WANTED) if (!ALL.includes(t)) throw new Error(`--targets: unknown target '${t}'`)
if (!WANTED.includes('local')) throw new Error('--targets must include local: every ratio is to the local disk')
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error('--rounds must be a positive integer')

const SEQ_LABEL = SEQ_MIB % 1024 === 0 ? `${SEQ_MIB / 1024} GiB` : `${SEQ_MIB} MiB`

// ---------------------------------------------------------------- workloads

let treeFacts = { files: 0, mb: 0 }
let repoFacts = { files: 0, mb: 0 }

function workloads (): WorkloadDef[] {
  return [
    { id: 'seqWrite', label: `sequential write ${SEQ_LABEL} + fsync (dd bs=1M conv=fsync)`, unit: 'MB/s', aim: 'match' },
    { id: 'seqReadCold', label: `sequential read ${SEQ_LABEL}, cold (dd bs=1M)`, unit: 'MB/s', aim: 'match' },
    { id: 'seqReadHot', label: `sequential re-read ${SEQ_LABEL}, hot (dd bs=1M)`, unit: 'MB/s', aim: 'beat' },
    { id: 'randRead', label: `4 KiB random reads, ${RANDOM_SECONDS} s from cold (fio psync QD1)`, unit: 'IOPS', aim: 'match' },
    { id: 'randReadDirect', label: `4 KiB random reads O_DIRECT, ${RANDOM_SECONDS} s (fio psync QD1)`, unit: 'IOPS', aim: 'match' },
    { id: 'randReadDirect4', label: `4 KiB random reads O_DIRECT, 4 jobs, ${RANDOM_SECONDS} s (fio psync QD1 each)`, unit: 'IOPS', aim: 'match' },
    { id: 'create', label: `${FILES} small files (4 KiB): create`, unit: 'ops/s', aim: 'beat' },
    { id: 'stat', label: `${FILES} small files: stat`, unit: 'ops/s', aim: 'beat' },
    { id: 'read', label: `${FILES} small files: read`, unit: 'ops/s', aim: 'beat' },
    { id: 'list', label: `${FILES} small files: list (readdir)`, unit: 'entries/s', aim: 'beat' },
    { id: 'delete', label: `${FILES} small files: delete`, unit: 'ops/s', aim: 'beat' },
    { id: 'cpTree', label: `cp -a ${TREE} (${treeFacts.files} files, ${Math.round(treeFacts.mb)} MB)`, unit: 'files/s', aim: 'match' },
    { id: 'rmTree', label: 'rm -rf of that copy', unit: 'files/s', aim: 'match' },
    { id: 'untar', label: `untar a git repository (${repoFacts.files} files, ${Math.round(repoFacts.mb)} MB)`, unit: 'files/s', aim: 'match' },
    { id: 'gitStatus', label: 'git status in it, right after the untar', unit: 'files/s', aim: 'match' },
    { id: 'peakRss', label: 'peak RSS of the target\'s processes (all rounds)', unit: 'MB', lowerBetter: true, noLocal: true }
  ]
}

// samples.get(workload)[target] = one value per round
const samples = new Map<string, Partial<Record<TargetId, number[]>>>()
const failures: string[] = []

function record (id: string, t: TargetId, value: number): void {
  const s = samples.get(id) ?? {}
  ;(s[t] ??= []).push(value)
  samples.set(id, s)
}

async function seqWrite (source: string, file: string): Promise<number> {
  return ddRate((await run('dd', [`if=${source}`, `of=${file}`, 'bs=1M', 'conv=fsync'])).stderr)
}

async function seqRead (file: string): Promise<number> {
  return ddRate((await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'])).stderr)
}

async function randRead (file: string): Promise<number> {
  const { stdout } = await run('fio', ['--name=randread', `--filename=${file}`, '--readonly', '--rw=randread', '--bs=4k',
    `--size=${SEQ_MIB}M`, '--ioengine=psync', '--iodepth=1', '--time_based', `--runtime=${RANDOM_SECONDS}`,
    '--output-format=json'], { timeoutMs: (RANDOM_SECONDS + 300) * 1000 })
  return (JSON.parse(stdout) as { jobs: Array<{ read: { iops: number } }> }).jobs[0].read.iops
}

// O_DIRECT: every read reaches the file system (on a FUSE mount, the agent), none the page cache of the file read.
async function randReadDirect (file: string, jobs: number): Promise<number> {
  const { stdout } = await run('fio', ['--name=randread-direct', `--filename=${file}`, '--readonly', '--rw=randread', '--bs=4k',
    `--size=${SEQ_MIB}M`, '--direct=1', '--ioengine=psync', '--iodepth=1', `--numjobs=${jobs}`, '--group_reporting',
    '--time_based', `--runtime=${RANDOM_SECONDS}`, '--output-format=json'], { timeoutMs: (RANDOM_SECONDS + 300) * 1000 })
  return (JSON.parse(stdout) as { jobs: Array<{ read: { iops: number } }> }).jobs[0].read.iops
}

/** The small-file workload of `chaac bench` (src/bench/workloads.ts), in its own process. */
async function smallFiles (dir: string): Promise<Record<string, number>> {
  const { stdout } = await run(process.execPath, [CLI, 'bench', dir, '--only', 'small-files', '--files', String(FILES), '--file-size', '4KiB', '--json', '--no-progress'])
  const out = JSON.parse(stdout) as { results: Array<{ id: string, value: number }> }
  return Object.fromEntries(out.results.map((r) => [r.id, r.value]))
}

async function timedFiles (cmd: string, args: string[], files: number, cwd?: string): Promise<{ rate: number, stdout: string }> {
  const r = await run(cmd, args, { cwd, timeoutMs: 1_200_000 })
  return { rate: files / (r.ms / 1000), stdout: r.stdout }
}

// ---------------------------------------------------------------- memory

/** Polls each target's processes every 500 ms; keeps the peak of the sum of their VmRSS (and the agent's VmHWM). */
class MemoryWatch {
  peaks = new Map<TargetId, number>()
  private timer?: NodeJS.Timeout
  private busy = false

  constructor (private readonly targets: Target[]) {}

  start (): void {
    this.timer = setInterval(() => {
      if (this.busy) return
      this.busy = true
      this.sample().finally(() => { this.busy = false })
    }, 500)
  }

  async sample (): Promise<void> {
    for (const t of this.targets) {
      const pids = await t.pids().catch(() => [] as number[])
      if (pids.length === 0) continue
      const mems = await Promise.all(pids.map(memoryOf))
      let v = mems.reduce((s, m) => s + m.rss, 0)
      if (pids.length === 1) v = Math.max(v, mems[0].hwm)
      this.peaks.set(t.id, Math.max(this.peaks.get(t.id) ?? 0, v))
    }
  }

  stop (): void {
    if (this.timer) clearInterval(this.timer)
  }
}

// ---------------------------------------------------------------- rounds

interface Ctx {
  root: string
  shm: string
  source: string
  repoTar: string
  targets: Target[]
  agent: ChaacAgent | undefined
}

async function attempt (what: string, t: Target, fn: () => Promise<void>): Promise<void> {
  try {
    await fn()
  } catch (err) {
    const msg = `${TARGET_NAMES[t.id]}: ${what} failed: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`
    failures.push(msg)
    log(msg)
  }
}

function step (round: number | string, t: Target, what: string, value: number, unit: string): void {
  log(`round ${round}  ${TARGET_NAMES[t.id].padEnd(10)} ${what.padEnd(16)} ${format(value)} ${unit}`)
}

async function makeCold (t: Target): Promise<void> {
  await t.cold()
  await dropKernelCaches()
}

/** One pass of every workload over `targets` (in that order). `tag` names the round in the log. */
async function pass (tag: number | string, ctx: Ctx, targets: Target[], onGroup?: (group: string, phase: 'before' | 'after') => Promise<void>): Promise<void> {
  const seqFile = (t: Target): string => join(t.dir, 'seq.bin')
  const group = async (name: string, fn: () => Promise<void>): Promise<void> => {
    await onGroup?.(name, 'before')
    try {
      await fn()
    } finally {
      await onGroup?.(name, 'after')
    }
  }
  await writeRandomFile(ctx.source, SEQ_MIB * 1024 * 1024)
  await group('sequential write', async () => {
    for (const t of targets) {
      await attempt('sequential write', t, async () => {
        const v = await seqWrite(ctx.source, seqFile(t))
        record('seqWrite', t.id, v)
        step(tag, t, 'seq write', v, 'MB/s')
      })
    }
  })
  await rm(ctx.source, { force: true })
  await group('sequential read, cold then hot', async () => {
    for (const t of targets) {
      await attempt('sequential read', t, async () => {
        await makeCold(t)
        const cold = await seqRead(seqFile(t))
        const hot = await seqRead(seqFile(t))
        record('seqReadCold', t.id, cold)
        record('seqReadHot', t.id, hot)
        step(tag, t, 'seq read cold', cold, 'MB/s')
        step(tag, t, 'seq read hot', hot, 'MB/s')
      })
    }
  })
  await group('4 KiB random reads', async () => {
    for (const t of targets) {
      await attempt('random reads', t, async () => {
        await makeCold(t)
        const v = await randRead(seqFile(t))
        record('randRead', t.id, v)
        step(tag, t, '4k randread', v, 'IOPS')
      })
    }
  })
  await group('4 KiB random reads O_DIRECT', async () => {
    for (const t of targets) {
      await attempt('random reads O_DIRECT', t, async () => {
        for (const [id, jobs] of [['randReadDirect', 1], ['randReadDirect4', 4]] as const) {
          const v = await randReadDirect(seqFile(t), jobs)
          record(id, t.id, v)
          step(tag, t, `4k randread direct x${jobs}`, v, 'IOPS')
        }
      })
    }
  })
  for (const t of targets) await run('rm', ['-f', seqFile(t)]).catch(() => {})
  await group('small files', async () => {
    for (const t of targets) {
      await attempt('small files', t, async () => {
        const rates = await smallFiles(t.dir)
        for (const [k, v] of Object.entries(rates)) {
          record(k, t.id, v)
          step(tag, t, `small ${k}`, v, 'ops/s')
        }
      })
    }
  })
  await group('cp -a and rm -rf of a source tree', async () => {
    for (const t of targets) {
      await attempt('cp -a', t, async () => {
        const dest = join(t.dir, 'tree')
        const cp = await timedFiles('cp', ['-a', TREE, dest], treeFacts.files)
        record('cpTree', t.id, cp.rate)
        step(tag, t, 'cp -a', cp.rate, 'files/s')
        const rmr = await timedFiles('rm', ['-rf', dest], treeFacts.files)
        record('rmTree', t.id, rmr.rate)
        step(tag, t, 'rm -rf', rmr.rate, 'files/s')
      })
    }
  })
  await group('untar and git status', async () => {
    for (const t of targets) {
      await attempt('untar + git status', t, async () => {
        const untar = await timedFiles('tar', ['-xf', ctx.repoTar, '-C', t.dir], repoFacts.files)
        record('untar', t.id, untar.rate)
        step(tag, t, 'untar', untar.rate, 'files/s')
        const repo = join(t.dir, 'repo')
        const st = await timedFiles('git', ['-C', repo, 'status', '--porcelain'], repoFacts.files)
        if (st.stdout.trim() !== '') throw new Error(`git status found changes after the untar:\n${st.stdout.slice(0, 500)}`)
        record('gitStatus', t.id, st.rate)
        step(tag, t, 'git status', st.rate, 'files/s')
        await run('rm', ['-rf', repo])
      })
    }
  })
}

/** Copies the source tree into a git repository (one commit, packed) and tars it, once. */
async function makeRepo (work: string): Promise<string> {
  const repo = join(work, 'repo')
  await mkdir(repo, { recursive: true })
  await run('cp', ['-a', TREE, join(repo, 'tree')])
  const git = async (...args: string[]): Promise<string> => (await run('git', ['-C', repo, '-c', 'user.name=bench', '-c', 'user.email=bench@localhost', ...args])).stdout
  await git('init', '-q')
  await git('add', '-A')
  await git('commit', '-q', '-m', 'source tree')
  await git('gc', '-q')
  const tar = join(work, 'repo.tar')
  await run('tar', ['-cf', tar, '-C', work, 'repo'])
  const listing = (await run('tar', ['-tvf', tar])).stdout.split('\n').filter((l) => l !== '' && !l.startsWith('d'))
  const bytes = listing.reduce((s, l) => s + Number(l.split(/\s+/)[2] ?? 0), 0)
  repoFacts = { files: listing.length, mb: bytes / 1e6 }
  await rm(repo, { recursive: true, force: true })
  return tar
}

async function countTree (): Promise<void> {
  const out = (await run('find', [TREE, '-not', '-type', 'd', '-printf', '%s\n'])).stdout.split('\n').filter((l) => l !== '')
  treeFacts = { files: out.length, mb: out.reduce((s, l) => s + Number(l), 0) / 1e6 }
}

// ---------------------------------------------------------------- profile pass

interface GroupProfile { group: string, summary: ProfileSummary | null }

/** Runs every workload once more on Chaac, each group on a fresh agent started with --cpu-prof. */
async function profilePass (ctx: Ctx, chaac: Target): Promise<GroupProfile[]> {
  const agent = ctx.agent as ChaacAgent
  const results: GroupProfile[] = []
  let n = 0
  await pass('profile', ctx, [chaac], async (group, phase) => {
    if (phase === 'before') n++
    const dir = join(ctx.root, 'profiles', String(n))
    if (phase === 'before') {
      await mkdir(dir, { recursive: true })
      await agent.restartCold(['--cpu-prof', `--cpu-prof-dir=${dir}`])
    } else {
      await agent.stop()
      log(`profiles of ${group}: ${(await readdir(dir)).join(', ') || 'none'}`)
      results.push({ group, summary: await summarizeProfiles(dir, PROJECT, 8) })
      // Back to the measured agent's own flags.
      await agent.start((process.env.CHAAC_BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter((a) => a !== ''))
    }
  })
  return results
}

// ---------------------------------------------------------------- results

async function machineFacts (root: string): Promise<Record<string, string>> {
  const version = async (cmd: string, args: string[]): Promise<string> =>
    (await run(cmd, args).then((r) => (r.stdout + r.stderr).split('\n')[0].trim(), () => '?'))
  const pkg = async (p: string): Promise<string> => (await run('dpkg-query', ['-W', '-f=${Version}', p]).then((r) => r.stdout, () => '?'))
  return {
    ...await machineBasics(),
    filesystem: `${await filesystemOf(root)} (every target's data)`,
    fio: await version('fio', ['--version']),
    packages: `bindfs ${await pkg('bindfs')}, glusterfs ${await pkg('glusterfs-server')}, moosefs ${await pkg('moosefs-master')}`,
    commit: await sourceState(['src', 'native'])
  }
}

async function loadNow (): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
}

const CLUSTER_NOTE = 'Not measured yet: **a Chaac cluster of three agents on 127.0.0.2-4**. Chaac does not form a cluster yet ' +
  '(README, "Cluster"); when it does, add a `chaac-cluster` target to bench/lib/targets.ts that starts three agents with ' +
  'their HTTP and peer listeners on 127.0.0.2, 127.0.0.3 and 127.0.0.4 and runs the workloads on one of their chaac paths.'

function shortfalls (rows: Row[]): string {
  const missed = rows.filter((r) => r.met === false)
  if (missed.length === 0) return 'Chaac meets every aim in this run.'
  return 'Chaac does not yet meet these aims in this run:\n\n' + missed.map((r) => {
    const g = r.medians.glusterfs
    const m = r.medians.moosefs
    return `- **${r.label}**: Chaac ${format(r.medians.chaac)} ${r.unit} against GlusterFS ${format(g)} and MooseFS ${format(m)} ` +
      `(${formatRatio(r.vsPeers)} of the better one; aim: ${r.aim})`
  }).join('\n')
}

function profileSection (profiles: GroupProfile[]): string {
  if (profiles.length === 0) return 'No profiling pass in this run (`--no-profile`).'
  return profiles.map((p) => {
    if (p.summary === null) return `#### ${p.group}\n\nno profile was written`
    const s = p.summary
    const table = (entries: typeof s.top): string => '| function | where | ms | share of busy |\n| --- | --- | ---: | ---: |\n' +
      entries.map((e) => `| \`${e.fn}\` | ${e.where || '-'} | ${Math.round(e.ms)} | ${(e.share * 100).toFixed(1)}% |`).join('\n')
    return `#### ${p.group}\n\nagent main thread busy ${(s.busyMs / 1000).toFixed(1)} s of ${(s.totalMs / 1000).toFixed(1)} s ` +
      `(${s.files.length} process${s.files.length === 1 ? '' : 'es'}; ${(s.startupMs / 1000).toFixed(1)} s of module loading at start left out).\n\n` +
      `By self time:\n\n${table(s.top)}\n\nBy the project function on the stack (its own time and what it calls in Node and native code):\n\n${table(s.project)}`
  }).join('\n\n')
}

async function writeResults (rows: Row[], targetsUsed: Target[], facts: Record<string, string>, started: Date, seconds: number, profiles: GroupProfile[]): Promise<void> {
  const ids = targetsUsed.map((t) => t.id)
  const command = commandLine('bench/compare.ts')
  const analysis = await readFile(join(PROJECT, 'bench', 'compare-analysis.md'), 'utf8').catch(() => '')
  const md = `# Chaac against what users would pick instead

Command: \`${command}\` (as root, from a clone of the commit below)
Date: ${started.toISOString()} (${Math.round(seconds / 60)} min)
Machine:
${Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`).join('\n')}

Every workload ran on every target in turn, ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}, the order rotated by one target each round;
the table shows medians (peak RSS: the highest value seen). Ratios are to the local disk in the same run. MB = 10^6 bytes.
"Chaac / best" is Chaac's median over the better of GlusterFS and MooseFS (above 1: Chaac is ahead);
"match" is met at >= ${(1 - MATCH_TOLERANCE).toFixed(2)}, "beat" above ${(1 + MATCH_TOLERANCE).toFixed(2)} (the noise of a shared VM).

${mainTable(rows, ids)}

![ratios to the local disk](results-compare.svg)

${failures.length > 0 ? `**Failures in this run**:\n\n${failures.map((f) => `- ${f}`).join('\n')}\n\n` : ''}## Where Chaac stands

${shortfalls(rows)}

${analysis.trim() === '' ? '' : analysis.trim() + '\n\n'}### Profiles of the agent (main thread), one agent per workload group

${profileSection(profiles)}

## Targets

${targetsUsed.map((t) => `- **${TARGET_NAMES[t.id]}**: ${t.describe}`).join('\n')}
- ${CLUSTER_NOTE}

## How each workload is run

- Sequential write: \`dd if=<${SEQ_LABEL} of fresh random bytes on tmpfs> of=F bs=1M conv=fsync\`; MB/s from dd's own clock (after fsync and close).
- Cold: the target's own caches emptied (FUSE clients remounted; the Chaac agent restarted with its memory-level bin emptied), then \`sync; echo 3 > /proc/sys/vm/drop_caches\`. Hot: the same dd again right away.
- 4 KiB random reads: from cold, \`fio --rw=randread --bs=4k --ioengine=psync --iodepth=1\` (buffered), ${RANDOM_SECONDS} s over the file.
- 4 KiB random reads O_DIRECT: right after those, \`fio --rw=randread --bs=4k --direct=1 --ioengine=psync --iodepth=1\`, ${RANDOM_SECONDS} s over the same file, with \`--numjobs=1\` and then \`--numjobs=4 --group_reporting\` (IOPS of all jobs). Every read reaches the target (on Chaac, the agent: its native read path when the file's balls are local); on the local disk the device itself.
- Small files: \`chaac bench DIR --only small-files --files ${FILES} --file-size 4KiB --json\` (src/bench/workloads.ts, Node fs/promises, one file at a time), its own process.
- cp -a / rm -rf: \`cp -a ${TREE} DIR/tree\`, then \`rm -rf DIR/tree\`, files per second.
- untar + git status: a git repository made once from a copy of ${TREE} (one commit, \`git gc\`), tarred; \`tar -xf\` into the target, then \`git status --porcelain\` (which re-reads every file: the index's inode and ctime no longer match), files per second; the status must be clean.
- Peak RSS: every 500 ms, the sum of VmRSS over the target's processes (GlusterFS: glusterd, two bricks, client; MooseFS: master, chunkserver, mfsmount; bindfs; the Chaac agent, also its VmHWM).
- The allocator has a benchmark of its own: \`npm run bench:placement\`, results in [results-placement.md](results-placement.md).

## Every round

${roundsTable(rows, ids)}
`
  await mkdir(flags.out, { recursive: true })
  await writeFile(join(flags.out, 'results-compare.md'), md)
  await writeFile(join(flags.out, 'results-compare.svg'), ratioChart(rows, ids, `Ratio to the local disk, medians of ${ROUNDS} rounds (${started.toISOString().slice(0, 10)})`))
  const json = {
    command, date: started.toISOString(), seconds: Math.round(seconds), machine: facts, rounds: ROUNDS,
    targets: targetsUsed.map((t) => ({ id: t.id, describe: t.describe })),
    notMeasured: CLUSTER_NOTE, failures, results: rows, profiles
  }
  await writeFile(join(flags.out, 'results-compare.json'), JSON.stringify(json, null, 2) + '\n')
}

// --------------------------------------------------------------------- main

async function preflight (root: string): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the bench drops kernel caches, mounts FUSE filesystems and starts GlusterFS and MooseFS daemons')
  const tools: Record<string, string[]> = {
    fio: ['--version'], dd: ['--version'], git: ['--version'], tar: ['--version'], bindfs: ['--version'],
    glusterd: ['--version'], mfsmaster: ['-v'], mfsmount: ['--version']
  }
  for (const [tool, args] of Object.entries(tools)) {
    await run(tool, args).catch((err: Error) => {
      if (/ENOENT/.test(err.message)) throw new Error(`${tool} is missing: npm run bench installs it (scripts/ensure-deps.mjs --bench)`)
    })
  }
  const busy = (await run('ss', ['-ltnH']).catch(() => ({ stdout: '' }))).stdout
  for (const port of [24007, 9419, 9420, 9421, 9422]) {
    if (new RegExp(`:${port}\\s`).test(busy)) throw new Error(`port ${port} is already taken (another GlusterFS or MooseFS running?)`)
  }
  const { bavail, bsize } = await statfs(root)
  if (bavail * bsize < 10 * GiB) throw new Error(`${root}: needs 10 GiB free`)
}

async function main (): Promise<void> {
  const started = new Date()
  const t0 = performance.now()
  const { root, shm } = await makeTempFolders('chaac-compare-')
  const nodeArgs = (process.env.CHAAC_BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
  const agent = WANTED.includes('chaac') ? new ChaacAgent(join(root, 'chaac-data'), join(root, 'chaac'), join(shm, 'mem-bin'), '256MiB', join(root, 'logs', 'chaac-agent.log')) : undefined
  const makers: Record<TargetId, () => Target> = {
    local: () => localTarget(root),
    bindfs: () => bindfsTarget(root),
    glusterfs: () => glusterTarget(root),
    moosefs: () => moosefsTarget(root),
    chaac: () => chaacTarget(root, agent as ChaacAgent, nodeArgs)
  }
  const all = WANTED.map((id) => makers[id]())
  const up: Target[] = []
  const watch = new MemoryWatch(up)
  const cleanup = async (): Promise<void> => {
    watch.stop()
    killChildren()
    for (const t of [...up].reverse()) {
      await t.teardown().catch((err: Error) => log(`${TARGET_NAMES[t.id]}: teardown: ${err.message}`))
    }
    await removeTempFolders(root, [shm])
  }
  const interrupted = onInterrupt('taking every target down', cleanup)

  try {
    await preflight(root)
    const facts = await machineFacts(root)
    facts['load at start'] = await loadNow()
    log(`machine: ${facts.nproc} cores, ${facts.memory}, ${facts.filesystem}; load ${facts['load at start']}`)
    log(`temporary folders: ${root} and ${shm}`)
    await countTree()
    const ctx: Ctx = { root, shm, source: join(shm, 'source.bin'), repoTar: await makeRepo(join(root, 'work')), targets: up, agent }
    log(`source tree ${TREE}: ${treeFacts.files} files; repository tar: ${repoFacts.files} files, ${Math.round(repoFacts.mb)} MB`)
    for (const t of all) {
      log(`setting up ${TARGET_NAMES[t.id]}`)
      try {
        up.push(t)
        await t.setup()
      } catch (err) {
        const msg = `${TARGET_NAMES[t.id]}: setup failed, left out of this run: ${(err as Error).message.split('\n').slice(0, 3).join(' | ')}`
        failures.push(msg)
        log(msg)
        await t.teardown().catch(() => {})
        up.splice(up.indexOf(t), 1)
      }
    }
    watch.start()
    for (let round = 1; round <= ROUNDS; round++) {
      // Rotate the order each round, so that no target always runs first (or right after a given one).
      const order = up.map((_, i) => up[(i + round - 1) % up.length])
      log(`round ${round}/${ROUNDS}: ${order.map((t) => TARGET_NAMES[t.id]).join(', ')}`)
      await pass(round, ctx, order)
    }
    await watch.sample()
    watch.stop()
    for (const [id, bytes] of watch.peaks) record('peakRss', id, bytes / 1e6)
    const chaac = up.find((t) => t.id === 'chaac')
    let profiles: GroupProfile[] = []
    if (PROFILE && chaac !== undefined) {
      log('profiling pass: every workload once more on Chaac, each group on an agent started with --cpu-prof')
      const saved = structuredClone(samples)
      profiles = await profilePass(ctx, chaac)
      // The profiled runs are not part of the results.
      samples.clear()
      for (const [k, v] of saved) samples.set(k, v)
    }
    facts['load at end'] = await loadNow()
    const rows = summarize(workloads(), up.map((t) => t.id), samples, median, (xs) => Math.max(...xs))
    const seconds = (performance.now() - t0) / 1000
    console.log('\n' + mainTable(rows, up.map((t) => t.id)) + '\n')
    console.log(shortfalls(rows))
    await writeResults(rows, up, facts, started, seconds, profiles)
    log(`results: ${join(flags.out, 'results-compare.md')}, .json and .svg (${Math.round(seconds / 60)} min)`)
  } finally {
    if (!interrupted()) await cleanup()
  }
}

main().catch((err: Error) => {
  console.error(`bench failed: ${err.stack ?? err.message}`)
  process.exitCode = 1
}).finally(() => delay(0))
