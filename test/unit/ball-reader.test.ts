import { randomBytes } from 'node:crypto'
import { mkdir, open, rename, rm, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { ChaacError } from '../../src/errors.ts'
import { encodeBall } from '../../src/store/ball-codec.ts'
import { Bin, OPEN_BALL_FILES } from '../../src/store/bin.ts'
import { KiB, ballPath, bytesOnDisk, nextCopyInto, setup } from '../helpers/balls.ts'
import { flipByte } from '../helpers/faults.ts'

t.test('ball reader - the mem level caches reads from the disk level', async (t) => {
  const { store, bins: [mem, disk] } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]] })
  const data = randomBytes(200 * KiB)
  const id = await store.put(data)
  const cached = nextCopyInto(store.local, mem)
  t.ok((await store.read(id, 0, data.length, false)).equals(data))
  t.equal(await cached, id, 'promoted to the mem level')
  await unlink(ballPath(disk, id))
  await disk.close()
  t.ok((await store.read(id, 0, data.length, false)).equals(data), 'served by the mem level')
  t.same(store.outcomes, { localHit: 2, remoteHit: 0, miss: 0, skip: 0 })
})

t.test('ball reader - a ball enters the mem level only after repeated reads from disk that add up to its size', async (t) => {
  const { store, bins: [mem] } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]], promoteAfterReads: 10 })
  const data = randomBytes(200 * KiB)
  const id = await store.put(data)
  const cached = nextCopyInto(store.local, mem)
  for (let i = 0; i < 5; i++) await store.read(id, 0, 4096, false)
  t.notOk(mem.has(id), 'a few reads leave the mem level alone')
  for (let i = 0; i < 5; i++) await store.read(id, 0, 4096, false)
  t.notOk(mem.has(id), 'read often, in pieces far smaller than the ball: copying it whole would cost more than the reads')
  await store.read(id, 0, data.length, false)
  t.equal(await cached, id, 'promoted once the bytes read from the disk level add up to it')
})

t.test('ball reader - a small mem level caching a bigger working set stays within capacity', async (t) => {
  const { store, bins: [mem, disk] } = await setup(t, { bins: [['mem', 300 * KiB], ['disk', 8192 * KiB]], eviction: 'lfu' })
  const balls = await Promise.all(Array.from({ length: 10 }, async () => {
    const data = randomBytes(100 * KiB)
    return { data, id: await store.put(data) }
  }))
  for (let round = 0; round < 3; round++) {
    for (const b of balls) {
      const cached = mem.has(b.id) ? undefined : nextCopyInto(store.local, mem)
      t.ok((await store.read(b.id, 0, b.data.length, false)).equals(b.data))
      await cached
      t.ok(mem.used <= mem.capacity, `mem used ${mem.used} <= ${mem.capacity}`)
    }
  }
  t.equal(mem.entries.size, 2, 'two 100 KiB balls fit in 300 KiB')
  t.equal(disk.entries.size, 10, 'the disk level keeps every ball')
  t.equal(await bytesOnDisk(mem), mem.used)
})

t.test('ball reader - a corrupt copy is detected, fetched again from the cloud tier, counted as a miss', async (t) => {
  const { store, bins: [mem, disk], cloud } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]], cloud: true })
  const data = randomBytes(200 * KiB)
  const id = await store.put(data)
  t.ok(await cloud?.has(id))
  const { header } = encodeBall(data)
  await flipByte(ballPath(disk, id), header.length + 150 * KiB)
  const dropped = new Promise((resolve) => store.local.on('copy', (bin, ball, _b, present) => { if (bin === disk.id && ball === id && !present) resolve(true) }))
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

t.test('ball reader - a large read is checked on a hash worker: a flipped byte in any block fails it, never wrong bytes', async (t) => {
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

t.test('ball reader - a whole ball fetched from the cloud tier is checked before it is used: a flipped byte fails it', async (t) => {
  const { store, bins: [disk], cloud, root } = await setup(t, { bins: [['disk', 16384 * KiB]], cloud: true })
  const good = randomBytes(4096 * KiB)
  const bad = randomBytes(4096 * KiB)
  const ids = [await store.put(good), await store.put(bad)]
  await store.settle()
  for (const id of ids) {
    t.ok(await cloud?.has(id))
    await disk.delete(id)
  }
  await flipByte(join(root, 'cloud', ids[1].slice(0, 2), ids[1]), encodeBall(bad).header.length + 3000 * KiB + 7)
  t.ok((await store.read(ids[0], 0, good.length, false)).equals(good), 'a good copy reads back')
  const err = await store.read(ids[1], 0, bad.length, false).catch((e: unknown) => e)
  t.equal((err as ChaacError).code, 'CHAAC_BALL_CORRUPT', 'the corrupt copy fails, never wrong bytes')
  t.equal((err as ChaacError).errno, 'EIO')
})

t.test('ball reader - a corrupt header is detected too', async (t) => {
  const { store, bins: [, disk] } = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]], cloud: true })
  const data = randomBytes(70 * KiB)
  const id = await store.put(data)
  await flipByte(ballPath(disk, id), 13)
  t.ok((await store.read(id, 0, data.length, false)).equals(data))
  t.equal(store.outcomes.miss, 1)
})

t.test('ball reader - a corrupt or missing ball with no other copy fails CHAAC_BALL_MISSING (EIO), never wrong bytes', async (t) => {
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

t.test('ball reader - a ball missing from the cloud tier too fails with EIO', async (t) => {
  const { store, bins: [disk], cloud } = await setup(t, { bins: [['disk', 4096 * KiB]], cloud: true, writePolicy: 'none' })
  const data = randomBytes(100 * KiB)
  const id = await store.put(data)
  t.notOk(await cloud?.has(id), 'write policy none: not uploaded')
  await unlink(ballPath(disk, id))
  await t.rejects(store.read(id, 0, 10, false), { code: 'CHAAC_BALL_MISSING' })
})

t.test('ball reader - cache skip reads from the cloud tier without caching', async (t) => {
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

t.test('ball reader - many concurrent reads of more balls than cached descriptors never drop a good copy', async (t) => {
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

t.test('ball reader - a copy that cannot be read for another reason than corruption is kept', async (t) => {
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

t.test('ball reader - a corrupt size field in a cloud copy is detected without a huge allocation', async (t) => {
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

t.test('ball reader - read-ahead fetches a ball before it is read; its first read still counts as a miss', async (t) => {
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
