// Cluster benchmark: remote cache hit throughput. A 1 GiB file written on
// agent A (the data pool's, 127.0.0.2) is read on agent B (joined, 127.0.0.3)
// from A's bins over the peer link, side by side with reading it on A where
// it is local, in interleaved rounds (local, remote, local, remote, ...) with
// the kernel's caches dropped before each read and B's cache emptied before
// each remote read (B restarted with empty bins), so every ball B reads is a
// remote cache hit. Medians, and the ratio remote/local (aim: at least 0.8).
//
//   npm run bench:cluster                  # 3 rounds, results into bench/
//   npm run bench:cluster -- --rounds 5
//
// The file is written while A is alone (one host: one copy, on A) and every
// agent runs with --replicas 1, so that no copy lands on B. B's bins are on
// tmpfs (/dev/shm): on one machine both agents would otherwise share one
// disk, and B's cache writes would take the disk bandwidth A's reads need,
// where two hosts each have their own. Agents are separate processes stopped
// by PID; nothing stays mounted or on disk.
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { commandLine, filesystemOf, machineBasics, sourceState } from './lib/machine.ts'
import { Daemon, delay, dropKernelCaches, log, median, run, unmount } from './lib/proc.ts'

const PROJECT = resolve(import.meta.dirname, '..')
const CLI = join(PROJECT, 'bin', 'chaac.mjs')
const MiB = 1024 * 1024
const GiB = 1024 * MiB
const AIM = 0.8

const { values: flags } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    size: { type: 'string', default: String(GiB) },
    out: { type: 'string', default: join(PROJECT, 'bench') },
    help: { type: 'boolean', default: false }
  }
})

if (flags.help) {
  console.log(`usage: npm run bench:cluster -- [--rounds N] [--size BYTES] [--out DIR]
  --rounds N      rounds of local + remote reads (default 3, at least 3 for a median)
  --size BYTES    the file's size (default 1 GiB)
  --out DIR       where results-cluster.{md,json} go (default bench/)
Temporary folders go under CHAAC_BENCH_DIR (default: the system temp folder).
CHAAC_BENCH_AGENT_NODE_ARGS go on the agents' node command line, e.g.
'--cpu-prof --cpu-prof-dir=/tmp/prof'.
Needs root (it drops the kernel's caches) and the loopback addresses 127.0.0.2-3.`)
  process.exit(0)
}

const ROUNDS = Number(flags.rounds)
const SIZE = Number(flags.size)
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) throw new Error('--rounds must be a positive integer')
if (!Number.isInteger(SIZE) || SIZE < MiB) throw new Error('--size must be a whole number of bytes, at least 1 MiB')

type Side = 'local' | 'remote'

// One agent over a fixed data folder and chaac path, so that it can restart.
class Agent {
  readonly daemon: Daemon
  private http = ''

  /** `bins`: where its bins go (A's: on the disk with its data; B's: see the top of this file). */
  constructor (readonly name: string, readonly root: string, private readonly bins: string, host: string, extra: string[], secret: string) {
    const nodeArgs = (process.env.CHAAC_BENCH_AGENT_NODE_ARGS ?? '').split(' ').filter((a) => a !== '')
    this.daemon = new Daemon(`agent ${name}`, process.execPath, [
      ...nodeArgs, CLI, 'agent', '--volume-driver', 'none', '--no-share-folder', '--data', join(root, 'data'), '--mount', this.mount,
      '--http', `${host}:0`, '--listen', `${host}:0`,
      '--bin', `mem:${join(bins, 'mem')}:256MiB`, '--bin', `disk:${join(bins, 'disk')}:64GiB`,
      '--cloud', 'none', '--replicas', '1', ...extra
    ], join(root, 'agent.log'), { ...process.env, CHAAC_SECRET: secret, CHAAC_LOG_LEVEL: 'warn' })
  }

  get mount (): string {
    return join(this.root, 'mnt')
  }

  /** Starts the agent and waits for its status line; returns what it printed. */
  async start (): Promise<string> {
    await writeFile(join(this.root, 'agent.log'), '')
    await this.daemon.start()
    const deadline = Date.now() + 60_000
    for (;;) {
      const out = await this.daemon.logText()
      const m = /status:\s+(http:\/\/[\d.]+:\d+)\/status/.exec(out)
      if (m) {
        this.http = m[1]
        return out
      }
      this.daemon.assertRunning()
      if (Date.now() > deadline) throw new Error(`${this.name} was not ready within 60 s:\n${out}`)
      await delay(100)
    }
  }

  async stop (): Promise<void> {
    await this.daemon.stop()
    await unmount(this.mount)
  }

  /** Restarts with empty bins: nothing of the file is cached here any more. */
  async restartEmpty (): Promise<void> {
    await this.stop()
    for (const bin of ['mem', 'disk']) {
      for (const name of await readdir(join(this.bins, bin))) {
        if (name !== '.chaac-bin') await rm(join(this.bins, bin, name), { recursive: true, force: true })
      }
    }
    await this.start()
  }

  async json (path: string): Promise<any> {
    return await (await fetch(this.http + path, { signal: AbortSignal.timeout(10_000) })).json()
  }
}

async function readRate (file: string): Promise<number> {
  const { ms } = await run('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'], { timeoutMs: 600_000 })
  return SIZE / (ms / 1000) / 1e6
}

async function main (): Promise<void> {
  const root = await mkdtemp(join(resolve(process.env.CHAAC_BENCH_DIR ?? tmpdir()), 'chaac-bench-cluster-'))
  const shm = await mkdtemp('/dev/shm/chaac-bench-cluster-')
  const secret = Math.random().toString(36).slice(2) + Math.random().toString(36).slice(2)
  await Promise.all(['a', 'b'].map(async (n) => await mkdir(join(root, n), { recursive: true })))
  const a = new Agent('A', join(root, 'a'), join(root, 'a'), '127.0.0.2', ['--pool'], secret)
  const agents: Agent[] = [a]
  const samples: Record<Side, number[]> = { local: [], remote: [] }
  const remoteHits: number[] = []
  let interrupted = false
  const cleanup = async (): Promise<void> => {
    for (const agent of [...agents].reverse()) await agent.stop().catch((err) => log(`could not stop ${agent.name}: ${(err as Error).message}`))
    await rm(root, { recursive: true, force: true })
    await rm(shm, { recursive: true, force: true })
  }
  const onSignal = (signal: string): void => {
    if (interrupted) return
    interrupted = true
    log(`${signal}: stopping the agents`)
    void cleanup().finally(() => process.exit(130))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    const printed = await a.start()
    const poolUrl = /peers:\s+(ws:\/\/[\d.]+:\d+)/.exec(printed)?.[1]
    if (!poolUrl) throw new Error(`agent A printed no peer address:\n${printed}`)
    log(`writing the ${SIZE / MiB} MiB file on A, alone`)
    const source = join(root, 'source.bin')
    await run('dd', ['if=/dev/urandom', `of=${source}`, 'bs=1M', `count=${SIZE / MiB}`, 'status=none'])
    await run('cp', [source, join(a.mount, 'file.bin')])
    await rm(source)
    const b = new Agent('B', join(root, 'b'), shm, '127.0.0.3', ['--join', poolUrl], secret)
    agents.push(b)
    await b.start()
    const loc = await b.json('/api/v1/location?path=/file.bin')
    const onB = loc.balls.filter((x: any) => x.hosts.includes('127.0.0.3')).length
    if (onB > 0) throw new Error(`${onB} balls of the file are on B already: the remote reads would not be remote`)
    const balls = loc.balls.length

    for (let round = 1; round <= ROUNDS; round++) {
      await dropKernelCaches()
      const local = await readRate(join(a.mount, 'file.bin'))
      samples.local.push(local)
      log(`round ${round}/${ROUNDS}  local  ${local.toFixed(0)} MB/s`)
      await b.restartEmpty()
      await dropKernelCaches()
      const before = (await b.json('/status')).reads.remoteHit as number
      const remote = await readRate(join(b.mount, 'file.bin'))
      const hits = (await b.json('/status')).reads.remoteHit - before
      samples.remote.push(remote)
      remoteHits.push(hits)
      log(`round ${round}/${ROUNDS}  remote ${remote.toFixed(0)} MB/s  (${hits} remote cache hits over ${balls} balls)`)
      if (hits < balls) throw new Error(`only ${hits} remote cache hits for ${balls} balls: B did not read from A`)
    }
    const local = median(samples.local)
    const remote = median(samples.remote)
    const ratio = remote / local
    const facts = {
      ...await machineBasics(),
      'file system of the bins': await filesystemOf(root),
      source: await sourceState(['src', 'bench', 'native']),
      command: commandLine('bench/cluster.ts')
    }
    const result = { facts, size: SIZE, rounds: ROUNDS, balls, samples, remoteHits, median: { local, remote }, ratio, aim: AIM, met: ratio >= AIM }
    await writeFile(join(flags.out, 'results-cluster.json'), JSON.stringify(result, null, 2) + '\n')
    await writeFile(join(flags.out, 'results-cluster.md'), report(result))
    log(`local ${local.toFixed(0)} MB/s, remote ${remote.toFixed(0)} MB/s, ratio ${ratio.toFixed(2)} (aim >= ${AIM}: ${ratio >= AIM ? 'met' : 'MISSED'})`)
  } catch (err) {
    for (const agent of agents) log(`${agent.name}'s last output:\n${(await agent.daemon.logText()).trimEnd().split('\n').slice(-20).join('\n')}`)
    throw err
  } finally {
    if (!interrupted) await cleanup()
  }
}

function report (r: { facts: Record<string, string>, size: number, rounds: number, balls: number, samples: Record<Side, number[]>, median: Record<Side, number>, ratio: number, met: boolean }): string {
  const rounds = (xs: number[]): string => xs.map((x) => x.toFixed(0)).join(', ')
  return `# Cluster benchmark: remote cache hits

Command: \`${r.facts.command}\`

A ${r.size / MiB} MiB file (${r.balls} balls) written on agent A (the data
pool's, 127.0.0.2) is read with \`dd bs=1M\` on A, where its balls are in A's
bins (local), and on agent B (127.0.0.3), which fetches every ball from A over
the peer link (remote cache hits, checked against their hashes, kept in B's
cache). Interleaved rounds; before each read the kernel's caches are dropped,
and before each remote read B restarts with empty bins. No cloud tier. A's
bins are on the disk; B's on tmpfs, as its own disk: on one machine the two
agents would otherwise share one disk, and B's cache writes would take the
bandwidth A's reads need.

| read | MB/s (median of ${r.rounds}) | rounds |
| --- | ---: | --- |
| local (on A) | ${r.median.local.toFixed(0)} | ${rounds(r.samples.local)} |
| remote cache hits (on B, from A) | ${r.median.remote.toFixed(0)} | ${rounds(r.samples.remote)} |

Ratio remote/local: **${r.ratio.toFixed(2)}** (aim: at least ${AIM}: ${r.met ? 'met' : 'MISSED'}).

Machine: ${Object.entries(r.facts).filter(([k]) => k !== 'command').map(([k, v]) => `${k}: ${v}`).join('; ')}.
Both agents, the reader and the kernel's FUSE work share this machine's cores:
a remote read also pays for B's end (receiving, hashing, caching) on the same
CPUs that serve A's end.
`
}

await main()
