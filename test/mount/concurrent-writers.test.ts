// Concurrent writers of one file, each process with its own descriptor,
// checked against a model of what POSIX allows (test/helpers/writers-model.ts).
// Rounds separated by barriers: the writers (test/helpers/writers.py) run
// their random ops at once, then a child process reads each file and the
// model says whether the content is one the writers could have left; what it
// read becomes the model's state. Sizes change in steps of their own
// (ftruncate, a new file renamed over), appenders in rounds of their own.
// Failures name their seed: CHAAC_STRESS_SEED=N CHAAC_STRESS_SEEDS=1 replays
// one; CHAAC_STRESS_SEEDS and CHAAC_STRESS_ROUNDS make longer runs by hand.
import { createHash } from 'node:crypto'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Rng } from '../../src/placement/rng.ts'
import { cleanupAgent, py, startAgent, shOk, unmountLazily, type RunningAgent } from '../helpers/agent.ts'
import { startCluster } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'
import { WriterProcess, readFromChild, type Mode, type Op } from '../helpers/writer-process.ts'
import { explain, explainAppends, pattern, truncated, type Write, type WriterLog } from '../helpers/writers-model.ts'

const KiB = 1024
const MiB = 1024 * KiB
const PAGE = 4096
const OPTS = { timeout: 300_000 }
const env = (name: string, fallback: number): number => Number(process.env[name] ?? fallback)
const FIRST_SEED = env('CHAAC_STRESS_SEED', 1)
const SEEDS = Array.from({ length: env('CHAAC_STRESS_SEEDS', 3) }, (_, i) => FIRST_SEED + i)
const ROUNDS = env('CHAAC_STRESS_ROUNDS', 5)

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')
const replay = (seed: number): string => `seed ${seed} (replay: CHAAC_STRESS_SEED=${seed} CHAAC_STRESS_SEEDS=1)`
const pick = <T>(rng: Rng, xs: T[]): T => xs[rng.below(xs.length)]

// Lengths and offsets around the inline limit (4 KiB), pages and 64 KiB balls.
function pickLen (rng: Rng): number {
  return pick(rng, [1, 7, 100, 4095, 4096, 4097, 65535, 65536, 65537, 131073, 1 + rng.below(300_000)])
}

function pickOffset (rng: Rng, size: number): number {
  // Files grow by a few hundred KiB per round, up to about 2 MiB.
  const limit = size > 2 * MiB ? size : size + 200 * KiB
  switch (rng.below(4)) {
    case 0: return rng.below(limit + 1)
    case 1: return Math.max(0, 64 * KiB * rng.below(Math.floor(limit / (64 * KiB)) + 1) - rng.below(64))
    case 2: return 4096 - rng.below(64)
    default: return size
  }
}

function pickSize (rng: Rng): number {
  return pick(rng, [0, 1000, 4095, 4096, 4097, 65536, 65537, 100_000, 300_000, rng.below(1.5 * MiB)])
}

interface Plan {
  ops: Op[][]
  /** [file][writer] */
  logs: WriterLog[][]
}

/**
 * A round of pwrite (through a mapping for mmap writers, from aligned
 * buffers for O_DIRECT ones), fsync, fdatasync and close-and-reopen. Mapped
 * stores stay below a page boundary and O_DIRECT writes above it: a dirty
 * mapped page written back after an O_DIRECT write to that page would put
 * back its older bytes, which the kernel allows (as on a local disk).
 */
function writeRound (rng: Rng, tag: string, modes: Mode[], sizes: number[], opsPerWriter: [number, number], reopen: boolean): Plan {
  const bound = sizes.map((s) => PAGE * rng.below(Math.floor(s / PAGE) + 1))
  const logs = sizes.map(() => modes.map((): WriterLog => ({ writes: [], landed: 0 })))
  const ops = modes.map((mode, k) => {
    const list: Op[] = []
    const n = opsPerWriter[0] + rng.below(opsPerWriter[1] - opsPerWriter[0] + 1)
    for (let i = 0; i < n; i++) {
      const f = rng.below(sizes.length)
      const x = rng.float()
      const w = x < 0.65 ? planWrite(rng, mode, sizes[f], bound[f], `${tag}.${k}.${i}`) : undefined
      if (w) {
        list.push([mode === 'mmap' ? 'm' : 'w', f, w.off, w.len, w.tag])
        logs[f][k].writes.push(w)
      } else {
        list.push([x < 0.8 ? 's' : x < 0.9 || !reopen ? 'd' : 'c', f])
      }
    }
    return list
  })
  for (const file of logs) for (const log of file) log.landed = log.writes.length
  return { ops, logs }
}

function planWrite (rng: Rng, mode: Mode, size: number, bound: number, tag: string): Write | undefined {
  if (mode === 'buf') return { off: pickOffset(rng, size), len: pickLen(rng), tag }
  if (mode === 'direct') {
    const from = bound / PAGE
    const to = Math.max(from + 1, Math.floor((size > 2 * MiB ? size : Math.max(size, bound) + 256 * KiB) / PAGE))
    return { off: PAGE * (from + rng.below(to - from)), len: PAGE * (1 + rng.below(48)), tag }
  }
  // A mapping reaches no further than the file did when the round began.
  const end = Math.min(bound, size)
  if (end === 0) return undefined
  const off = rng.below(end)
  return { off, len: 1 + rng.below(Math.min(end - off, 200_000)), tag }
}

/** A round of O_APPEND writes (and fsyncs); [file][writer] the records each appends, in order. */
function appendRound (rng: Rng, tag: string, writers: number, files: number): { ops: Op[][], records: Array<Array<Array<{ len: number, tag: string }>>> } {
  const records = Array.from({ length: files }, () => Array.from({ length: writers }, () => [] as Array<{ len: number, tag: string }>))
  const ops = records[0].map((_, k) => {
    const list: Op[] = []
    const n = 1 + rng.below(4)
    for (let i = 0; i < n; i++) {
      const f = rng.below(files)
      // At least 16 bytes: a record is told from the others by its first bytes.
      const rec = { len: pick(rng, [16, 100, 4095, 4096, 4097, 65537, 16 + rng.below(100_000)]), tag: `${tag}.${k}.${i}` }
      list.push(['a', f, rec.len, rec.tag])
      records[f][k].push(rec)
      if (rng.float() < 0.3) list.push(['s', f])
    }
    return list
  })
  return { ops, records }
}

const brief = (ops: unknown): string => {
  const s = JSON.stringify(ops)
  return s.length > 4000 ? `${s.slice(0, 4000)}...` : s
}

/** Every writer's process, ended however the test ends. */
function spawnWriters (t: Test, names: string[]): WriterProcess[] {
  const procs = names.map((name) => new WriterProcess(name))
  t.teardown(async () => { await Promise.all(procs.map(async (p) => await p.kill())) })
  return procs
}

async function quitAll (procs: WriterProcess[]): Promise<void> {
  await Promise.all(procs.map(async (p) => await p.quit()))
}

const logTail = (agent: RunningAgent): string => `the agent's log ends: ${agent.log().slice(-3000)}`

/** Reads `path` from a child process; fails the test when it cannot be read or `verdict` finds fault. */
async function checkFile (t: Test, agent: RunningAgent, where: string, path: string, verdict: (found: Buffer) => string | undefined): Promise<Buffer | undefined> {
  const { data, error } = await readFromChild(path)
  const why = error ?? verdict(data)
  if (why === undefined) return data
  t.fail(`${where}: ${why}`)
  return undefined
}

t.test('concurrent writers - four processes writing disjoint 8 KiB blocks of one 16 MiB file keep every block, across a restart', OPTS, async (t) => {
  // 1 MiB chunks: before the fix the loss showed in three runs of four (as with the 4 MiB default),
  // and every fdatasync seals a quarter of the bytes (with 4 MiB chunks the test takes 100 s here).
  const args = ['--chunk-size', '1MiB']
  let agent = await startAgent({ args })
  t.teardown(async () => await cleanupAgent(agent))
  const path = join(agent.mount, 'blocks.bin')
  // As reported: a file of zeros fsync'ed, then 4 processes with their own descriptors, fdatasync after every block.
  await py(`
import os
p = ${JSON.stringify(path)}
fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, bytes(16 * 1024 * 1024))
os.fsync(fd)
os.close(fd)
pids = []
for k in range(4):
    pid = os.fork()
    if pid == 0:
        try:
            fd = os.open(p, os.O_RDWR)
            for i in range(300):
                assert os.pwrite(fd, bytes([k + 1]) * 8192, (i * 4 + k) * 8192) == 8192
                os.fdatasync(fd)
            os.close(fd)
            os._exit(0)
        except BaseException as err:
            print('writer', k, 'failed:', err, flush=True)
            os._exit(1)
    pids.append(pid)
failed = [pid for pid in pids if os.waitpid(pid, 0)[1] != 0]
assert not failed, 'a writer failed'
`)
  const expected = Buffer.alloc(16 * MiB)
  for (let i = 0; i < 300; i++) for (let k = 0; k < 4; k++) expected.fill(k + 1, (i * 4 + k) * 8192, (i * 4 + k + 1) * 8192)
  const firstDiff = (found: Buffer): string | undefined => {
    if (found.equals(expected)) return undefined
    const at = expected.findIndex((v, i) => found[i] !== v)
    return `${found.length} bytes; first difference at ${at} (block ${Math.floor(at / 8192)}): ${found[at]}, not ${expected[at]}`
  }
  t.ok(await checkFile(t, agent, 'after the writers', path, firstDiff), 'every block reads back')
  await agent.stop()
  agent = await startAgent({ data: agent.data, args })
  t.ok(await checkFile(t, agent, 'after a restart', path, firstDiff), 'every block reads back after a restart')
})

async function stressSeed (t: Test, agent: RunningAgent, seed: number, mixed: boolean): Promise<void> {
  const rng = new Rng(seed * 16 + (mixed ? 2 : 1))
  const name = `${mixed ? 'mixed' : 'buffered'} ${replay(seed)}`
  const count = mixed ? 3 + rng.below(6) : 2 + rng.below(7)
  const modes: Mode[] = Array.from({ length: count }, (_, k) => mixed ? (k < 3 ? (['buf', 'mmap', 'direct'] as Mode[])[k] : pick(rng, ['buf', 'mmap', 'direct'])) : 'buf')
  const paths = Array.from({ length: 1 + rng.below(2) }, (_, f) => join(agent.mount, `stress-${mixed ? 'mixed' : 'buf'}-${seed}-${f}`))
  t.comment(`${name}: ${count} writers (${modes.join(', ')}) on ${paths.length} file(s), ${ROUNDS} rounds`)
  await shOk(paths.map((p) => `: > '${p}'`).join(' && '))
  const states: Buffer[] = paths.map(() => Buffer.alloc(0))
  const writers = spawnWriters(t, modes.map((m, k) => `writer ${k} (${m})`))
  // Readers that stay open across rounds (but for a rename over the file): they must read what a fresh open reads.
  const readers = spawnWriters(t, ['reader (buffered)', 'reader (O_DIRECT)'])
  const openAll = async (): Promise<void> => {
    await Promise.all([...writers.map(async (w, k) => await w.open(paths, modes[k])),
      ...readers.map(async (r, i) => await r.open(paths, i === 0 ? 'buf' : 'direct', true))])
  }
  await openAll()
  const failed = (where: string, why: string, ops: unknown): void => {
    t.fail(`${name}, ${where}: ${why}\nops: ${brief(ops)}\n${logTail(agent)}`)
  }
  const checked = async (where: string, f: number, verdict: (found: Buffer) => string | undefined): Promise<Buffer | undefined> => {
    const data = await checkFile(t, agent, `${name}, ${where}, file ${f}`, paths[f], verdict)
    if (!data) t.comment(logTail(agent))
    return data
  }
  const settle = async (where: string, f: number, data: Buffer): Promise<boolean> => {
    states[f] = data
    for (const r of readers) {
      const got = await r.read(f)
      if (got.size !== data.length || got.sha !== sha(data)) {
        t.fail(`${name}, ${where}: ${r.name} held open reads ${got.size} bytes, not what a new open reads (${data.length} bytes, ${sha(data).slice(0, 12)})`)
        return false
      }
    }
    return true
  }

  for (let r = 0; r < ROUNDS; r++) {
    // Size changes in steps of their own: ftruncate, or a new file renamed over.
    if (r === 0 || rng.float() < 0.35) {
      for (let f = 0; f < paths.length; f++) {
        if (r > 0 && rng.float() < 0.5) continue
        const size = pickSize(rng)
        const tag = `${seed}.${r}.x${f}`
        const rename = rng.float() < 0.4
        const op: Op = rename ? ['n', f, size, tag] : ['t', f, size]
        const res = await writers[rng.below(count)].run([op])
        if (res.error) return failed(`round ${r}`, res.error, op)
        if (rename) {
          await Promise.all([...writers, ...readers].map(async (w) => await w.close()))
          await openAll()
        }
        const expected = rename ? pattern(tag, 0, size) : truncated(states[f], size)
        const where = `round ${r}, ${rename ? 'renamed over' : 'truncated'} to ${size}`
        const data = await checked(where, f, (found) => found.equals(expected) ? undefined : `${found.length} bytes, not those expected`)
        if (!data || !await settle(where, f, data)) return
      }
    }
    const tag = `${seed}.${r}`
    const appending = rng.float() < 0.2
    const plan = appending
      ? appendRound(rng, tag, count, paths.length)
      : writeRound(rng, tag, modes, states.map((s) => s.length), [2, 8], true)
    const results = await Promise.all(writers.map(async (w, k) => await w.run(plan.ops[k])))
    const error = results.findIndex((res) => res.error)
    if (error >= 0) return failed(`round ${r}`, `${writers[error].name}: ${results[error].error}`, plan.ops)
    for (let f = 0; f < paths.length; f++) {
      const old = states[f]
      const verdict = 'records' in plan
        ? (found: Buffer) => explainAppends(old, plan.records[f], found)
        : (found: Buffer) => explain(old, plan.logs[f], found)
      const data = await checked(`round ${r} (${appending ? 'appends' : 'writes'}); ops: ${brief(plan.ops)}`, f, verdict)
      if (!data || !await settle(`round ${r}`, f, data)) return
    }
  }
  await quitAll([...writers, ...readers])
  t.pass(`${name}: ${ROUNDS} rounds as the model allows`)
}

t.test('concurrent writers - pwrite, O_APPEND, ftruncate, fsync, reopen and rename over: what POSIX allows', OPTS, async (t) => {
  // 64 KiB balls: writes cross balls often, and every seal writes a whole ball.
  // 256 KiB: most writes are small against the ball, so they are sealed as
  // slices over it, and chunks that gather many are merged in the background.
  for (const chunk of ['64KiB', '256KiB']) {
    const agent = await startAgent({ args: ['--chunk-size', chunk] })
    try {
      for (const seed of SEEDS) await t.test(`${chunk} balls, buffered writers, seed ${seed}`, async (t) => await stressSeed(t, agent, seed, false))
      for (const seed of SEEDS) await t.test(`${chunk} balls, mmap and O_DIRECT writers beside buffered ones, seed ${seed}`, async (t) => await stressSeed(t, agent, seed, true))
    } finally {
      await cleanupAgent(agent)
    }
  }
})

/**
 * What each writer may have left after the agent died with its round half
 * done: its ops up to the one in flight, and as landed every write before its
 * last finished fsync or fdatasync of that file (a mapped store is msync'ed
 * by itself).
 */
function crashLogs (ops: Op[][], lastDone: number[], files: number): WriterLog[][] {
  return Array.from({ length: files }, (_, f) => ops.map((list, k) => {
    const log: WriterLog = { writes: [], landed: 0 }
    list.slice(0, lastDone[k] + 2).forEach((op, i) => {
      if (op[1] !== f) return
      if (op[0] === 'w' || op[0] === 'm') log.writes.push({ off: op[2] as number, len: op[3] as number, tag: op[4] as string })
      if (i > lastDone[k]) return
      if (op[0] === 's' || op[0] === 'd' || op[0] === 'm') log.landed = log.writes.length
    })
    return log
  }))
}

t.test('concurrent writers - kill -9 in the middle of a round keeps every acknowledged write; every file reads', OPTS, async (t) => {
  const args = ['--chunk-size', '1MiB']
  let agent = await startAgent({ args })
  t.teardown(async () => await cleanupAgent(agent))
  // Every file of every seed, as it must read after every later restart.
  const finals = new Map<string, Buffer>()
  for (const seed of SEEDS) {
    const rng = new Rng(seed * 16 + 3)
    const name = `kill -9, ${replay(seed)}`
    const count = 2 + rng.below(3)
    const modes: Mode[] = Array.from({ length: count }, (_, k) => (['buf', 'direct', 'mmap'] as Mode[])[(k + seed) % 3])
    const names = Array.from({ length: 1 + rng.below(2) }, (_, f) => `kill-${seed}-${f}`)
    const paths = names.map((n) => join(agent.mount, n))
    await shOk(paths.map((p) => `: > '${p}'`).join(' && '))
    const writers = spawnWriters(t, modes.map((m, k) => `writer ${k} (${m})`))
    await Promise.all(writers.map(async (w, k) => await w.open(paths, modes[k])))
    // A round checked as usual, made durable by an fsync from another process: the state the crash starts from.
    const sizes = paths.map(() => 64 * KiB + rng.below(MiB))
    const first = writeRound(rng, `${seed}.0`, modes, sizes, [2, 6], false)
    const setUp = [await writers[0].run(sizes.map((size, f) => ['t', f, size])),
      ...await Promise.all(writers.map(async (w, k) => await w.run(first.ops[k])))]
    const error = setUp.find((res) => res.error)?.error
    if (error) return t.fail(`${name}, first round: ${error}\nops: ${brief(first.ops)}`)
    const states: Buffer[] = []
    for (let f = 0; f < paths.length; f++) {
      const data = await checkFile(t, agent, `${name}, first round, file ${f}`, paths[f], (found) => explain(truncated(Buffer.alloc(0), sizes[f]), first.logs[f], found))
      if (!data) return
      states.push(data)
    }
    await py(`
import os
for p in ${JSON.stringify(paths)}:
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
`)

    const plan = writeRound(rng, `${seed}.1`, modes, states.map((s) => s.length), [6, 16], true)
    const total = plan.ops.reduce((n, ops) => n + ops.length, 0)
    const killAt = 1 + rng.below(total - 1)
    const lastDone = writers.map(() => -1)
    let progress = 0
    let killed: Promise<void> | undefined
    const runs = writers.map(async (w, k) => await w.run(plan.ops[k], (i) => {
      lastDone[k] = i
      // Killed as the writers' acknowledgements come in, not after a poll: the round is in full swing.
      if (++progress === killAt) killed = agent.kill9()
    // A mapped store on the dead mount may end its writer with SIGBUS: what it acknowledged before still counts.
    }).catch(() => undefined))
    await Promise.all(runs)
    await (killed ?? agent.kill9())
    await unmountLazily(agent.mount)
    await Promise.all(writers.map(async (w) => await w.quit().catch(async () => await w.kill())))
    t.comment(`${name}: killed after ${progress} of ${total} ops (${modes.join(', ')})`)

    agent = await startAgent({ data: agent.data, args })
    const logs = crashLogs(plan.ops, lastDone, paths.length)
    for (let f = 0; f < paths.length; f++) {
      const where = `${name}, after the restart, file ${f}; killed after ops ${lastDone.join(', ')} of ${brief(plan.ops)}`
      const data = await checkFile(t, agent, where, paths[f], (found) => explain(states[f], logs[f], found))
      if (!data) return t.comment(logTail(agent))
      finals.set(names[f], data)
    }
    for (const [n, data] of finals) {
      const same = await checkFile(t, agent, `${name}, after the restart, ${n}`, join(agent.mount, n), (found) => found.equals(data) ? undefined : 'changed since it was checked')
      if (!same) return
    }
    t.pass(`${name}: every acknowledged write is there, every file reads`)
  }
})

t.test('concurrent writers - writers on two agents, close to open: each round leaves one agent\'s writes, the same on both', OPTS, async (t) => {
  const cluster = await startCluster(t, { size: 2, args: ['--chunk-size', '64KiB'] })
  const agents = cluster.agents
  for (const seed of SEEDS) {
    const rng = new Rng(seed * 16 + 4)
    const name = `two agents, ${replay(seed)}`
    const on = [1 + rng.below(3), 1 + rng.below(3)].flatMap((n, a) => Array.from({ length: n }, () => a))
    const modes = on.map((): Mode => pick(rng, ['buf', 'buf', 'direct']))
    const file = `shared-${seed}`
    await shOk(`: > '${join(agents[0].mount, file)}'`)
    await waitFor(async () => (await readFromChild(join(agents[1].mount, file))).error === undefined, { what: `${file} on the second agent` })
    const writers = spawnWriters(t, on.map((a, k) => `writer ${k} (${modes[k]}) on agent ${a}`))
    let state: Buffer = Buffer.alloc(0)
    for (let r = 0; r < ROUNDS; r++) {
      // Every writer opens before any writes: each agent's writers then share one view of the file from the round's start.
      await Promise.all(writers.map(async (w, k) => await w.open([join(agents[on[k]].mount, file)], modes[k])))
      const plan = writeRound(rng, `${seed}.${r}`, modes, [state.length], [1, 6], false)
      // Every writer writes: an agent that wrote nothing would explain the old content.
      plan.ops.forEach((ops, k) => {
        const log = plan.logs[0][k]
        if (log.writes.length > 0) return
        const off = pickOffset(rng, state.length)
        const tag = `${seed}.${r}.${k}.last`
        const w = modes[k] === 'direct' ? { off: off - off % PAGE, len: PAGE, tag } : { off, len: pickLen(rng), tag }
        ops.push(['w', 0, w.off, w.len, w.tag])
        log.writes.push(w)
        log.landed = 1
      })
      const results = await Promise.all(writers.map(async (w, k) => await w.run(plan.ops[k])))
      const error = results.findIndex((res) => res.error)
      if (error >= 0) return t.fail(`${name}, round ${r}: ${writers[error].name}: ${results[error].error}\nops: ${brief(plan.ops)}`)
      await Promise.all(writers.map(async (w) => await w.close()))
      const reads = await Promise.all(agents.map(async (a) => await readFromChild(join(a.mount, file))))
      const where = `${name}, round ${r}; writers on agents ${on.join(', ')}; ops: ${brief(plan.ops)}`
      const unreadable = reads.find((x) => x.error)
      if (unreadable) return t.fail(`${where}: ${unreadable.error}`)
      if (!reads[0].data.equals(reads[1].data)) return t.fail(`${where}: the agents read different bytes`)
      const found = reads[0].data
      const why = [0, 1].map((a) => explain(state, plan.logs[0].filter((_, k) => on[k] === a), found))
      if (why.every((w) => w !== undefined)) return t.fail(`${where}: not agent 0's writes (${why[0]}) nor agent 1's (${why[1]})`)
      state = found
    }
    await quitAll(writers)
    t.pass(`${name}: ${ROUNDS} rounds, each one agent's writes`)
  }

  await t.test('a handle held open on one agent: a new open there still sees what another agent closed', async (t) => {
    const file = 'held-open'
    await shOk(`head -c 100000 /dev/zero | tr '\\0' A > '${join(agents[0].mount, file)}'`)
    const held = spawnWriters(t, ['held open on agent 1'])[0]
    await held.open([join(agents[1].mount, file)], 'buf', true)
    await shOk(`head -c 120000 /dev/zero | tr '\\0' B > '${join(agents[0].mount, file)}'`)
    const fresh = (await readFromChild(join(agents[1].mount, file))).data
    t.ok(fresh.equals(Buffer.alloc(120000, 'B')), `a new open on agent 1 reads agent 0's version (read ${fresh.length} bytes, starting ${fresh.subarray(0, 4).toString()})`)
    const writer = spawnWriters(t, ['writer on agent 1'])[0]
    await writer.open([join(agents[1].mount, file)], 'buf')
    t.notOk((await writer.run([['w', 0, 120000, 4, 'tail']])).error, 'a write on agent 1')
    await writer.close()
    const after = (await readFromChild(join(agents[0].mount, file))).data
    t.ok(after.subarray(0, 120000).equals(Buffer.alloc(120000, 'B')), `the write keeps agent 0's version (read ${after.length} bytes, starting ${after.subarray(0, 4).toString()})`)
    await quitAll([held, writer])
  })
})
