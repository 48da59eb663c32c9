import { randomBytes } from 'node:crypto'
import t from 'tap'
import { ChaacError } from '../../src/errors.ts'
import { encodeBall } from '../../src/store/ball-codec.ts'
import { KiB, bytesOnDisk, setup } from '../helpers/balls.ts'

t.test('ball writer - put and read back, identical content stored once', async (t) => {
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

t.test('ball writer - a bin never exceeds its capacity under many concurrent puts', async (t) => {
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

t.test('ball writer - only copies are never evicted: ENOSPC, and what is stored still reads', async (t) => {
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

t.test('ball writer - a pinned ball is evicted only when the cloud tier holds it', async (t) => {
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

t.test('ball writer - async upload copies a local ball to the cloud tier', async (t) => {
  const { store, cloud, inCloud } = await setup(t, { bins: [['disk', 4096 * KiB]], cloud: true, writePolicy: 'async' })
  const data = randomBytes(100 * KiB)
  const id = await store.put(data)
  t.notOk(await cloud?.has(id), 'not uploaded by put')
  await store.upload(id)
  t.ok(await cloud?.has(id))
  t.ok(inCloud.has(id))
})
