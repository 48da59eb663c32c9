import { randomBytes } from 'node:crypto'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { encodeBall } from '../../src/store/ball-codec.ts'
import { Bin } from '../../src/store/bin.ts'

const KiB = 1024

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
