import { randomBytes } from 'node:crypto'
import { join } from 'node:path'
import t from 'tap'
import { LocalBalls } from '../../src/balls/local.ts'
import { Bin } from '../../src/store/bin.ts'
import { KiB, nextCopyInto, setup } from '../helpers/balls.ts'

t.test('local balls - a disk copy is evictable once another disk bin holds the ball', async (t) => {
  const { store, bins: [a, b] } = await setup(t, { bins: [['disk', 250 * KiB], ['disk', 250 * KiB]] })
  const ids: string[] = []
  for (let i = 0; i < 4; i++) {
    ids.push(await store.put(randomBytes(100 * KiB)))
    store.unpin(ids[i])
  }
  t.equal(a.entries.size + b.entries.size, 4, 'one copy of each, spread over both bins')
  await t.rejects(store.put(randomBytes(100 * KiB)), { code: 'CHAAC_NO_SPACE' }, 'only copies: nothing to evict')
})

t.test('local balls - a bin reopened with a smaller capacity is brought within it; only copies stay', async (t) => {
  const first = await setup(t, { bins: [['mem', 1024 * KiB], ['disk', 4096 * KiB]] })
  const balls: string[] = []
  for (let i = 0; i < 8; i++) {
    const data = randomBytes(100 * KiB)
    const id = await first.store.put(data)
    first.store.unpin(id)
    balls.push(id)
    const cached = nextCopyInto(first.store.local, first.bins[0])
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
  const local = new LocalBalls({
    bins: [mem, disk], eviction: 'lru', inCloud: () => false, log: { warn: (_o, msg) => warnings.push(msg) }
  })
  t.teardown(async () => await local.close())
  await local.fitCapacity()
  t.ok(mem.used <= mem.capacity, 'mem: cached copies dropped down to the capacity')
  t.equal(mem.entries.size, 2)
  t.equal(disk.entries.size, 8, 'disk: only copies are never dropped')
  t.match(warnings, [/more than its capacity/])
})

t.test('bins at run time - a bin added takes new balls, one drained hands its balls to the others first, one removed is no longer read', async (t) => {
  const { root, store, bins } = await setup(t, { bins: [['disk', 64 * KiB]], writePolicy: 'none' })
  const added = new Bin({ level: 'disk', dir: join(root, 'added'), capacity: 1024 * KiB })
  await added.open()
  store.local.addBin(added)
  t.throws(() => store.local.addBin(added), { code: 'CHAAC_EXISTS' }, 'a bin is added once')
  // The freest bin by fill ratio takes each new ball: the large added bin most of them.
  const data = Array.from({ length: 4 }, () => randomBytes(8 * KiB))
  const ids = await Promise.all(data.map(async (d) => await store.put(d)))
  const inAdded = ids.filter((id) => added.has(id)).length
  t.ok(inAdded >= 3, `the added bin took new balls (${inAdded})`)

  const { moved, dropped } = await store.local.drain(added)
  t.same({ moved, dropped }, { moved: inAdded, dropped: 0 })
  t.ok(ids.every((id) => bins[0].has(id) && !added.has(id)), 'every ball is in the other bin, none left in the drained one')
  t.equal(added.draining, true, 'the drained bin takes no new balls')
  t.equal((await store.put(randomBytes(KiB))).length, 64)
  t.equal(added.entries.size, 0)
  await store.local.removeBin(added)
  t.notOk(store.bins.includes(added), 'the removed bin is gone from the store')
  for (const [i, id] of ids.entries()) t.same(await store.read(id, 0, data[i].length, false), data[i], 'the balls read from the other bin')
})

t.test('bins at run time - a drain with no room left fails with CHAAC_NO_SPACE and the bin takes balls again', async (t) => {
  const { store, bins } = await setup(t, { bins: [['disk', 16 * KiB], ['disk', 1024 * KiB]], writePolicy: 'none' })
  const ids = await Promise.all(Array.from({ length: 4 }, async () => await store.put(randomBytes(8 * KiB))))
  const big = bins[1]
  t.ok(ids.some((id) => big.has(id)))
  await t.rejects(store.local.drain(big), { code: 'CHAAC_NO_SPACE' })
  t.equal(big.draining, false, 'the bin is usable again')
  const moved: string[] = []
  await store.local.drain(big, async (ball) => { moved.push(ball.id) })
  t.ok(moved.length >= 1, 'what does not fit here goes where the cluster says')
})
