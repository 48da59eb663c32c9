// Small files kept inline in the data pool: their bytes stored with the
// inode in one batch (no ball), read back checked against the inode's hash,
// dropped with the file, never handed to replicas with the snapshot, and
// refused when they are not a regular file's only content.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Level } from 'level'
import t, { type Test } from 'tap'
import { DataPool } from '../../src/meta/data-pool.ts'
import { MAX_INLINE_BYTES, ROOT_INO, S_IFDIR, S_IFREG, inlineHash, inlineKey } from '../../src/meta/schema.ts'

const FILE = { mode: S_IFREG | 0o644, uid: 1000, gid: 1000 }
const C = 4 * 1024 * 1024
const ball = (n: number): string => n.toString(16).padStart(64, '0')

async function poolDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-unit-inline-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

async function open (t: Test, dir: string): Promise<DataPool> {
  const pool = await DataPool.open(dir)
  t.teardown(async () => await pool.close().catch(() => {}))
  return pool
}

t.test('inline - a small file is committed as its bytes, read back, and survives a restart', async (t) => {
  const dir = await poolDir(t)
  let pool = await open(t, dir)
  const f = await pool.create(ROOT_INO, 'f', FILE)
  const bytes = Buffer.from('hello, inline world\n')
  t.same(await pool.commitFile(f.ino, { size: bytes.length, balls: [], chunkSize: C, inline: bytes }), [])
  t.equal(pool.get(f.ino)?.inline, inlineHash(bytes))
  t.same(pool.get(f.ino)?.balls, [])
  t.same(await pool.readInline(f.ino), bytes)
  await pool.close()
  pool = await open(t, dir)
  t.equal(pool.get(f.ino)?.size, bytes.length)
  t.same(await pool.readInline(f.ino), bytes, 'the bytes are in LevelDB, not only in memory')
})

t.test('inline - growing into balls drops the inline bytes; shrinking back releases the balls', async (t) => {
  const dir = await poolDir(t)
  const pool = await open(t, dir)
  const f = await pool.create(ROOT_INO, 'f', FILE)
  await pool.commitFile(f.ino, { size: 3, balls: [], chunkSize: C, inline: Buffer.from('abc') })
  t.same(await pool.commitFile(f.ino, { size: C, balls: [ball(1)], chunkSize: C }), [])
  t.equal(pool.get(f.ino)?.inline, undefined)
  await t.rejects(pool.readInline(f.ino), { code: 'CHAAC_INVALID' })
  t.same(await pool.commitFile(f.ino, { size: 2, balls: [], chunkSize: C, inline: Buffer.from('xy') }), [ball(1)], 'the ball is released')
  t.equal(pool.balls.get(ball(1))?.refs, 0)
  t.same(await pool.readInline(f.ino), Buffer.from('xy'))
  await pool.close()
  const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
  await db.open()
  t.same(await db.get(inlineKey(f.ino)), Buffer.from('xy'), 'one record of bytes per file')
  await db.close()
})

t.test('inline - the bytes go with the file; they never reach a replica snapshot', async (t) => {
  const dir = await poolDir(t)
  const pool = await open(t, dir)
  const f = await pool.create(ROOT_INO, 'f', FILE)
  await pool.commitFile(f.ino, { size: 4, balls: [], chunkSize: C, inline: Buffer.from('data') })
  const page = await pool.records('', 1 << 20)
  t.notOk(page.records.some(([key]) => key.startsWith('x!')), 'no inline bytes in a snapshot page')
  t.ok(page.records.some(([key]) => key.startsWith('i!')))
  await pool.unlink(ROOT_INO, 'f')
  await pool.purge(f.ino)
  await pool.close()
  const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
  await db.open()
  t.equal(await db.get(inlineKey(f.ino)), undefined, 'purged with the inode')
  await db.close()
})

t.test('inline - bad inline content is refused and changes nothing', async (t) => {
  const pool = await open(t, await poolDir(t))
  const f = await pool.create(ROOT_INO, 'f', FILE)
  await pool.commitFile(f.ino, { size: 3, balls: [], chunkSize: C, inline: Buffer.from('abc') })
  const before = structuredClone(pool.get(f.ino))
  const d = await pool.create(ROOT_INO, 'd', { ...FILE, mode: S_IFDIR | 0o755 })
  await t.rejects(pool.commitFile(f.ino, { size: 5, balls: [], chunkSize: C, inline: Buffer.from('abc') }), { code: 'CHAAC_INVALID' }, 'size must match')
  await t.rejects(pool.commitFile(f.ino, { size: 3, balls: [ball(2)], chunkSize: C, inline: Buffer.from('abc') }), { code: 'CHAAC_INVALID' }, 'no balls beside')
  const big = Buffer.alloc(MAX_INLINE_BYTES + 1)
  await t.rejects(pool.commitFile(f.ino, { size: big.length, balls: [], chunkSize: C, inline: big }), { code: 'CHAAC_INVALID' }, 'not too big')
  await t.rejects(pool.commitFile(d.ino, { size: 1, balls: [], chunkSize: C, inline: Buffer.from('a') }), { code: 'CHAAC_INVALID' }, 'files only')
  t.same(pool.get(f.ino), before)
  t.equal(pool.balls.get(ball(2)), undefined, 'no reference counted')
  t.same(await pool.readInline(f.ino), Buffer.from('abc'))
})

t.test('inline - bytes that do not match the inode read as EIO, never as wrong bytes', async (t) => {
  const dir = await poolDir(t)
  let pool = await open(t, dir)
  const f = await pool.create(ROOT_INO, 'f', FILE)
  await pool.commitFile(f.ino, { size: 3, balls: [], chunkSize: C, inline: Buffer.from('abc') })
  await pool.close()
  const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
  await db.open()
  await db.put(inlineKey(f.ino), Buffer.from('abd'))
  await db.close()
  pool = await open(t, dir)
  await t.rejects(pool.readInline(f.ino), { code: 'CHAAC_IO' })
})
