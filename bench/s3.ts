// The cloud tier on S3-compatible object storage, against the store itself:
// a cold sequential read of a file through the chaac mount, served from a
// Ceph RADOS Gateway, side by side with reading the same objects with the AWS
// SDK directly (the limit for this store); and the upload throughput of the
// `through` and `async` write policies.
//
//   npm run bench:s3                          # 3 rounds of 1 GiB, results into bench/results-s3.*
//   npm run bench:s3 -- --rounds 5 --size 512MiB
//
// One Ceph (monitor, OSD on memstore, gateway: scripts/lib/ceph.ts) and two
// agents, each a process of its own with its own write policy and prefix in
// one bucket. Each round: fresh random bytes written through both agents; the
// `through` agent's file then read cold (the agent restarted with its bins
// removed, kernel caches dropped) through the mount and, interleaved, straight
// from its objects with the SDK (bench/lib/s3-read.ts); then both files are
// deleted and their objects collected, so the store does not fill and its
// clean-up does not run into the next round. All I/O on the mounts runs in
// child processes (dd, rm). Everything is taken down in a finally and on
// Ctrl-C: agents stopped by PID, mounts unmounted, Ceph killed, temporary
// folders removed.
import { mkdir, readFile, rm, statfs, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { startCeph, type CephGateway } from '../scripts/lib/ceph.ts'
import { parseSize } from '../src/units.ts'
import { changedFiles, commandLine, filesystemOf, machineBasics, sourceSnapshot, sourceState, type SourceSnapshot } from './lib/machine.ts'
import { cpuSecondsOf, ddRate, dropKernelCaches, killChildren, log, makeTempFolders, median, onInterrupt, printLogTails, removeTempFolders, run, runBench, waitFor, waitQuiet, writeRandomFile } from './lib/proc.ts'
import { format, formatRatio } from './lib/report.ts'
import { ChaacAgent } from './lib/targets.ts'

const PROJECT = resolve(import.meta.dirname, '..')
const S3_READ = join(PROJECT, 'bench', 'lib', 's3-read.ts')
const GiB = 1024 ** 3
const BUCKET = 'bench'
const FILE = 'f'
/** The issue's aim: the mount reads at least this share of the direct SDK throughput. */
const AIM = 0.8
/** Short, so that a round's objects are deleted before the next round starts. */
const GC_GRACE_SECONDS = 2
const POLICIES = ['through', 'async'] as const
type Policy = typeof POLICIES[number]
const SOURCE_PATHS = ['src', 'native']
const NODE_ARGS = (process.env.CHAAC_BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
// Below this share of a core per agent, the agents are done with a step's
// background work. An agent under --cpu-prof idles at about 10% (its sampler).
const QUIET = NODE_ARGS.length > 0 ? 0.15 : 0.03

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    size: { type: 'string', default: '1GiB' },
    out: { type: 'string', default: join(PROJECT, 'bench') },
    help: { type: 'boolean', default: false }
  }
})

if (flags.help) {
  console.log(`usage: npm run bench:s3 -- [--rounds N] [--size SIZE] [--out DIR]
  --rounds N   rounds (default 3); the table shows medians
  --size SIZE  the file written and read each round (default 1GiB)
  --out DIR    where results-s3.{md,json} go (default bench/)
Run as root (it drops kernel caches, mounts FUSE and runs Ceph); needs the Debian
packages ceph-mon, ceph-osd, radosgw and fio (npm run bench:s3 installs them).
Temporary folders go under CHAAC_BENCH_DIR (default: the system temp folder) and /dev/shm.
CHAAC_BENCH_AGENT_NODE_ARGS go on the agents' node command line, e.g.
'--cpu-prof --cpu-prof-dir=/tmp/prof' (one profile per agent process).`)
  process.exit(0)
}

const ROUNDS = Number(flags.rounds)
const SIZE = parseSize(flags.size)
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error('--rounds must be a positive integer')
const SIZE_LABEL = SIZE % GiB === 0 ? `${SIZE / GiB} GiB` : `${(SIZE / 2 ** 20).toFixed(0)} MiB`
// Both levels' balls of one file fit, whatever --size says.
const DISK_BIN = `${Math.max(4, Math.ceil(2 * SIZE / GiB))}GiB`
// A round's two files at once, the previous round's while the gateway frees them, and room to spare.
const MEMSTORE = Math.max(8 * GiB, 3 * SIZE + 2 * GiB)

// ---------------------------------------------------------------- samples

interface Measure { id: string, label: string, unit: string }

const MEASURES: Measure[] = [
  { id: 'readChaac', label: `chaac mount: \`dd if=<mount>/${FILE} of=/dev/null bs=1M\``, unit: 'MB/s' },
  { id: 'readSdk', label: 'SDK directly: GetObject of each ball in file order, one at a time, bodies streamed to nowhere', unit: 'MB/s' },
  { id: 'writeThrough', label: '`--write through`: `dd of=<mount>/f bs=1M` until it exits (close returns once every ball is an object)', unit: 'MB/s' },
  { id: 'writeAsync', label: '`--write async`: the same dd until it exits (balls in the bins, uploads queued)', unit: 'MB/s' },
  { id: 'uploadAsync', label: '`--write async`: from the start of the dd until `/status` shows `cloud.uploadQueue` 0', unit: 'MB/s' },
  { id: 'cpuAgent', label: 'the agent (every thread) during its cold read', unit: '% of a core' },
  { id: 'cpuSdk', label: 'the SDK reader process during its read', unit: '% of a core' },
  { id: 'cpuCephChaac', label: 'Ceph (OSD, gateway, monitor) during the mount\'s read', unit: '% of a core' },
  { id: 'cpuCephSdk', label: 'Ceph (OSD, gateway, monitor) during the SDK read', unit: '% of a core' }
]

const samples = new Map<string, number[]>(MEASURES.map((m) => [m.id, []]))
/** Per round: which read went first, and what the agent's counters say about each write and read. */
const roundNotes: string[] = []
const oddities: string[] = []

function record (id: string, value: number, unit: string): void {
  samples.get(id)?.push(value)
  log(`round ${samples.get(id)?.length}/${ROUNDS}  ${id.padEnd(12)} ${format(value)} ${unit}`)
}

// ---------------------------------------------------------------- steps

interface Ctx {
  ceph: CephGateway
  agents: Record<Policy, ChaacAgent>
  source: string
  keysFile: string
}

function s3Env (ceph: CephGateway): NodeJS.ProcessEnv {
  return { CHAAC_S3_ACCESS_KEY: ceph.accessKeyId, CHAAC_S3_SECRET_KEY: ceph.secretAccessKey, CHAAC_S3_REGION: ceph.region }
}

interface BallLocation { id: string | null, cloud: boolean }

async function ballsOf (agent: ChaacAgent): Promise<BallLocation[]> {
  return (await agent.json(`/api/v1/location?path=/${FILE}`)).balls
}

function pidOf (agent: ChaacAgent): number {
  const pid = agent.daemon?.pid
  if (pid === undefined) throw new Error('the agent is not running')
  return pid
}

async function writeThrough (ctx: Ctx): Promise<string> {
  const agent = ctx.agents.through
  const { stderr } = await run('dd', [`if=${ctx.source}`, `of=${join(agent.mount, FILE)}`, 'bs=1M'])
  record('writeThrough', ddRate(stderr, SIZE), 'MB/s')
  const balls = await ballsOf(agent)
  const missing = balls.filter((b) => b.id !== null && !b.cloud).length
  if (missing > 0) oddities.push(`round ${roundNotes.length + 1}: ${missing} of ${balls.length} balls of the \`through\` file were not marked in the cloud tier when close returned`)
  return `through: ${balls.length - missing}/${balls.length} balls in the store at close`
}

async function writeAsync (ctx: Ctx): Promise<string> {
  const agent = ctx.agents.async
  const t0 = performance.now()
  const { stderr } = await run('dd', [`if=${ctx.source}`, `of=${join(agent.mount, FILE)}`, 'bs=1M'])
  record('writeAsync', ddRate(stderr, SIZE), 'MB/s')
  const queued = (await agent.json('/status')).cloud.uploadQueue as number
  await waitFor('the upload queue to drain', async () => (await agent.json('/status')).cloud.uploadQueue === 0, 1_800_000)
  record('uploadAsync', SIZE / ((performance.now() - t0) / 1000) / 1e6, 'MB/s')
  return `async: ${queued} balls queued when close returned`
}

/** Stops the agent, removes both of its bins, starts it again: every ball must come from the store. */
async function restartCold (agent: ChaacAgent): Promise<void> {
  await agent.stop()
  for (const dir of [agent.memBin, agent.diskBin]) await rm(dir, { recursive: true, force: true })
  await agent.start()
}

async function readChaac (ctx: Ctx, balls: number): Promise<string> {
  const agent = ctx.agents.through
  const pid = pidOf(agent)
  const before = (await agent.json('/status')).reads
  const cpu0 = await cpuSecondsOf([pid])
  const ceph0 = await cpuSecondsOf(ctx.ceph.pids)
  const { stderr, ms } = await run('dd', [`if=${join(agent.mount, FILE)}`, 'of=/dev/null', 'bs=1M'])
  const cpu = await cpuSecondsOf([pid]) - cpu0
  const ceph = await cpuSecondsOf(ctx.ceph.pids) - ceph0
  record('readChaac', ddRate(stderr, SIZE), 'MB/s')
  record('cpuAgent', cpu / (ms / 1000) * 100, '% of a core')
  record('cpuCephChaac', ceph / (ms / 1000) * 100, '% of a core')
  const after = (await agent.json('/status')).reads
  // Counted per FUSE read and ball: the reads that wait for a ball's fetch are
  // misses too, those served from its fetched bytes local hits. A cold read
  // has at least one miss per ball.
  const misses = after.miss - before.miss
  const hits = after.localHit - before.localHit
  if (misses < balls) oddities.push(`round ${roundNotes.length + 1}: the cold read counted ${misses} cache misses for ${balls} balls: not every ball came from the store`)
  return `${misses} cache misses and ${hits} local hits over ${balls} balls`
}

async function readSdk (ctx: Ctx, balls: number): Promise<void> {
  // Over the reader's whole life, but Ceph idles while node starts.
  const ceph0 = await cpuSecondsOf(ctx.ceph.pids)
  const { stdout } = await run(process.execPath, ['--import', 'tsx', S3_READ, ctx.ceph.endpoint, BUCKET, ctx.keysFile],
    { cwd: PROJECT, env: { ...process.env, ...s3Env(ctx.ceph) } })
  const out = JSON.parse(stdout) as { objects: number, bytes: number, ms: number, cpuMs: number }
  if (out.objects !== balls || out.bytes < SIZE) throw new Error(`the SDK reader got ${out.objects} objects of ${out.bytes} bytes`)
  record('readSdk', SIZE / (out.ms / 1000) / 1e6, 'MB/s')
  record('cpuSdk', out.cpuMs / out.ms * 100, '% of a core')
  record('cpuCephSdk', (await cpuSecondsOf(ctx.ceph.pids) - ceph0) / (out.ms / 1000) * 100, '% of a core')
}

async function oneRound (round: number, ctx: Ctx): Promise<void> {
  const { through } = ctx.agents
  const settle = async (): Promise<void> => await waitQuiet(POLICIES.map((p) => pidOf(ctx.agents[p])), QUIET * POLICIES.length)
  const notes: string[] = []
  // Alternate which goes first, so that neither always meets the other's aftermath.
  const first = round % 2 === 1
  await writeRandomFile(ctx.source, SIZE)
  for (const policy of first ? POLICIES : [...POLICIES].reverse()) {
    notes.push(policy === 'through' ? await writeThrough(ctx) : await writeAsync(ctx))
    await settle()
  }
  await rm(ctx.source, { force: true })

  const balls = (await ballsOf(through)).filter((b) => b.id !== null)
  await writeFile(ctx.keysFile, JSON.stringify(balls.map((b) => `through/${b.id as string}`)))
  // The agent stays up during the SDK read too, so both reads see the same machine.
  await restartCold(through)
  await settle()
  const reads = first ? ['sdk', 'chaac'] : ['chaac', 'sdk']
  for (const side of reads) {
    await dropKernelCaches()
    if (side === 'sdk') await readSdk(ctx, balls.length)
    else notes.push(`cold read: ${await readChaac(ctx, balls.length)}`)
    // The agent fills its bins in the background after a read.
    await settle()
  }
  const n = samples.get('readChaac')?.length ?? 0
  const ratio = (samples.get('readChaac')?.[n - 1] ?? NaN) / (samples.get('readSdk')?.[n - 1] ?? NaN)
  log(`round ${round}/${ROUNDS}  read chaac/SDK ${formatRatio(ratio)}`)
  roundNotes.push(`round ${round}: writes ${first ? 'through, async' : 'async, through'}; reads ${reads.join(', ')}; ${notes.join('; ')}`)

  // The next round starts on an empty store: files deleted, their objects
  // deleted by the agents after the grace period, and the gateway's own
  // garbage (the objects' RADOS tails) processed now rather than during the
  // next measurement.
  for (const p of POLICIES) await run('rm', [join(ctx.agents[p].mount, FILE)])
  for (const p of POLICIES) {
    await waitFor(`the ${p} agent to delete the round's objects`, async () => (await ctx.agents[p].json('/status')).cloud.garbage === 0, 300_000)
  }
  await run('radosgw-admin', ['-c', join(ctx.ceph.dir, 'ceph.conf'), 'gc', 'process', '--include-all'], { timeoutMs: 300_000 })
  await settle()
}

// ---------------------------------------------------------------- results

interface Summary { id: string, label: string, unit: string, median: number, rounds: number[] }

function summarize (): { rows: Summary[], ratio: number, ratios: number[], met: boolean } {
  const rows = MEASURES.map((m) => ({ ...m, median: median(samples.get(m.id) ?? []), rounds: samples.get(m.id) ?? [] }))
  const chaac = samples.get('readChaac') ?? []
  const sdk = samples.get('readSdk') ?? []
  const ratio = median(chaac) / median(sdk)
  return { rows, ratio, ratios: chaac.map((c, i) => c / sdk[i]), met: ratio >= AIM }
}

function tableRows (rows: Summary[], ids: string[], unit = true): string {
  return rows.filter((r) => ids.includes(r.id))
    .map((r) => `| ${r.label} |${unit ? ` ${r.unit} |` : ''} ${format(r.median)} | ${r.rounds.map(format).join(', ')} |`).join('\n')
}

function markdown (s: ReturnType<typeof summarize>, facts: Record<string, string>, started: Date, seconds: number, agentArgs: string): string {
  const verdict = s.met ? 'met' : '**MISSED**'
  return `# The cloud tier on S3: the chaac mount against the store itself

Command: \`${commandLine('bench/s3.ts')}\` (as root)
Date: ${started.toISOString()} (${Math.round(seconds / 60)} min)
Machine:
${Object.entries(facts).map(([k, v]) => `- ${k}: ${v}`).join('\n')}

One agent per write policy: \`chaac ${agentArgs}\`, POLICY \`through\` or \`async\`
(temporary folders replaced by their role; S3 keys in CHAAC_S3_ACCESS_KEY and CHAAC_S3_SECRET_KEY).
${ROUNDS} round${ROUNDS === 1 ? '' : 's'} of ${SIZE_LABEL}; medians, then every round in order. MB = 10^6 bytes of file data.

## Cold sequential read of ${SIZE_LABEL}

| reader | MB/s (median) | every round |
| --- | ---: | --- |
${tableRows(s.rows, ['readChaac', 'readSdk'], false)}
| **chaac / SDK** | **${formatRatio(s.ratio)}** | ${s.ratios.map(formatRatio).join(', ')} |

Aim: the mount at least ${AIM.toFixed(2)} of the direct SDK throughput: ${verdict} (${formatRatio(s.ratio)}, the ratio of the medians).

Both reads of a round see the same machine: the \`through\` agent is restarted with both of its bins removed
(memory and disk level), and stays up, idle, while the SDK reads; before each read \`sync; echo 3 > /proc/sys/vm/drop_caches\`;
odd rounds read with the SDK first, even rounds through the mount first; after each read the bench waits until the
agents are idle again (the agent copies fetched balls into its bins in the background). The SDK reader
(\`bench/lib/s3-read.ts\`, its own node process, the agent's client settings: path-style, checksums only where required)
gets the objects \`through/<ball id>\` of the file (from \`GET /api/v1/location\`) one after the other, in file order,
and counts the file's bytes over the time of its GETs (its client set up and connected before).
The mount's rate is dd's own (it stops after the close).

## Writes of ${SIZE_LABEL}

| what is timed | MB/s (median) | every round |
| --- | ---: | --- |
${tableRows(s.rows, ['writeThrough', 'writeAsync', 'uploadAsync'], false)}

The source is ${SIZE_LABEL} of fresh random bytes on the local disk each round (fio), so no ball of an earlier round is reused;
the same source goes to both agents (their prefixes differ, so each uploads every ball). Writes alternate which policy goes first.
After a round both files are deleted, the agents delete the objects (\`--cloud-gc-grace ${GC_GRACE_SECONDS}\`) and
\`radosgw-admin gc process --include-all\` frees the gateway's garbage before the next round.

## CPU

| process | unit | median | every round |
| --- | --- | ---: | --- |
${tableRows(s.rows, ['cpuAgent', 'cpuSdk', 'cpuCephChaac', 'cpuCephSdk'])}

The agent and Ceph: \`/proc/PID/stat\` (utime + stime, every thread) over the dd; the SDK reader: \`process.cpuUsage()\` over its GETs;
Ceph during the SDK read: over the reader process's life (Ceph idles while node starts) divided by the time of the GETs.
The machine has ${facts.nproc} cores: 100% is one of them.

## Every round

${roundNotes.map((n) => `- ${n}`).join('\n')}
${oddities.length > 0 ? `\n**Odd in this run**:\n\n${oddities.map((o) => `- ${o}`).join('\n')}\n` : ''}`
}

async function machineFacts (root: string, ceph: CephGateway, source: SourceSnapshot): Promise<Record<string, string>> {
  const firstLine = async (cmd: string, args: string[]): Promise<string> =>
    await run(cmd, args).then((r) => (r.stdout + r.stderr).split('\n')[0].trim(), () => '?')
  const sdk = JSON.parse(await readFile(join(PROJECT, 'node_modules', '@aws-sdk', 'client-s3', 'package.json'), 'utf8')) as { version: string }
  return {
    ...await machineBasics(),
    filesystem: `${await filesystemOf(root)} (the agents' disk bins, the write source)`,
    store: `${await firstLine('ceph-osd', ['--version'])}: one monitor, one OSD on memstore (${MEMSTORE / GiB} GiB, objects in RAM), ` +
      `the RADOS Gateway (beast) at ${ceph.endpoint}, all on loopback (scripts/lib/ceph.ts)`,
    sdk: `@aws-sdk/client-s3 ${sdk.version}`,
    fio: await firstLine('fio', ['--version']),
    commit: await sourceState(SOURCE_PATHS),
    'source fingerprint': source.fingerprint
  }
}

async function loadNow (): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
}

// --------------------------------------------------------------------- main

async function preflight (root: string): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('run as root: the bench drops kernel caches, mounts FUSE and runs Ceph')
  for (const tool of ['dd', 'fio', 'fusermount', 'ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool', 'setpriv']) {
    await run('which', [tool]).catch(() => { throw new Error(`${tool} is missing: npm run bench:s3 installs it (scripts/ensure-deps.mjs --bench)`) })
  }
  const { bavail, bsize } = await statfs(root)
  const disk = 4 * SIZE + GiB
  if (bavail * bsize < disk) throw new Error(`${root}: needs ${(disk / GiB).toFixed(1)} GiB free`)
  const available = Number(/^MemAvailable:\s+(\d+)/m.exec(await readFile('/proc/meminfo', 'utf8'))?.[1] ?? 0) * 1024
  const ram = 3 * SIZE + 2 * GiB
  if (available < ram) throw new Error(`needs ${(ram / GiB).toFixed(1)} GiB of available memory (the store keeps its objects in RAM); has ${(available / GiB).toFixed(1)}`)
}

async function main (): Promise<void> {
  const started = new Date()
  const t0 = performance.now()
  const { root, shm } = await makeTempFolders('chaac-s3-')
  let ceph: CephGateway | undefined
  const agents: ChaacAgent[] = []
  const cleanup = async (): Promise<void> => {
    killChildren()
    for (const agent of agents) await agent.stop().catch((err: Error) => log(`${agent.mount}: stop: ${err.message}`))
    await ceph?.stop().catch((err: Error) => log(`ceph: stop: ${err.message}`))
    await removeTempFolders(root, [shm])
  }
  const interrupted = onInterrupt('stopping the agents and Ceph, removing temporary folders', cleanup)

  try {
    await preflight(root)
    log(`temporary folders: ${root} and ${shm}`)
    ceph = await startCeph({ dir: join(root, 'ceph'), memstoreBytes: MEMSTORE, timeoutMs: 180_000, log })
    const source = await sourceSnapshot(SOURCE_PATHS)
    const facts = await machineFacts(root, ceph, source)
    facts['load at start'] = await loadNow()
    log(`machine: ${facts.nproc} cores, ${facts.memory}; load ${facts['load at start']}; source ${facts.commit} (${facts['source fingerprint']})`)
    const byPolicy = {} as Record<Policy, ChaacAgent>
    for (const policy of POLICIES) {
      const agent = new ChaacAgent(join(root, policy, 'data'), join(root, policy, 'mnt'), join(shm, policy), '256MiB',
        join(root, 'logs', `agent-${policy}.log`), {
          diskBinSize: DISK_BIN,
          cloud: ['--cloud', `s3://${BUCKET}/${policy}`, '--s3-endpoint', ceph.endpoint, '--write', policy, '--cloud-gc-grace', String(GC_GRACE_SECONDS)],
          env: s3Env(ceph)
        })
      agents.push(agent)
      byPolicy[policy] = agent
      await agent.start(NODE_ARGS)
      log(`${policy} agent: pid ${pidOf(agent)}, ${agent.mount}, ${agent.url}`)
    }
    const ctx: Ctx = { ceph, agents: byPolicy, source: join(root, 'source.bin'), keysFile: join(root, 'keys.json') }
    for (let round = 1; round <= ROUNDS; round++) await oneRound(round, ctx)

    facts['load at end'] = await loadNow()
    // The agents restart every round: a change of source meanwhile would mix two versions.
    const sourceAtEnd = await sourceSnapshot(SOURCE_PATHS)
    const changed = changedFiles(source, sourceAtEnd)
    if (changed.length > 0) {
      facts['source at end (changed during the run)'] = `${await sourceState(SOURCE_PATHS)} (${sourceAtEnd.fingerprint})`
      oddities.push(`source changed during the run, so rounds may have run different versions of it: ${changed.join(', ')}`)
    }
    const summary = summarize()
    const seconds = (performance.now() - t0) / 1000
    const agentArgs = agents[0].args.join(' ').replaceAll(root, '<tmp>').replace(agents[0].memBin, '<tmpfs dir>')
      .replaceAll('through', 'POLICY').replace(ceph.endpoint, '<gateway>')
    const md = markdown(summary, facts, started, seconds, agentArgs)
    await mkdir(flags.out, { recursive: true })
    await writeFile(join(flags.out, 'results-s3.md'), md)
    const json = {
      command: commandLine('bench/s3.ts'), date: started.toISOString(), seconds: Math.round(seconds), machine: facts,
      rounds: ROUNDS, size: SIZE, agentArgs, aim: { ratioAtLeast: AIM, ratio: summary.ratio, perRound: summary.ratios, met: summary.met },
      results: summary.rows, roundNotes, oddities
    }
    await writeFile(join(flags.out, 'results-s3.json'), JSON.stringify(json, null, 2) + '\n')
    console.log('\n' + md)
    log(`results: ${join(flags.out, 'results-s3.md')} and .json (${Math.round(seconds / 60)} min)`)
  } catch (err) {
    await printLogTails(agents.map((agent) => ({ name: agent.logFile, file: agent.logFile })))
    throw err
  } finally {
    if (!interrupted()) await cleanup()
  }
}

runBench(main)
