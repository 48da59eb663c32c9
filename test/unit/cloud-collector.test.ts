// Garbage in the cloud tier: a ball no file references loses its cloud copy
// only after the grace period, and never while a file or a writer needs it.
// Real LevelDB and a directory cloud tier; time is passed in.
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { Balls } from '../../src/balls/balls.ts'
import { LocalBalls } from '../../src/balls/local.ts'
import { DirCloud } from '../../src/cloud/dir-cloud.ts'
import { CloudCollector } from '../../src/fs/cloud-collector.ts'
import { DataPool } from '../../src/meta/data-pool.ts'
import { S_IFREG } from '../../src/meta/schema.ts'
import { Bin } from '../../src/store/bin.ts'

const GRACE = 60_000
const quiet = { warn: () => {} }

class SlowDeleteCloud extends DirCloud {
  gate?: Promise<void>
  async delete (id: string): Promise<void> {
    await this.gate
    await super.delete(id)
  }
}

async function setup (t: Test): Promise<{ pool: DataPool, store: Balls, cloud: SlowDeleteCloud, collector: CloudCollector, dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-unit-gc-'))
  const pool = await DataPool.open(join(dir, 'meta'))
  const bin = new Bin({ level: 'disk', dir: join(dir, 'bin'), capacity: 64 * 1024 * 1024 })
  await bin.open()
  const cloud = new SlowDeleteCloud(join(dir, 'cloud'))
  await cloud.open()
  const local = new LocalBalls({ bins: [bin], eviction: 'lru', inCloud: (id) => pool.inCloud(id) })
  const store = new Balls({ local, cloud, writePolicy: 'through', inCloud: (id) => pool.inCloud(id) })
  store.writer.on('uploaded', (id, bytes) => { void pool.markInCloud(id, bytes) })
  const collector = new CloudCollector(pool, store, GRACE, quiet)
  t.teardown(async () => {
    await collector.close()
    await store.close()
    await pool.close()
    await rm(dir, { recursive: true, force: true })
  })
  return { pool, store, cloud, collector, dir }
}

/** A committed file holding one ball of `data`; returns the inode and the ball. */
async function fileWith (pool: DataPool, store: Balls, name: string, data: Buffer): Promise<{ ino: number, id: string }> {
  const node = await pool.create(1, name, { mode: S_IFREG | 0o644, uid: 0, gid: 0 })
  const id = await store.put(data)
  await pool.commitFile(node.ino, { size: data.length, balls: [id], chunkSize: 4 << 20 })
  store.unpin(id)
  return { ino: node.ino, id }
}

/** Drops the file's reference, as the filesystem does on unlink: local copies go, the cloud copy waits. */
async function release (pool: DataPool, store: Balls, ino: number, id: string, at: number): Promise<void> {
  await pool.commitFile(ino, { size: 0, balls: [], chunkSize: 4 << 20 })
  t.ok(await store.forget(id))
  await pool.markGarbage(id, at)
}

t.test('cloud garbage - deleted only after the grace period, and the record goes with it', async (t) => {
  const { pool, store, cloud, collector } = await setup(t)
  const { ino, id } = await fileWith(pool, store, 'f', randomBytes(1000))
  t.ok(await cloud.has(id) && pool.inCloud(id))
  await release(pool, store, ino, id, 1_000)
  t.equal(await collector.collect(1_000 + GRACE - 1), 0, 'not during the grace period')
  t.ok(await cloud.has(id))
  t.equal(collector.pending, 1)
  t.equal(await collector.collect(1_000 + GRACE), 1, 'deleted once it ended')
  t.notOk(await cloud.has(id))
  t.notOk(pool.balls.has(id), 'forgotten by the map of balls')
  t.equal(collector.pending, 0)
})

t.test('cloud garbage - a ball referenced again or pinned by a writer keeps its cloud copy', async (t) => {
  const { pool, store, cloud, collector } = await setup(t)
  const data = randomBytes(1000)
  const a = await fileWith(pool, store, 'a', data)
  await release(pool, store, a.ino, a.id, 0)
  // A writer stores the same content and has not committed yet: pinned.
  t.equal(await store.put(data), a.id)
  t.equal(await collector.collect(GRACE), 0, 'pinned: kept')
  t.ok(await cloud.has(a.id))
  t.equal(collector.pending, 0, 'and no longer garbage')
  const b = await pool.create(1, 'b', { mode: S_IFREG | 0o644, uid: 0, gid: 0 })
  await pool.commitFile(b.ino, { size: data.length, balls: [a.id], chunkSize: 4 << 20 })
  store.unpin(a.id)
  await pool.markGarbage(a.id, 0)
  t.equal(await collector.collect(GRACE), 0, 'referenced: kept')
  t.ok(await cloud.has(a.id) && pool.inCloud(a.id))
})

t.test('cloud garbage - a writer of the same content during the delete uploads it again after the delete', async (t) => {
  const { pool, store, cloud, collector } = await setup(t)
  const data = randomBytes(1000)
  const a = await fileWith(pool, store, 'a', data)
  await release(pool, store, a.ino, a.id, 0)
  let open!: () => void
  cloud.gate = new Promise((resolve) => { open = resolve })
  const collecting = collector.collect(GRACE)
  // The collector has decided and its delete is on the way; a writer brings the content back.
  await new Promise((resolve) => setImmediate(resolve))
  t.notOk(pool.inCloud(a.id), 'the map of balls no longer counts on the cloud copy')
  const writing = store.put(data)
  open()
  t.equal(await collecting, 1)
  t.equal(await writing, a.id)
  t.ok(await cloud.has(a.id), 'the writer\'s upload landed after the delete')
  t.ok(pool.inCloud(a.id))
})

t.test('cloud garbage - the list of garbage survives a restart of the data pool', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-unit-gc-pool-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const id = 'ab'.repeat(32)
  let pool = await DataPool.open(dir)
  await pool.markInCloud(id, 10)
  await pool.markGarbage(id, 1234)
  await pool.close()
  pool = await DataPool.open(dir)
  t.same([...pool.garbage], [[id, 1234]])
  await pool.keepBall(id)
  await pool.close()
  pool = await DataPool.open(dir)
  t.equal(pool.garbage.size, 0)
  await pool.close()
})
