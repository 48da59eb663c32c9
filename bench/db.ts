// Databases on the mount against the local disk: PostgreSQL's pgbench
// (TPC-B-like and select-only, after a timed `pgbench -i`) and fio's random
// 8 KiB overwrites with an fdatasync after each (a database's page writes),
// plus how many bytes the agent writes to disk per byte fio writes. bindfs
// (a FUSE passthrough in C) runs the same workloads beside them: what any
// FUSE filesystem pays for its round trips, so the gap it leaves is Chaac's own.
// Two rows measure what bounds the mount: select-only run a second time (the
// first one after TPC-B also writes back the pages TPC-B left with new hint
// bits), and the agent's journal pattern on the local disk alone (a record
// appended in place and fdatasync'ed: the least an fsync on the mount costs).
//
//   npm run bench:db                   # 3 rounds, results into bench/results-db.md
//   npm run bench:db -- --rounds 5
//
// Each round runs every workload on every side, the order turned every
// round. PostgreSQL runs as the postgres user (initdb refuses root), one
// cluster per side, started and stopped around each side's runs, on a unix
// socket in a local folder and without TCP. Everything is taken down in a
// finally: PostgreSQL and the agent stopped by PID, the mount unmounted,
// the temp folders removed. File I/O on the mount runs in child processes.
import { chmod, chown, mkdir, mkdtemp, readFile, statfs, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { commandLine, filesystemOf, machineBasics, sourceState } from './lib/machine.ts'
import { Daemon, killChildren, log, median, onInterrupt, printLogTails, removeTempFolders, run, runBench, waitFor } from './lib/proc.ts'
import { ChaacAgent, FuseClient } from './lib/targets.ts'

const PROJECT = resolve(import.meta.dirname, '..')
const PG = '/usr/lib/postgresql/15/bin'
const GiB = 1024 ** 3

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    scale: { type: 'string', default: '20' },
    seconds: { type: 'string', default: '20' },
    'fio-seconds': { type: 'string', default: '15' },
    out: { type: 'string', default: join(PROJECT, 'bench') },
    help: { type: 'boolean', default: false }
  }
})

if (flags.help) {
  console.log(`usage: npm run bench:db -- [--rounds N] [--scale S] [--seconds T] [--fio-seconds F] [--out DIR]
  --rounds N        rounds of every workload on both sides (default 3)
  --scale S         pgbench -i -s S (default 20: 2 million accounts, about 300 MB)
  --seconds T       length of each pgbench run, pgbench -T (default 20)
  --fio-seconds F   length of each fio run (default 15)
  --out DIR         where results-db.md goes (default bench/)
Temporary folders go under CHAAC_BENCH_DIR (default /var/tmp) and /dev/shm. Run as root.`)
  process.exit(0)
}

const ROUNDS = Number(flags.rounds)
const SCALE = Number(flags.scale)
const SECONDS = Number(flags.seconds)
const FIO_SECONDS = Number(flags['fio-seconds'])
for (const [name, v] of Object.entries({ rounds: ROUNDS, scale: SCALE, seconds: SECONDS, 'fio-seconds': FIO_SECONDS })) {
  if (!Number.isInteger(v) || v < 1) throw new Error(`--${name} must be a positive integer`)
}
// A port of its own: it names the socket file and PostgreSQL's shared memory key.
const PORT = 25_000 + process.pid % 5000
const CLIENTS = ['-c', '4', '-j', '2']
const FIO_FILE_SIZE = '16m'
// An 8 KiB write's record in the data pool's journal: the bytes, its slice list and inode (src/meta/journal.ts).
const JOURNAL_RECORD = 8704
// allow_other: PostgreSQL runs as its own user on a mount root made.
const BINDFS_ARGS = ['bindfs', '-f', '-o', 'big_writes,allow_other']

type Side = 'local' | 'bindfs' | 'chaac'
const SIDES: Side[] = ['local', 'bindfs', 'chaac']
const SIDE_NAMES: Record<Side, string> = { local: 'local disk', bindfs: 'bindfs', chaac: 'Chaac mount' }

interface Workload {
  id: string
  label: string
  unit: string
  /** Less is better (a time): the ratio is then local / mount, so that below 1 is always slower. */
  lowerBetter?: boolean
  /** Only the mount has a value. */
  chaacOnly?: boolean
  /** Only the local disk has a value, compared with that workload's local value (a ceiling for its mount / local). */
  ceilingOf?: string
  aim?: number
}

const WORKLOADS: Workload[] = [
  { id: 'init', label: `pgbench -i -s ${SCALE} (load, vacuum, primary keys)`, unit: 's', lowerBetter: true },
  { id: 'tpcb', label: `pgbench TPC-B-like, -c 4 -j 2 -T ${SECONDS}`, unit: 'tps', aim: 0.5 },
  { id: 'select', label: `pgbench select-only (-S), -c 4 -j 2 -T ${SECONDS}`, unit: 'tps', aim: 0.5 },
  { id: 'select2', label: `pgbench select-only again, right after the first (PostgreSQL has no pages left to write back)`, unit: 'tps' },
  { id: 'fio', label: `fio randwrite 8 KiB + fdatasync, ${FIO_FILE_SIZE} file, ${FIO_SECONDS} s`, unit: 'IOPS', aim: 0.5 },
  {
    id: 'journal',
    label: `the agent's journal alone on the local disk: fio ${JOURNAL_RECORD} B records written in place + fdatasync, ${FIO_SECONDS} s (its IOPS as a share of the local fio row: the ceiling of the mount's fio ratio)`,
    unit: 'IOPS',
    ceilingOf: 'fio'
  },
  { id: 'amplification', label: 'bytes the agent wrote to disk per byte fio wrote (during the fio run)', unit: 'x', chaacOnly: true, lowerBetter: true },
  { id: 'tpcbBytes', label: 'bytes the agent wrote to disk per TPC-B transaction', unit: 'KB', chaacOnly: true, lowerBetter: true }
]

const samples = new Map<string, Record<Side, number[]>>(WORKLOADS.map((w) => [w.id, { local: [], bindfs: [], chaac: [] }]))

function record (id: string, side: Side, value: number): void {
  samples.get(id)?.[side].push(value)
  const w = WORKLOADS.find((x) => x.id === id) as Workload
  log(`  ${SIDE_NAMES[side].padEnd(11)} ${w.id.padEnd(13)} ${format(value)} ${w.unit}`)
}

// ------------------------------------------------------------- PostgreSQL

const asPostgres = (cmd: string, args: string[]): [string, string[]] =>
  ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', cmd, ...args]]

/** One PostgreSQL cluster in `dir` (a folder the postgres user owns), started and stopped by PID. */
class Cluster {
  private daemon?: Daemon
  constructor (readonly name: string, readonly dir: string, readonly socket: string, readonly logFile: string) {}

  get data (): string { return join(this.dir, 'data') }
  get conn (): string[] { return ['-h', this.socket, '-p', String(PORT), '-U', 'postgres'] }

  async init (): Promise<void> {
    const [cmd, args] = asPostgres(join(PG, 'initdb'), ['-D', this.data, '-A', 'trust', '-U', 'postgres'])
    await run(cmd, args, { cwd: this.socket, timeoutMs: 300_000 })
  }

  async start (): Promise<void> {
    const [cmd, args] = asPostgres(join(PG, 'postgres'), ['-D', this.data, '-p', String(PORT), '-k', this.socket, '-c', 'listen_addresses='])
    const d = new Daemon(`postgres (${this.name})`, cmd, args, this.logFile)
    this.daemon = d
    await d.start()
    await waitFor(`postgres (${this.name}) to accept connections`, async () =>
      await run(join(PG, 'pg_isready'), ['-q', ...this.conn]).then(() => true, () => false), 300_000, () => d.assertRunning())
  }

  /** SIGTERM (a smart shutdown: it checkpoints); SIGKILL if that takes over 5 minutes. */
  async stop (): Promise<void> {
    const d = this.daemon
    this.daemon = undefined
    if (d !== undefined) await d.stop(300_000)
  }

  /** Runs pgbench on this cluster; any ERROR, PANIC or FATAL in its output is a failure of the run. */
  async pgbench (args: string[], timeoutMs: number): Promise<{ out: string, ms: number }> {
    const { stdout, stderr, ms } = await run(join(PG, 'pgbench'), [...this.conn, ...args, 'postgres'], { timeoutMs })
    const out = stdout + stderr
    if (/ERROR|PANIC|FATAL/.test(out)) throw new Error(`pgbench ${args.join(' ')} reported errors:\n${out.slice(-4000)}`)
    return { out, ms }
  }
}

function tpsOf ({ out }: { out: string }): number {
  const m = /^tps = ([\d.]+) \(without initial connection time\)/m.exec(out)
  if (!m) throw new Error(`no tps in pgbench's output:\n${out}`)
  if (!/number of failed transactions: 0 /.test(out)) throw new Error(`pgbench had failed transactions:\n${out}`)
  return Number(m[1])
}

// ------------------------------------------------------------------ agent

/** Bytes a process caused to be written to block devices so far (/proc/PID/io), and those cancelled by a truncate or delete before writeback. */
async function ioOf (pid: number): Promise<{ written: number, cancelled: number }> {
  const io = await readFile(`/proc/${pid}/io`, 'utf8')
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)`, 'm').exec(io)?.[1])
  return { written: field('write_bytes'), cancelled: field('cancelled_write_bytes') }
}

async function agentBytesDuring<T> (agent: ChaacAgent, work: () => Promise<T>): Promise<{ result: T, bytes: number }> {
  const pid = agent.daemon?.pid
  if (pid === undefined) throw new Error('the agent is not running')
  const before = await ioOf(pid)
  const result = await work()
  const after = await ioOf(pid)
  return { result, bytes: (after.written - before.written) - (after.cancelled - before.cancelled) }
}

// -------------------------------------------------------------- workloads

interface Ctx { agent: ChaacAgent, clusters: Record<Side, Cluster>, dirs: Record<Side, string> }

async function pgbenchRuns (side: Side, ctx: Ctx): Promise<void> {
  const c = ctx.clusters[side]
  await c.start()
  try {
    const init = await c.pgbench(['-i', '-s', String(SCALE), '-q'], 1_800_000)
    record('init', side, init.ms / 1000)
    const timeoutMs = (SECONDS + 300) * 1000
    if (side === 'chaac') {
      const { result, bytes } = await agentBytesDuring(ctx.agent, async () => await c.pgbench([...CLIENTS, '-T', String(SECONDS)], timeoutMs))
      const tps = tpsOf(result)
      record('tpcb', side, tps)
      record('tpcbBytes', side, bytes / (tps * SECONDS) / 1e3)
    } else {
      record('tpcb', side, tpsOf(await c.pgbench([...CLIENTS, '-T', String(SECONDS)], timeoutMs)))
    }
    record('select', side, tpsOf(await c.pgbench(['-S', ...CLIENTS, '-T', String(SECONDS)], timeoutMs)))
    record('select2', side, tpsOf(await c.pgbench(['-S', ...CLIENTS, '-T', String(SECONDS)], timeoutMs)))
  } finally {
    await c.stop()
  }
}

// A file of `size` written out beforehand, so that a timed run on it is overwrites alone.
async function layOut (file: string, size: string): Promise<void> {
  await run('fio', ['--name=layout', `--filename=${file}`, `--size=${size}`, '--rw=write', '--bs=1M', '--create_only=1', '--output=/dev/null'])
}

// fio writes of `bs` bytes (`rw`: randwrite or write), each followed by fdatasync, for FIO_SECONDS.
async function fdatasyncWrites (name: string, file: string, size: string, rw: string, bs: string): Promise<{ iops: number, bytes: number }> {
  const { stdout } = await run('fio', [`--name=${name}`, `--filename=${file}`, `--rw=${rw}`, `--bs=${bs}`, '--fdatasync=1',
    `--size=${size}`, `--runtime=${FIO_SECONDS}`, '--time_based', '--ioengine=psync', '--output-format=json'],
  { timeoutMs: (FIO_SECONDS + 300) * 1000 })
  const write = (JSON.parse(stdout) as { jobs: Array<{ write: { iops: number, io_bytes: number } }> }).jobs[0].write
  return { iops: write.iops, bytes: write.io_bytes }
}

async function fioRun (side: Side, ctx: Ctx): Promise<void> {
  const file = join(ctx.dirs[side], 'fio.dat')
  // Laid out outside the measured run: the agent's bytes are those of the overwrites alone.
  await layOut(file, FIO_FILE_SIZE)
  const job = async (): Promise<{ iops: number, bytes: number }> => await fdatasyncWrites('randwrite', file, FIO_FILE_SIZE, 'randwrite', '8k')
  if (side === 'chaac') {
    const { result, bytes } = await agentBytesDuring(ctx.agent, job)
    record('fio', side, result.iops)
    record('amplification', side, bytes / result.bytes)
  } else {
    record('fio', side, (await job()).iops)
  }
}

// The journal's pattern without FUSE or the agent: records appended one
// after another into a file laid out beforehand, each made durable.
async function journalRun (dir: string): Promise<void> {
  const file = join(dir, 'journal.dat')
  await layOut(file, '256m')
  record('journal', 'local', (await fdatasyncWrites('journal', file, '256m', 'write', String(JOURNAL_RECORD))).iops)
}

// ---------------------------------------------------------------- results

function format (x: number): string {
  if (!Number.isFinite(x)) return '-'
  return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(x >= 10 ? 1 : 2)
}

function formatRatio (r: number): string {
  return Number.isFinite(r) ? r.toFixed(r < 0.1 ? 3 : 2) : '-'
}

/** The mount as a share of the local disk's speed: mount / local, or local / mount for a time. */
function ratio (w: Workload, local: number, chaac: number): number {
  return w.lowerBetter ? local / chaac : chaac / local
}

function table (): string {
  const lines = [
    '| workload | unit | local disk | bindfs | Chaac mount | bindfs / local | mount / local (per round) | mount / local (medians) | aim |',
    '| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |'
  ]
  for (const w of WORKLOADS) {
    const s = samples.get(w.id) as Record<Side, number[]>
    if (w.ceilingOf !== undefined) {
      const of = samples.get(w.ceilingOf) as Record<Side, number[]>
      const shares = s.local.map((v, i) => v / of.local[i])
      lines.push(`| ${w.label} | ${w.unit} | ${format(median(s.local))} | - | - | - | ${shares.map(formatRatio).join(', ')} | ${formatRatio(median(shares))} | ceiling |`)
      continue
    }
    const [local, bindfs, chaac] = SIDES.map((side) => w.chaacOnly && side !== 'chaac' ? NaN : median(s[side]))
    const perRound = w.chaacOnly ? '-' : s.chaac.map((c, i) => formatRatio(ratio(w, s.local[i], c))).join(', ')
    const r = w.chaacOnly ? NaN : ratio(w, local, chaac)
    const aim = w.aim === undefined ? '' : `>= ${w.aim.toFixed(2)}: ${r >= w.aim ? 'met' : '**MISSED**'}`
    lines.push(`| ${w.label} | ${w.unit} | ${format(local)} | ${format(bindfs)} | ${format(chaac)} | ${w.chaacOnly ? '-' : formatRatio(ratio(w, local, bindfs))} | ${perRound} | ${formatRatio(r)} | ${aim} |`)
  }
  return lines.join('\n')
}

function roundsTable (): string {
  const lines = [`| workload | ${SIDES.map((side) => SIDE_NAMES[side]).join(' | ')} |`, `| --- |${SIDES.map(() => ' --- |').join('')}`]
  for (const w of WORKLOADS) {
    const s = samples.get(w.id) as Record<Side, number[]>
    lines.push(`| ${w.label} (${w.unit}) | ${SIDES.map((side) => s[side].map(format).join(', ') || '-').join(' | ')} |`)
  }
  return lines.join('\n')
}

async function loadNow (): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
}

async function writeResults (facts: Record<string, string>, agentArgs: string, started: Date, seconds: number): Promise<void> {
  const md = `# Databases: the Chaac mount against the local disk (and bindfs, the FUSE floor)

Command: \`${commandLine('bench/db.ts')}\`
Date: ${started.toISOString()} (${Math.round(seconds)} s), ${ROUNDS} round${ROUNDS === 1 ? '' : 's'}${ROUNDS < 3 ? ' (too few for a median: a check that the bench works, not a measurement to quote)' : ''}
Machine:
${Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`).join('\n')}

The local disk is a plain folder on the filesystem of the agent's disk-level bin. Agent: \`chaac ${agentArgs}\`.
bindfs: \`${BINDFS_ARGS.join(' ')} <folder on the same filesystem> <mount>\` (Debian bindfs on libfuse 2, a FUSE passthrough
in C): what a FUSE filesystem that does nothing but forward each request costs; the share of the local disk it reaches
bounds what any FUSE filesystem can reach here, and the gap from it to Chaac is Chaac's own.
PostgreSQL 15 (Debian), default settings (fsync on, synchronous_commit on, shared_buffers 128 MB), one cluster per side,
on a unix socket only; it is started before and stopped (a checkpoint) after each side's pgbench runs. Each round runs
every workload on every side, the order turned every round. Medians over the rounds; KB = 10^3 bytes.

${table()}

- pgbench: \`pgbench -i -s ${SCALE} -q\` (timed, wall clock), then \`pgbench -c 4 -j 2 -T ${SECONDS}\` and \`pgbench -S -c 4 -j 2 -T ${SECONDS}\`;
  tps without the initial connection time. Any ERROR, PANIC, FATAL or failed transaction stops the bench.
- fio: \`fio --rw=randwrite --bs=8k --fdatasync=1 --size=${FIO_FILE_SIZE} --runtime=${FIO_SECONDS} --time_based --ioengine=psync\`
  on a file laid out beforehand (\`--create_only=1\`), so the run is overwrites only.
- The journal alone: \`fio --rw=write --bs=${JOURNAL_RECORD} --fdatasync=1 --size=256m --runtime=${FIO_SECONDS} --time_based --ioengine=psync\`
  on a laid-out file in the local folder, as the agent appends an 8 KiB write's record to its journal at an fsync. An fsync
  on the mount costs at least this plus two FUSE round trips (the write, the fsync) and the agent's own work, so its share of
  the local fio row bounds the mount's fio ratio even for an agent that took no time at all.
- Select-only twice: the first run after TPC-B also makes PostgreSQL write back the pages whose hint bits it sets (thousands
  of 8 KiB writes a second for its first seconds, each a FUSE round trip); the second run has none left.
- Bytes the agent wrote: the change of \`write_bytes\` minus \`cancelled_write_bytes\` in \`/proc/<agent pid>/io\` over the run
  (the agent's /metrics has no such counter): what the agent's writes sent to the block device, i.e. the ball files of its
  disk-level bin plus its LevelDB and journal. Copies in the memory-level bin (tmpfs) do not count; with \`--cloud none\` there
  are no cloud tier copies. Divided by fio's own \`io_bytes\` (its 8 KiB writes) for the amplification; by the transactions
  pgbench reported for the TPC-B figure.

## Every round

${roundsTable()}
`
  await mkdir(flags.out, { recursive: true })
  await writeFile(join(flags.out, 'results-db.md'), md)
}

// ------------------------------------------------------------------- main

async function preflight (root: string): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: PostgreSQL runs as the postgres user, and the agent mounts FUSE')
  for (const [tool, args] of [['fio', ['--version']], [join(PG, 'pgbench'), ['--version']], ['setpriv', ['--version']], ['bindfs', ['--version']]] as const) {
    await run(tool, [...args]).catch(() => { throw new Error(`${tool} is missing: npm run bench:db installs it (scripts/ensure-deps.mjs --bench)`) })
  }
  await run('id', ['postgres']).catch(() => { throw new Error('no postgres user: npm run bench:db installs postgresql') })
  const { bavail, bsize } = await statfs(root)
  if (bavail * bsize < 8 * GiB) throw new Error(`${root}: needs 8 GiB free`)
}

async function main (): Promise<void> {
  const started = new Date()
  const t0 = performance.now()
  const root = await mkdtemp(join(resolve(process.env.CHAAC_BENCH_DIR ?? '/var/tmp'), 'chaac-bench-db-'))
  const shm = await mkdtemp('/dev/shm/chaac-bench-db-')
  const socket = join(root, 'socket')
  const agent = new ChaacAgent(join(root, 'data'), join(root, 'mnt'), join(shm, 'mem-bin'), '256MiB', join(root, 'logs', 'agent.log'))
  const bindfs = new FuseClient('bindfs', join(root, 'bindfs'), 'bindfs', [...BINDFS_ARGS.slice(1), join(root, 'bindfs-data'), join(root, 'bindfs')],
    join(root, 'logs', 'bindfs.log'))
  const dirs: Record<Side, string> = { local: join(root, 'local'), bindfs: bindfs.mount, chaac: agent.mount }
  const clusters = Object.fromEntries(SIDES.map((side) =>
    [side, new Cluster(SIDE_NAMES[side], join(dirs[side], 'pg'), socket, join(root, 'logs', `postgres-${side}.log`))])) as Record<Side, Cluster>
  const cleanup = async (): Promise<void> => {
    killChildren()
    for (const c of Object.values(clusters)) await c.stop().catch((err: Error) => log(`${c.name}: ${err.message}`))
    await bindfs.unmountIt().catch((err: Error) => log(`bindfs: ${err.message}`))
    if (agent.daemon !== undefined) await agent.daemon.stop(60_000).catch((err: Error) => log(`agent: ${err.message}`))
    await agent.stop().catch((err: Error) => log(`agent: ${err.message}`))
    await removeTempFolders(root, [shm])
  }
  const interrupted = onInterrupt('stopping PostgreSQL and the agent, removing temporary folders', cleanup)

  try {
    await preflight(root)
    const pg = (await run('id', ['-u', 'postgres'])).stdout.trim()
    const pgGid = (await run('id', ['-g', 'postgres'])).stdout.trim()
    // The postgres user walks to both clusters through the run's folder (0700 from mkdtemp).
    await chmod(root, 0o711)
    for (const dir of [join(root, 'logs'), socket, agent.memBin, clusters.local.dir, join(root, 'bindfs-data'), bindfs.mount]) await mkdir(dir, { recursive: true })
    for (const dir of [socket, clusters.local.dir]) await chown(dir, Number(pg), Number(pgGid))
    const facts: Record<string, string> = {
      ...await machineBasics(),
      filesystem: `${await filesystemOf(root)} (local folder and the agent's disk bin)`,
      postgres: (await run(join(PG, 'postgres'), ['--version'])).stdout.trim(),
      fio: (await run('fio', ['--version'])).stdout.trim(),
      bindfs: (await run('bindfs', ['--version'])).stdout.trim(),
      commit: await sourceState(['src']),
      'load at start': await loadNow()
    }
    log(`folders under ${root} and ${shm}; load ${facts['load at start']}`)
    await agent.start()
    await bindfs.mountIt()
    for (const c of [clusters.bindfs, clusters.chaac]) {
      await run('mkdir', [c.dir])
      await run('chown', ['postgres:postgres', c.dir])
    }
    for (const c of Object.values(clusters)) await c.init()
    const ctx: Ctx = { agent, clusters, dirs }
    for (let round = 1; round <= ROUNDS; round++) {
      const order = SIDES.map((_, i) => SIDES[(i + round - 1) % SIDES.length])
      log(`round ${round}/${ROUNDS}: ${order.map((s) => SIDE_NAMES[s]).join(', ')}`)
      for (const side of order) await pgbenchRuns(side, ctx)
      for (const side of order) await fioRun(side, ctx)
      await journalRun(dirs.local)
    }
    facts['load at end'] = await loadNow()
    const seconds = (performance.now() - t0) / 1000
    const agentArgs = agent.args.join(' ').replaceAll(root, '<tmp>').replace(agent.memBin, '<tmpfs dir>')
    console.log('\n' + table() + '\n')
    await writeResults(facts, agentArgs, started, seconds)
    log(`results: ${join(flags.out, 'results-db.md')} (${Math.round(seconds)} s)`)
  } catch (err) {
    await printLogTails(['agent.log', 'bindfs.log', ...SIDES.map((side) => `postgres-${side}.log`)].map((f) => ({ name: f, file: join(root, 'logs', f) })))
    throw err
  } finally {
    if (!interrupted()) await cleanup()
  }
}

runBench(main)
