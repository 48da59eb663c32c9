// Balls in bins behind a real mount: a full bin gives ENOSPC and harms
// nothing, corrupt or missing balls are fetched again from the cloud tier or
// fail with EIO (never wrong bytes), a small cache level stays within its
// capacity, the cache-skip policy, and the three cloud write policies.
// File I/O on the mount happens in child processes; bins and the cloud tier
// are plain directories the test may touch directly (fault injection).
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readdir, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { cleanupAgent, py, sh, shOk, startAgent, type AgentOptions, type RunningAgent } from '../helpers/agent.ts'
import { flipByte } from '../helpers/faults.ts'
import { delay, waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const OPTS = { timeout: 180_000 }

interface Source { path: string, sha: string, data: Buffer }

/** A scratch directory off the mount, removed at teardown. */
async function scratch (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-store-test-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

async function run (t: Test, opts: AgentOptions): Promise<RunningAgent> {
  const agent = await startAgent(opts)
  t.teardown(async () => await cleanupAgent(agent))
  return agent
}

/** Random content in a file off the mount, to copy in with `cp`. */
async function source (dir: string, name: string, size: number): Promise<Source> {
  const data = randomBytes(size)
  const path = join(dir, name)
  await writeFile(path, data)
  return { path, sha: createHash('sha256').update(data).digest('hex'), data }
}

/** SHA-256 of a file on the mount, read with O_DIRECT so that the agent serves every byte. */
async function shaOf (path: string): Promise<string> {
  return (await shOk(`set -o pipefail; dd if='${path}' iflag=direct bs=1M status=none | sha256sum`)).split(' ')[0]
}

interface BallCopy { id: string, level: string, dir: string, file: string }

/** The balls of a file (by GET /api/v1/location) and the ball files of their local copies. */
async function ballsOf (agent: RunningAgent, path: string): Promise<Array<{ id: string, cloud: boolean, copies: BallCopy[] }>> {
  const loc = await agent.json(`/api/v1/location?path=${encodeURIComponent(path)}`)
  return loc.balls.filter((b: any) => !b.hole).map((b: any) => ({
    id: b.id,
    cloud: b.cloud,
    copies: b.bins.map((x: any) => ({ id: b.id, level: x.level, dir: x.dir, file: join(x.dir, b.id.slice(0, 2), b.id) }))
  }))
}

const cloudFile = (agent: RunningAgent, id: string): string => join(agent.data, 'cloud', id.slice(0, 2), id)
const exists = async (file: string): Promise<boolean> => await stat(file).then(() => true, () => false)

async function ballFilesIn (dir: string): Promise<string[]> {
  const out: string[] = []
  for (const sub of await readdir(dir).catch(() => [])) {
    if (!/^[0-9a-f]{2}$/.test(sub)) continue
    out.push(...(await readdir(join(dir, sub))).filter((n) => /^[0-9a-f]{64}$/.test(n)))
  }
  return out
}

t.test('full bins - writes fail with ENOSPC, what is stored reads back intact, deleting frees room', OPTS, async (t) => {
  const dir = await scratch(t)
  const capacity = 64 * MiB
  const agent = await run(t, { args: ['--bin', `disk:${join(dir, 'disk')}:64MiB`, '--cloud', 'none'] })
  const used = async (): Promise<number> => (await agent.json('/api/v1/bins')).bins[0].used
  const files = await Promise.all([0, 1, 2, 3, 4].map(async (i) => await source(dir, `f${i}`, 10 * MiB)))
  for (const [i, f] of files.entries()) await shOk(`cp ${f.path} f${i}`, { cwd: agent.mount })

  // A big file that does not fit: the writer gets ENOSPC; what it wrote is not committed and its balls are freed.
  const big = JSON.parse(await py(`
import errno, json, os
p = ${JSON.stringify(join(agent.mount, 'big'))}
written, err = 0, None
try:
    with open(p, 'wb') as f:
        for i in range(80):
            f.write(os.urandom(${MiB}))
            written += ${MiB}
except OSError as e:
    err = errno.errorcode[e.errno]
print(json.dumps({'err': err, 'written': written, 'size': os.stat(p).st_size}))
`))
  t.equal(big.err, 'ENOSPC', 'the write (or the close) fails with ENOSPC')
  // Writes are buffered in the agent (up to ten chunks, sealed in the background): the error shows some chunks after the bin filled up.
  t.ok(big.written < 80 * MiB, `the writer was stopped (${big.written / MiB} MiB written before the error)`)
  t.equal(big.size, 0, 'the file keeps its last committed content (empty), not a part of the new one')
  t.ok(await used() < 51 * MiB, 'the balls of the failed file were freed')

  // Small files until the bin is full to the last MiB: the one that does not fit fails at close.
  const small = JSON.parse(await py(`
import errno, json, os
ok, err, size = 0, None, None
for i in range(40):
    p = os.path.join(${JSON.stringify(agent.mount)}, 'g%d' % i)
    try:
        with open(p, 'wb') as f:
            f.write(os.urandom(${MiB}))
        ok += 1
    except OSError as e:
        err, size = errno.errorcode[e.errno], os.stat(p).st_size
        break
print(json.dumps({'ok': ok, 'err': err, 'size': size}))
`))
  t.equal(small.err, 'ENOSPC')
  t.equal(small.size, 0, 'the file that did not fit is empty')
  t.ok(small.ok >= 12 && small.ok <= 14, `${small.ok} files of 1 MiB fitted in the ~14 MiB left`)
  const full = await used()
  t.ok(full <= capacity, `used ${full} <= capacity ${capacity}`)
  t.ok(full > capacity - MiB - 4096, 'the bin really is full')
  const extra = await source(dir, 'extra', MiB)
  const more = await sh(`cp ${extra.path} more`, { cwd: agent.mount })
  t.not(more.code, 0, 'another file does not fit either')
  t.match(more.stderr, /No space left on device/)
  for (const [i, f] of files.entries()) t.equal(await shaOf(join(agent.mount, `f${i}`)), f.sha, `f${i} is intact`)
  t.equal(await shOk(`cat g0 | wc -c`, { cwd: agent.mount }), `${MiB}\n`)

  // Deleting files gives their room back; the old files are still fine.
  await shOk('rm -f big more g* f0', { cwd: agent.mount })
  await waitFor(async () => await used() <= 4 * (10 * MiB + 8192), { what: 'the room of the deleted files to be freed', timeoutMs: 10_000 })
  await shOk(`cp ${files[0].path} again`, { cwd: agent.mount })
  t.equal(await shaOf(join(agent.mount, 'again')), files[0].sha, 'a new file fits again')
  for (const i of [1, 2, 3, 4]) t.equal(await shaOf(join(agent.mount, `f${i}`)), files[i].sha)
  t.equal((await ballFilesIn(join(dir, 'disk'))).length, 15, 'exactly the balls of the five files are on disk')
})

t.test('corruption - a flipped byte in a ball is detected and the ball is fetched again from the cloud tier', OPTS, async (t) => {
  const dir = await scratch(t)
  const agent = await run(t, { args: ['--write', 'through'] })
  const f = await source(dir, 'c', 10 * MiB)
  await shOk(`cp ${f.path} c`, { cwd: agent.mount })
  const balls = await ballsOf(agent, '/c')
  t.equal(balls.length, 3)
  const victim = balls[1]
  const disk = victim.copies.find((c) => c.level === 'disk')
  if (!disk) throw new Error('no disk copy')
  // Flip a byte in the data (past the header) of the middle ball; drop any memory-level copy.
  await flipByte(disk.file, 4096 + 1234567)
  for (const c of victim.copies.filter((x) => x.level === 'mem')) await unlink(c.file)
  const before = (await agent.json('/status')).reads
  t.equal(await shaOf(join(agent.mount, 'c')), f.sha, 'the right bytes')
  const after = (await agent.json('/status')).reads
  t.ok(after.miss > before.miss, `counted as a cache miss (${before.miss} -> ${after.miss})`)
  t.equal(after.skip, before.skip)
  // The bad copy was replaced by a good one from the cloud tier.
  const healed = (await ballsOf(agent, '/c'))[1]
  const good = healed.copies.find((c) => c.level === 'disk')
  t.ok(good, 'a disk copy again')
  const raw = await readFile(good?.file ?? '')
  t.ok(raw.subarray(raw.length - 4 * MiB).equals(f.data.subarray(4 * MiB, 8 * MiB)), 'the new disk copy holds the right bytes')
  t.match(agent.log(), /dropping a bad copy of a ball/, 'the bad copy is logged')
})

t.test('corruption - with no other copy a corrupt or missing ball fails with EIO, never wrong bytes', OPTS, async (t) => {
  const dir = await scratch(t)
  const first = await run(t, { args: ['--cloud', 'none'] })
  const f = await source(dir, 'c', 10 * MiB)
  // m differs from c in its middle ball only (identical content is stored
  // once): one byte is replaced by its complement, never by the same value.
  // It is changed before the copy: a small overwrite on the mount would be a slice over c's ball.
  const changed = Buffer.from(f.data)
  changed[5 * MiB] ^= 0xff
  await writeFile(join(dir, 'm'), changed)
  await shOk(`cp ${f.path} c && cp ${join(dir, 'm')} m`, { cwd: first.mount })
  const corrupt = (await ballsOf(first, '/c'))[1].id
  const missing = (await ballsOf(first, '/m'))[1].id
  t.not(missing, corrupt)
  const binDirs: string[] = (await first.json('/api/v1/bins')).bins.map((b: any) => b.dir)
  // Faults are injected with the agent stopped (background cache copies are
  // done), and the restart leaves the kernel's page cache empty: every read
  // below reaches the agent.
  t.equal(await first.stop(), 0)
  // Every local copy: the one on disk, and any the mem level cached while m was changed.
  const copies = (id: string): string[] => binDirs.map((d) => join(d, id.slice(0, 2), id))
  for (const file of copies(corrupt)) if (await exists(file)) await flipByte(file, 4096 + 100)
  for (const file of copies(missing)) await rm(file, { force: true })
  const agent = await run(t, { data: first.data, args: ['--cloud', 'none'] })

  for (const name of ['c', 'm']) {
    const out = join(dir, `${name}.out`)
    const r = await sh(`dd if=${join(agent.mount, name)} of=${out} iflag=direct bs=1M status=none`)
    t.not(r.code, 0, `${name}: the read fails`)
    t.match(r.stderr, /Input\/output error/, `${name}: with EIO`)
    const got = await readFile(out)
    t.ok(got.length >= 4 * MiB && got.length < 10 * MiB, `${name}: the bytes before the bad ball were read (${got.length})`)
    t.ok(got.equals(f.data.subarray(0, got.length)), `${name}: and every byte returned is right`)
    const cat = await sh(`cat ${name} > ${out}`, { cwd: agent.mount })
    t.not(cat.code, 0, `${name}: cat fails too`)
    t.match(cat.stderr, /Input\/output error/)
    const part = await readFile(out)
    t.ok(part.equals(f.data.subarray(0, part.length)) && part.length < 10 * MiB, `${name}: cat never printed a wrong byte`)
  }
  t.equal((await sh(`dd if=c iflag=direct bs=1M skip=8 status=none | wc -c`, { cwd: agent.mount })).stdout.trim(), String(2 * MiB),
    'the good balls of the file still read')
})

t.test('eviction - a small mem bin caching a bigger file never exceeds its capacity', OPTS, async (t) => {
  const dir = await scratch(t)
  const f = await source(dir, 'big', 24 * MiB)
  for (const eviction of ['lru', 'lfu']) {
    const capacity = 10 * MiB
    const agent = await run(t, {
      args: ['--bin', `mem:${join(dir, `mem-${eviction}`)}:10MiB`, '--bin', `disk:${join(dir, `disk-${eviction}`)}:1GiB`, '--eviction', eviction]
    })
    await shOk(`cp ${f.path} big`, { cwd: agent.mount })
    let maxUsed = 0
    let reading = true
    const sampler = (async () => {
      while (reading) {
        const mem = (await agent.json('/api/v1/bins')).bins.find((b: any) => b.level === 'mem')
        maxUsed = Math.max(maxUsed, mem.used)
        if (mem.used > capacity) t.fail(`${eviction}: mem used ${mem.used} > capacity ${capacity}`)
        await delay(10)
      }
    })()
    try {
      for (let round = 0; round < 2; round++) t.equal(await shaOf(join(agent.mount, 'big')), f.sha, `${eviction}: read ${round + 1}`)
    } finally {
      reading = false
      await sampler
    }
    // Promotions run in the background: the last may still be copying when the read returns.
    const memBin = async (): Promise<any> => (await agent.json('/api/v1/bins')).bins.find((b: any) => b.level === 'mem')
    await waitFor(async () => (await memBin()).balls === 2, { timeoutMs: 10_000, what: 'the promotions in the background' }).catch(() => {})
    const mem = await memBin()
    t.ok(mem.used <= capacity, `${eviction}: used ${mem.used} <= ${capacity} at the end`)
    t.ok(maxUsed > 0, `${eviction}: the mem bin did cache balls (max ${maxUsed})`)
    t.equal(mem.balls, 2, `${eviction}: two 4 MiB balls fit in 10 MiB`)
    const onDisk = await ballFilesIn(mem.dir)
    t.equal(onDisk.length, 2, `${eviction}: and the directory holds just those`)
    // Reads served by the binding's threads are reported a moment later.
    await waitFor(async () => (await agent.json('/status')).reads.localHit >= 48, { timeoutMs: 10_000, intervalMs: 20, what: 'the reads counted' })
    t.pass('every read was a local cache hit')
    await cleanupAgent(agent)
  }
})

t.test('cache skip - a file over --cache-skip-over is read from the cloud tier without being cached', OPTS, async (t) => {
  const dir = await scratch(t)
  const agent = await run(t, { args: ['--write', 'through', '--cache-skip-over', '1MiB'] })
  const f = await source(dir, 'big', 10 * MiB)
  const small = await source(dir, 'small', 512 * 1024)
  await shOk(`cp ${f.path} big && cp ${small.path} small`, { cwd: agent.mount })
  const balls = [...await ballsOf(agent, '/big'), ...await ballsOf(agent, '/small')]
  t.equal(balls.length, 4)
  for (const b of balls) {
    t.ok(b.cloud && await exists(cloudFile(agent, b.id)), 'write through: the cloud tier has the ball')
    for (const c of b.copies) await unlink(c.file)
  }
  const before = (await agent.json('/status')).reads
  t.equal(await shaOf(join(agent.mount, 'big')), f.sha, 'the right bytes')
  const after = (await agent.json('/status')).reads
  t.ok(after.skip - before.skip >= 3, `counted as cache skips (${before.skip} -> ${after.skip})`)
  t.equal(after.miss, before.miss, 'not as misses')
  t.equal(after.localHit, before.localHit)
  for (const b of await ballsOf(agent, '/big')) t.same(b.copies, [], 'not cached in any bin')

  // A file under the threshold is cached as usual: a miss, then local hits.
  t.equal(await shaOf(join(agent.mount, 'small')), small.sha)
  const last = (await agent.json('/status')).reads
  t.equal(last.miss, after.miss + 1, 'the small file: one miss')
  t.equal(last.skip, after.skip)
  // Kept in each level in the background, after the read was answered.
  const levels = async (): Promise<string> => (await ballsOf(agent, '/small'))[0].copies.map((c) => c.level).sort().join(' ')
  await waitFor(async () => await levels() === 'disk mem', { timeoutMs: 10_000, what: 'the small file to be cached in both levels' })
  t.pass('and cached in both levels')
})

t.test('write policies - through, async, none', OPTS, async (t) => {
  const dir = await scratch(t)
  const f = await source(dir, 'f', 9 * MiB)
  for (const policy of ['through', 'async', 'none']) {
    const agent = await run(t, { args: ['--write', policy] })
    // s: one small ball (over the inline limit, so that it is a ball at all).
    await shOk(`cp ${f.path} f && head -c 20000 ${f.path} > s`, { cwd: agent.mount })
    const balls = [...await ballsOf(agent, '/f'), ...await ballsOf(agent, '/s')]
    t.equal(balls.length, 4)
    if (policy === 'through') {
      // No waiting: close returned only once the cloud tier had every ball.
      for (const b of balls) t.ok(await exists(cloudFile(agent, b.id)), `through: ball ${b.id.slice(0, 8)} is in the cloud tier at close`)
      t.equal((await agent.json('/status')).cloud.uploadQueue, 0)
    } else if (policy === 'async') {
      await waitFor(async () => (await agent.json('/status')).cloud.uploadQueue === 0, { what: 'the upload queue to drain', timeoutMs: 60_000 })
      for (const b of balls) t.ok(await exists(cloudFile(agent, b.id)), `async: ball ${b.id.slice(0, 8)} reached the cloud tier`)
      for (const b of [...await ballsOf(agent, '/f'), ...await ballsOf(agent, '/s')]) t.ok(b.cloud, 'and the map of balls knows it')
    } else {
      t.equal((await agent.json('/status')).cloud.uploadQueue, 0)
      t.equal(await agent.stop(), 0, 'a clean stop (which would drain any upload)')
      t.same(await ballFilesIn(join(agent.data, 'cloud')), [], 'none: the cloud tier has nothing')
      t.ok(balls.every((b) => !b.cloud))
    }
    await cleanupAgent(agent)
  }
})
