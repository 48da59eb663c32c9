import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, open, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DirCloud } from '../../src/cloud/dir-cloud.ts'
import { ChaacError } from '../../src/errors.ts'
import { encodeBall } from '../../src/store/ball-codec.ts'
import { cloudTierContract } from '../helpers/cloud-contract.ts'
import { BallStore, type WritePolicy } from '../../src/store/ball-store.ts'
import { Bin, OPEN_BALL_FILES, type EvictionPolicy, type Level } from '../../src/store/bin.ts'
import { flipByte } from '../helpers/faults.ts'

const KiB = 1024

interface Setup {
  root: string
  store: BallStore
  bins: Bin[]
  cloud?: DirCloud
  /** Balls the cloud tier holds, as the data pool would record them. */
  inCloud: Set<string>
}

async function setup (t: Test, opts: { bins: Array<[Level, number]>, cloud?: boolean, writePolicy?: WritePolicy, eviction?: EvictionPolicy, promoteAfterReads?: number }): Promise<Setup> {
  const root = await mkdtemp(join(tmpdir(), 'chaac-unit-store-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  const bins = opts.bins.map(([level, capacity], i) => new Bin({ level, dir: join(root, `bin${i}`), capacity }))
  await Promise.all(bins.map(async (b) => await b.open()))
  const cloud = opts.cloud === true ? new DirCloud(join(root, 'cloud')) : undefined
  await cloud?.open()
  const inCloud = new Set<string>()
  const store = new BallStore({
    bins,
    cloud,
    writePolicy: opts.writePolicy ?? 'through',
    eviction: opts.eviction ?? 'lru',
    inCloud: (id) => inCloud.has(id),
    // Most tests watch the caching itself: every disk read promotes.
    promoteAfterReads: opts.promoteAfterReads ?? 1
  })
  store.on('uploaded', (id) => inCloud.add(id))
  t.teardown(async () => await store.close())
  return { root, store, bins, cloud, inCloud }
}

const ballPath = (bin: Bin, id: string): string => join(bin.dir, id.slice(0, 2), id)

// Bytes of ball files actually in a bin's directory.
async function bytesOnDisk (bin: Bin): Promise<number> {
  let sum = 0
  for (const sub of await readdir(bin.dir)) {
    if (!/^[0-9a-f]{2}$/.test(sub)) continue
    for (const name of await readdir(join(bin.dir, sub))) sum += (await stat(join(bin.dir, sub, name))).size
  }
  return sum
}

/** Resolves when `store` next emits a copy event for `bin`. */
function nextCopyInto (store: BallStore, bin: Bin): Promise<string> {
  return new Promise((resolve) => {
    const on = (binId: string, ballId: string, _bytes: number, present: boolean): void => {
      if (binId !== bin.id || !present) return
      store.off('copy', on)
      resolve(ballId)
    }
    store.on('copy', on)
  })
}

t.test('bin - open creates an id, reopen keeps it and indexes the balls, leftovers of interrupted writes go', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'chaac-unit-bin-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  const spec = { level: 'disk' as const, dir: join(root, 'b'), capacity: 1024 * KiB }
  const a = new Bin(spec)
  await a.open()
  t.match(a.id, /^[0-9a-f-]{36}$/)
  const data = randomBytes(10 * KiB)
  const { id, header } = encodeBall(data)
  t.ok(a.tryReserve(header.length + data.length))
  await a.write(id, header, data)
  t.equal(a.used, header.length + data.length)
  await a.close()
  await writeFile(join(spec.dir, id.slice(0, 2), `${id}.123.4.tmp`), 'half a ball')
  const b = new Bin(spec)
  await b.open()
  t.equal(b.id, a.id, 'same bin id')
  t.ok(b.has(id))
  t.equal(b.used, header.length + data.length)
  t.same((await readdir(join(spec.dir, id.slice(0, 2)))), [id], 'the temporary file is gone')
  t.ok((await b.readRaw(id, header.length, data.length)).equals(data))
  await b.close()
})

t.test('bin - victims: LRU takes the least recently used, LFU the least often used', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'chaac-unit-bin-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  const balls = [0, 1, 2, 3].map(() => {
    const data = randomBytes(1000)
    return { data, ...encodeBall(data) }
  })
  const size = balls[0].header.length + 1000
  const bin = new Bin({ level: 'mem', dir: join(root, 'b'), capacity: 4 * size })
  await bin.open()
  t.teardown(async () => await bin.close())
  for (const b of balls) {
    t.ok(bin.tryReserve(size))
    await bin.write(b.id, b.header, b.data)
  }
  const [a, b, c, d] = balls.map((x) => x.id)
  // a: used often but long ago; b: once, recently; c and d: in between.
  for (let i = 0; i < 5; i++) await bin.readRaw(a, 0, 10)
  await bin.readRaw(c, 0, 10)
  await bin.readRaw(c, 0, 10)
  await bin.readRaw(d, 0, 10)
  await bin.readRaw(d, 0, 10)
  await bin.readRaw(b, 0, 10)
  const all = (): boolean => true
  t.same(bin.victims(size, 'lru', all), [a], 'LRU: a was used least recently')
  t.same(bin.victims(size, 'lfu', all), [b], 'LFU: b was used least often')
  t.same(bin.victims(2 * size, 'lfu', all), [b, c], 'LFU ties go to the older use')
  t.same(bin.victims(size, 'lru', (id) => id !== a), [c], 'LRU skips what may not be evicted')
  t.same(bin.victims(4 * size, 'lru', (id) => id !== a), [], 'not enough evictable bytes: no victims at all')
  await bin.delete(c)
  t.same(bin.victims(size, 'lru', all), [], 'room already free: no victims')
})

t.test('ball store - put and read back, identical content stored once', async (t) => {
  const { store, bins } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]] })
  const data = randomBytes(300 * KiB)
  const id = await store.put(data)
  const again = await store.put(Buffer.from(data))
  t.equal(again, id)
  t.notOk(bins[0].has(id), 'a new ball goes to the durable level only')
  t.ok(bins[1].has(id))
  t.equal(bins[1].entries.size, 1)
  t.ok((await store.read(id, 1000, 5000, false)).equals(data.subarray(1000, 6000)))
  t.equal(store.outcomes.localHit, 1)
})

t.test('ball store - the mem level caches reads from the disk level', async (t) => {
  const { store, bins: [mem, disk] } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]] })
  const data = randomBytes(200 * KiB)
  const id = await store.put(data)
  const cached = nextCopyInto(store, mem)
  t.ok((await store.read(id, 0, data.length, false)).equals(data))
  t.equal(await cached, id, 'promoted to the mem level')
  await unlink(ballPath(disk, id))
  await disk.close()
  t.ok((await store.read(id, 0, data.length, false)).equals(data), 'served by the mem level')
  t.same(store.outcomes, { localHit: 2, remoteHit: 0, miss: 0, skip: 0 })
})

t.test('ball store - a bin never exceeds its capacity under many concurrent puts', async (t) => {
  const capacity = 1024 * KiB
  const { store, bins: [disk], inCloud } = await setup(t, { bins: [['disk', capacity]], cloud: true })
  const balls = Array.from({ length: 120 }, () => randomBytes(48 * KiB + Math.floor(Math.random() * 16 * KiB)))
  let maxUsed = 0
  let next = 0
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next < balls.length) {
      await store.put(balls[next++])
      maxUsed = Math.max(maxUsed, disk.used)
      t.ok(disk.used <= capacity, 'used within capacity')
    }
  }))
  t.ok(maxUsed <= capacity)
  t.ok(maxUsed > capacity - 64 * KiB - 1000, 'the bin was filled up')
  t.equal(await bytesOnDisk(disk), disk.used, 'the bytes on disk are the bytes counted')
  t.equal(inCloud.size, balls.length, 'every ball reached the cloud tier (write through)')
  for (const data of balls) {
    const { id } = encodeBall(data)
    t.ok((await store.read(id, 0, data.length, true)).equals(data), 'every ball reads back')
  }
})

t.test('ball store - a ball enters the mem level only after repeated reads from disk that add up to its size', async (t) => {
  const { store, bins: [mem] } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]], promoteAfterReads: 10 })
  const data = randomBytes(200 * KiB)
  const id = await store.put(data)
  const cached = nextCopyInto(store, mem)
  for (let i = 0; i < 5; i++) await store.read(id, 0, 4096, false)
  t.notOk(mem.has(id), 'a few reads leave the mem level alone')
  for (let i = 0; i < 5; i++) await store.read(id, 0, 4096, false)
  t.notOk(mem.has(id), 'read often, in pieces far smaller than the ball: copying it whole would cost more than the reads')
  await store.read(id, 0, data.length, false)
  t.equal(await cached, id, 'promoted once the bytes read from the disk level add up to it')
})

t.test('ball store - a small mem level caching a bigger working set stays within capacity', async (t) => {
  const { store, bins: [mem, disk] } = await setup(t, { bins: [['mem', 300 * KiB], ['disk', 8192 * KiB]], eviction: 'lfu' })
  const balls = await Promise.all(Array.from({ length: 10 }, async () => {
    const data = randomBytes(100 * KiB)
    return { data, id: await store.put(data) }
  }))
  for (let round = 0; round < 3; round++) {
    for (const b of balls) {
      const cached = mem.has(b.id) ? undefined : nextCopyInto(store, mem)
      t.ok((await store.read(b.id, 0, b.data.length, false)).equals(b.data))
      await cached
      t.ok(mem.used <= mem.capacity, `mem used ${mem.used} <= ${mem.capacity}`)
    }
  }
  t.equal(mem.entries.size, 2, 'two 100 KiB balls fit in 300 KiB')
  t.equal(disk.entries.size, 10, 'the disk level keeps every ball')
  t.equal(await bytesOnDisk(mem), mem.used)
})

t.test('ball store - only copies are never evicted: ENOSPC, and what is stored still reads', async (t) => {
  const { store, bins: [disk] } = await setup(t, { bins: [['disk', 512 * KiB]] })
  const stored: Array<{ id: string, data: Buffer }> = []
  let err: unknown
  for (let i = 0; i < 20 && err === undefined; i++) {
    const data = randomBytes(100 * KiB)
    try {
      stored.push({ id: await store.put(data), data })
    } catch (e) {
      err = e
    }
  }
  t.ok(err instanceof ChaacError && err.code === 'CHAAC_NO_SPACE', 'CHAAC_NO_SPACE when the bin is full')
  t.equal((err as ChaacError).errno, 'ENOSPC')
  t.equal(stored.length, 5)
  t.ok(disk.used <= disk.capacity)
  for (const { id, data } of stored) t.ok((await store.read(id, 0, data.length, false)).equals(data), 'an earlier ball is intact')
  t.equal(await bytesOnDisk(disk), disk.used, 'no partial ball left behind')
  // Freeing a ball makes room again.
  t.notOk(await store.forget(stored[0].id), 'a pinned ball is not forgotten')
  store.unpin(stored[0].id)
  t.ok(await store.forget(stored[0].id))
  t.ok(await store.put(randomBytes(100 * KiB)))
})

t.test('ball store - a pinned ball is evicted only when the cloud tier holds it', async (t) => {
  const local = await setup(t, { bins: [['disk', 250 * KiB]], cloud: true, writePolicy: 'none' })
  const a = await local.store.put(randomBytes(100 * KiB))
  const b = await local.store.put(randomBytes(100 * KiB))
  await t.rejects(local.store.put(randomBytes(100 * KiB)), { code: 'CHAAC_NO_SPACE' }, 'pinned only copies stay')
  t.ok(local.bins[0].has(a) && local.bins[0].has(b))
  // Write-through: each ball is in the cloud tier before put returns, so a
  // file bigger than the bin can still be written while its balls are pinned.
  const through = await setup(t, { bins: [['disk', 250 * KiB]], cloud: true, writePolicy: 'through' })
  const ids: string[] = []
  for (let i = 0; i < 6; i++) ids.push(await through.store.put(randomBytes(100 * KiB)))
  t.ok(ids.every((id) => through.store.isPinned(id)))
  t.ok(through.bins[0].used <= through.bins[0].capacity)
  t.same(ids.filter((id) => through.bins[0].has(id)), ids.slice(4), 'the newest balls stay in the bin')
  t.equal(through.inCloud.size, 6)
})

t.test('ball store - a disk copy is evictable once another disk bin holds the ball', async (t) => {
  const { store, bins: [a, b] } = await setup(t, { bins: [['disk', 250 * KiB], ['disk', 250 * KiB]] })
  const ids: string[] = []
  for (let i = 0; i < 4; i++) {
    ids.push(await store.put(randomBytes(100 * KiB)))
    store.unpin(ids[i])
  }
  t.equal(a.entries.size + b.entries.size, 4, 'one copy of each, spread over both bins')
  await t.rejects(store.put(randomBytes(100 * KiB)), { code: 'CHAAC_NO_SPACE' }, 'only copies: nothing to evict')
})

t.test('ball store - a corrupt copy is detected, fetched again from the cloud tier, counted as a miss', async (t) => {
  const { store, bins: [mem, disk], cloud } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]], cloud: true })
  const data = randomBytes(200 * KiB)
  const id = await store.put(data)
  t.ok(await cloud?.has(id))
  const { header } = encodeBall(data)
  await flipByte(ballPath(disk, id), header.length + 150 * KiB)
  const dropped = new Promise((resolve) => store.on('copy', (bin, ball, _b, present) => { if (bin === disk.id && ball === id && !present) resolve(true) }))
  t.ok((await store.read(id, 140 * KiB, 20 * KiB, false)).equals(data.subarray(140 * KiB, 160 * KiB)), 'the right bytes')
  t.ok(await dropped, 'the corrupt copy was dropped')
  t.same(store.outcomes, { localHit: 0, remoteHit: 0, miss: 1, skip: 0 })
  await store.settle()
  t.ok(mem.has(id) && disk.has(id), 'good copies are cached again in both levels')
  t.ok((await store.read(id, 0, data.length, false)).equals(data))
  t.equal(store.outcomes.localHit, 1)
  // The new disk copy is a good one.
  await mem.delete(id)
  const fresh = new Bin({ level: 'disk', dir: disk.dir, capacity: disk.capacity })
  await fresh.open()
  t.ok((await fresh.readRaw(id, header.length, data.length)).equals(data), 'the disk copy was replaced by a good one')
  await fresh.close()
})

t.test('ball store - a large read is checked on a hash worker: a flipped byte in any block fails it, never wrong bytes', async (t) => {
  const { store, bins: [disk] } = await setup(t, { bins: [['disk', 8192 * KiB]] })
  const data = randomBytes(4096 * KiB)
  const id = await store.put(data)
  const { header } = encodeBall(data)
  const into = Buffer.from(new SharedArrayBuffer(data.length))
  t.ok((await store.read(id, 0, data.length, false, into)).equals(data), 'the whole ball, read into shared memory')
  t.ok((await store.read(id, 512 * KiB, 1024 * KiB, false)).equals(data.subarray(512 * KiB, 1536 * KiB)), 'a part of it, on ordinary memory')
  await flipByte(ballPath(disk, id), header.length + 3000 * KiB + 7)
  await t.rejects(store.read(id, 0, data.length, false), { code: 'CHAAC_BALL_CORRUPT' }, 'the block with the flipped byte fails the whole read')
  const err = await store.read(id, 2048 * KiB, 1024 * KiB, false, into).catch((e: unknown) => e)
  t.equal((err as ChaacError).errno, 'EIO', 'and any later read of it (the corrupt copy was dropped: no copy is left)')
})

t.test('ball store - a corrupt header is detected too', async (t) => {
  const { store, bins: [, disk] } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]], cloud: true })
  const data = randomBytes(70 * KiB)
  const id = await store.put(data)
  await flipByte(ballPath(disk, id), 13)
  t.ok((await store.read(id, 0, data.length, false)).equals(data))
  t.equal(store.outcomes.miss, 1)
})

t.test('ball store - a corrupt or missing ball with no other copy fails CHAAC_BALL_MISSING (EIO), never wrong bytes', async (t) => {
  const { store, bins: [disk] } = await setup(t, { bins: [['disk', 4096 * KiB]] })
  const a = randomBytes(100 * KiB)
  const b = randomBytes(100 * KiB)
  const idA = await store.put(a)
  const idB = await store.put(b)
  await flipByte(ballPath(disk, idA), 5000)
  await unlink(ballPath(disk, idB))
  for (const id of [idA, idB]) {
    const err = await store.read(id, 0, 100 * KiB, false).catch((e: unknown) => e)
    t.ok(err instanceof ChaacError, 'an error, not bytes')
    t.equal((err as ChaacError).code, id === idA ? 'CHAAC_BALL_CORRUPT' : 'CHAAC_BALL_MISSING')
    t.equal((err as ChaacError).errno, 'EIO')
  }
  t.same(store.outcomes, { localHit: 0, remoteHit: 0, miss: 0, skip: 0 }, 'a failed read is no outcome')
})

t.test('ball store - a ball missing from the cloud tier too fails with EIO', async (t) => {
  const { store, bins: [disk], cloud } = await setup(t, { bins: [['disk', 4096 * KiB]], cloud: true, writePolicy: 'none' })
  const data = randomBytes(100 * KiB)
  const id = await store.put(data)
  t.notOk(await cloud?.has(id), 'write policy none: not uploaded')
  await unlink(ballPath(disk, id))
  await t.rejects(store.read(id, 0, 10, false), { code: 'CHAAC_BALL_MISSING' })
})

t.test('ball store - cache skip reads from the cloud tier without caching', async (t) => {
  const { store, bins: [mem, disk] } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]], cloud: true })
  const data = randomBytes(300 * KiB)
  const id = await store.put(data)
  store.unpin(id)
  t.ok(await store.forget(id), 'local copies dropped; the cloud copy stays until its grace period ends')
  t.notOk(mem.has(id) || disk.has(id))
  t.ok((await store.read(id, 1000, 200 * KiB, true)).equals(data.subarray(1000, 1000 + 200 * KiB)))
  t.same(store.outcomes, { localHit: 0, remoteHit: 0, miss: 0, skip: 1 })
  t.notOk(mem.has(id) || disk.has(id), 'not cached')
  t.ok((await store.read(id, 0, 10, false)).equals(data.subarray(0, 10)))
  t.same(store.outcomes, { localHit: 0, remoteHit: 0, miss: 1, skip: 1 }, 'without skip: a miss, then cached')
  await store.settle()
  t.ok(mem.has(id) && disk.has(id))
})

t.test('ball store - async upload copies a local ball to the cloud tier', async (t) => {
  const { store, cloud, inCloud } = await setup(t, { bins: [['disk', 4096 * KiB]], cloud: true, writePolicy: 'async' })
  const data = randomBytes(100 * KiB)
  const id = await store.put(data)
  t.notOk(await cloud?.has(id), 'not uploaded by put')
  await store.upload(id)
  t.ok(await cloud?.has(id))
  t.ok(inCloud.has(id))
})

t.test('ball store - many concurrent reads of more balls than cached descriptors never drop a good copy', async (t) => {
  const { store, bins: [disk] } = await setup(t, { bins: [['disk', 64 * 1024 * KiB]] })
  const balls = await Promise.all(Array.from({ length: OPEN_BALL_FILES + 200 }, async () => {
    const data = randomBytes(8 * KiB)
    return { data, id: await store.put(data) }
  }))
  for (let round = 0; round < 3; round++) {
    const results = await Promise.allSettled(balls.map(async (b) => await store.read(b.id, 0, b.data.length, false)))
    const failed = results.filter((r) => r.status === 'rejected')
    t.equal(failed.length, 0, `round ${round}: every read succeeds`)
    if (failed.length > 0) t.comment((failed[0] as PromiseRejectedResult).reason)
  }
  t.equal(disk.entries.size, OPEN_BALL_FILES + 200, 'every copy is still there')
})

t.test('dir cloud - the cloud tier contract', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'chaac-unit-cloud-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  const cloud = new DirCloud(join(root, 'c'))
  await cloud.open()
  await cloudTierContract(t, cloud)
})

t.test('ball store - a copy that cannot be read for another reason than corruption is kept', async (t) => {
  const { store, bins: [disk] } = await setup(t, { bins: [['disk', 4096 * KiB]] })
  const data = randomBytes(100 * KiB)
  const id = await store.put(data)
  const path = ballPath(disk, id)
  await rename(path, path + '.aside')
  await mkdir(path)
  // Reading a directory fails with EISDIR: an I/O error, not a missing or corrupt ball.
  await t.rejects(store.read(id, 0, 10, false), { code: 'CHAAC_IO' })
  t.ok(disk.has(id), 'the copy is kept')
  await rm(path, { recursive: true })
  await rename(path + '.aside', path)
  t.ok((await store.read(id, 0, data.length, false)).equals(data), 'and reads once the fault is gone')
})

t.test('ball store - a corrupt size field in a cloud copy is detected without a huge allocation', async (t) => {
  const { store, bins: [disk], cloud } = await setup(t, { bins: [['disk', 4096 * KiB]], cloud: true })
  const data = randomBytes(100 * KiB)
  const id = await store.put(data)
  await unlink(ballPath(disk, id))
  // Block size 1 and a size near 4 GiB: a header of about 128 GiB.
  const fh = await open(join(cloud?.location ?? '', id.slice(0, 2), id), 'r+')
  const field = Buffer.alloc(8)
  field.writeUInt32BE(0xfffffff0, 0)
  field.writeUInt32BE(1, 4)
  await fh.write(field, 0, 8, 4)
  await fh.close()
  await t.rejects(store.read(id, 0, 10, false), { code: 'CHAAC_BALL_CORRUPT' })
})

t.test('ball store - a bin reopened with a smaller capacity is brought within it; only copies stay', async (t) => {
  const first = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]] })
  const balls: string[] = []
  for (let i = 0; i < 8; i++) {
    const data = randomBytes(100 * KiB)
    const id = await first.store.put(data)
    first.store.unpin(id)
    balls.push(id)
    const cached = nextCopyInto(first.store, first.bins[0])
    await first.store.read(id, 0, data.length, false)
    await cached
  }
  t.equal(first.bins[0].entries.size, 8)
  await first.store.close()
  // The same directories, a third of the capacity.
  const mem = new Bin({ level: 'mem', dir: first.bins[0].dir, capacity: 300 * KiB })
  const disk = new Bin({ level: 'disk', dir: first.bins[1].dir, capacity: 300 * KiB })
  await Promise.all([mem.open(), disk.open()])
  const warnings: string[] = []
  const store = new BallStore({
    bins: [mem, disk], writePolicy: 'none', eviction: 'lru', inCloud: () => false, log: { warn: (_o, msg) => warnings.push(msg) }
  })
  t.teardown(async () => await store.close())
  await store.fitCapacity()
  t.ok(mem.used <= mem.capacity, 'mem: cached copies dropped down to the capacity')
  t.equal(mem.entries.size, 2)
  t.equal(disk.entries.size, 8, 'disk: only copies are never dropped')
  t.match(warnings, [/more than its capacity/])
})

t.test('ball store - read-ahead fetches a ball before it is read; its first read still counts as a miss', async (t) => {
  const { store, bins: [mem, disk] } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]], cloud: true })
  const data = randomBytes(300 * KiB)
  const id = await store.put(data)
  store.unpin(id)
  t.ok(await store.forget(id))
  t.notOk(store.isLocal(id))
  store.prefetch(id)
  await store.settle()
  t.ok(mem.has(id) && disk.has(id), 'fetched and cached before any read')
  t.same(store.outcomes, { localHit: 0, remoteHit: 0, miss: 0, skip: 0 }, 'a fetch ahead is no read')
  t.ok((await store.read(id, 0, data.length, false)).equals(data))
  t.same(store.outcomes, { localHit: 0, remoteHit: 0, miss: 1, skip: 0 }, 'the bytes came from the cloud tier for this read')
  await store.read(id, 0, 10, false)
  t.same(store.outcomes, { localHit: 1, remoteHit: 0, miss: 1, skip: 0 })
})

t.test('bins at run time - a bin added takes new balls, one drained hands its balls to the others first, one removed is no longer read', async (t) => {
  const { root, store, bins } = await setup(t, { bins: [['disk', 64 * KiB]], writePolicy: 'none' })
  const added = new Bin({ level: 'disk', dir: join(root, 'added'), capacity: 1024 * KiB })
  await added.open()
  store.addBin(added)
  t.throws(() => store.addBin(added), { code: 'CHAAC_EXISTS' }, 'a bin is added once')
  // The freest bin by fill ratio takes each new ball: the large added bin most of them.
  const data = Array.from({ length: 4 }, () => randomBytes(8 * KiB))
  const ids = await Promise.all(data.map(async (d) => await store.put(d)))
  const inAdded = ids.filter((id) => added.has(id)).length
  t.ok(inAdded >= 3, `the added bin took new balls (${inAdded})`)

  const { moved, dropped } = await store.drain(added)
  t.same({ moved, dropped }, { moved: inAdded, dropped: 0 })
  t.ok(ids.every((id) => bins[0].has(id) && !added.has(id)), 'every ball is in the other bin, none left in the drained one')
  t.equal(added.draining, true, 'the drained bin takes no new balls')
  t.equal((await store.put(randomBytes(KiB))).length, 64)
  t.equal(added.entries.size, 0)
  await store.removeBin(added)
  t.notOk(store.bins.includes(added), 'the removed bin is gone from the store')
  for (const [i, id] of ids.entries()) t.same(await store.read(id, 0, data[i].length, false), data[i], 'the balls read from the other bin')
})

t.test('bins at run time - a drain with no room left fails with CHAAC_NO_SPACE and the bin takes balls again', async (t) => {
  const { store, bins } = await setup(t, { bins: [['disk', 16 * KiB], ['disk', 1024 * KiB]], writePolicy: 'none' })
  const ids = await Promise.all(Array.from({ length: 4 }, async () => await store.put(randomBytes(8 * KiB))))
  const big = bins[1]
  t.ok(ids.some((id) => big.has(id)))
  await t.rejects(store.drain(big), { code: 'CHAAC_NO_SPACE' })
  t.equal(big.draining, false, 'the bin is usable again')
  const moved: string[] = []
  await store.drain(big, async (ball) => { moved.push(ball.id) })
  t.ok(moved.length >= 1, 'what does not fit here goes where the cluster says')
})
