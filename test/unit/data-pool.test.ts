import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DataPool } from '../../src/meta/data-pool.ts'
import { ROOT_INO, S_IFDIR, S_IFLNK, S_IFREG, type Inode } from '../../src/meta/schema.ts'

const FILE = { mode: S_IFREG | 0o644, uid: 1000, gid: 1000 }
const DIR = { mode: S_IFDIR | 0o755, uid: 1000, gid: 1000 }
const C = 4 * 1024 * 1024
const ball = (n: number): string => n.toString(16).padStart(64, '0')

/** A pool in a fresh directory; `reopen` closes it and opens the same LevelDB again. */
async function openPool (t: Test): Promise<{ pool: () => DataPool, reopen: () => Promise<DataPool> }> {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-unit-pool-'))
  let pool = await DataPool.open(dir)
  t.teardown(async () => {
    await pool.close().catch(() => {})
    await rm(dir, { recursive: true, force: true })
  })
  return {
    pool: () => pool,
    reopen: async () => {
      await pool.close()
      pool = await DataPool.open(dir)
      return pool
    }
  }
}

const names = (pool: DataPool, dir: number): string[] => [...pool.entries(dir).keys()].sort()
const node = (pool: DataPool, ino: number | undefined): Inode => {
  const n = ino === undefined ? undefined : pool.get(ino)
  if (!n) throw new Error(`no inode ${ino}`)
  return n
}

t.test('data pool - a new pool has a root directory', async (t) => {
  const { pool } = await openPool(t)
  const root = node(pool(), ROOT_INO)
  t.equal(root.mode & S_IFDIR, S_IFDIR)
  t.equal(root.nlink, 2)
  t.same(names(pool(), ROOT_INO), [])
  t.equal(pool().inodeCount, 1)
})

t.test('data pool - create, lookup, link, unlink, mkdir, rmdir keep names and link counts right', async (t) => {
  const { pool } = await openPool(t)
  const p = pool()
  const d = await p.create(ROOT_INO, 'd', DIR)
  t.equal(node(p, ROOT_INO).nlink, 3, 'a subdirectory adds a link to its parent')
  const f = await p.create(d.ino, 'f', FILE)
  t.equal(p.lookup(d.ino, 'f'), f.ino)
  t.equal(f.nlink, 1)
  t.not(f.ino, d.ino)
  await t.rejects(p.create(d.ino, 'f', FILE), { code: 'CHAAC_EXISTS' })
  await t.rejects(p.create(d.ino, 'x'.repeat(256), FILE), { code: 'CHAAC_NAME_TOO_LONG' })
  await p.create(d.ino, 'x'.repeat(255), FILE)
  await t.rejects(p.create(f.ino, 'g', FILE), { code: 'CHAAC_NOT_DIR' })
  const link = await p.link(f.ino, ROOT_INO, 'hard')
  t.equal(link.nlink, 2)
  await t.rejects(p.link(d.ino, ROOT_INO, 'dirlink'), { code: 'CHAAC_NOT_PERMITTED' })
  const s = await p.create(ROOT_INO, 's', { ...FILE, mode: S_IFLNK | 0o777, target: 'd/f' })
  t.equal(s.target, 'd/f')
  t.equal(s.size, 3)
  await t.rejects(p.rmdir(ROOT_INO, 'd'), { code: 'CHAAC_NOT_EMPTY' })
  await t.rejects(p.unlink(ROOT_INO, 'd'), { code: 'CHAAC_IS_DIR' })
  await t.rejects(p.rmdir(ROOT_INO, 'hard'), { code: 'CHAAC_NOT_DIR' })
  await t.rejects(p.unlink(ROOT_INO, 'nope'), { code: 'CHAAC_NOT_FOUND' })
  t.equal((await p.unlink(d.ino, 'f')).nlink, 1, 'still named by the hard link')
  t.equal((await p.unlink(ROOT_INO, 'hard')).nlink, 0)
  t.same(p.orphans().map((n) => n.ino), [f.ino], 'nameless until purged')
  await p.purge(f.ino)
  t.equal(p.get(f.ino), undefined)
  await p.unlink(d.ino, 'x'.repeat(255))
  await p.rmdir(ROOT_INO, 'd')
  t.equal(node(p, ROOT_INO).nlink, 2)
  t.same(names(p, ROOT_INO), ['s'])
})

t.test('data pool - rename follows the POSIX rules', async (t) => {
  const { pool } = await openPool(t)
  const p = pool()
  const a = await p.create(ROOT_INO, 'a', DIR)
  const b = await p.create(ROOT_INO, 'b', DIR)
  const sub = await p.create(a.ino, 'sub', DIR)
  const f = await p.create(a.ino, 'f', FILE)
  const g = await p.create(b.ino, 'g', FILE)
  const full = await p.create(ROOT_INO, 'full', DIR)
  await p.create(full.ino, 'x', FILE)
  const empty = await p.create(ROOT_INO, 'empty', DIR)

  t.test('a file across directories, replacing a file: the replaced one loses its name', async (t) => {
    const replaced = await p.rename(a.ino, 'f', b.ino, 'g')
    t.equal(replaced?.ino, g.ino)
    t.equal(replaced?.nlink, 0)
    t.equal(p.lookup(b.ino, 'g'), f.ino)
    t.equal(p.lookup(a.ino, 'f'), undefined)
  })
  t.test('onto itself (same inode): nothing happens', async (t) => {
    await p.link(f.ino, b.ino, 'g2')
    t.equal(await p.rename(b.ino, 'g', b.ino, 'g2'), undefined)
    t.equal(p.lookup(b.ino, 'g'), f.ino, 'both names stay')
    t.equal(p.lookup(b.ino, 'g2'), f.ino)
  })
  t.test('a directory into its own subtree is refused', async (t) => {
    await t.rejects(p.rename(ROOT_INO, 'a', sub.ino, 'a'), { code: 'CHAAC_INVALID' })
    await t.rejects(p.rename(ROOT_INO, 'a', a.ino, 'a2'), { code: 'CHAAC_INVALID' })
  })
  t.test('type mismatches and non-empty targets', async (t) => {
    await t.rejects(p.rename(b.ino, 'g', ROOT_INO, 'empty'), { code: 'CHAAC_IS_DIR' }, 'file onto a directory')
    await t.rejects(p.rename(ROOT_INO, 'empty', b.ino, 'g'), { code: 'CHAAC_NOT_DIR' }, 'directory onto a file')
    await t.rejects(p.rename(ROOT_INO, 'a', ROOT_INO, 'full'), { code: 'CHAAC_NOT_EMPTY' }, 'onto a non-empty directory')
    await t.rejects(p.rename(ROOT_INO, 'nope', ROOT_INO, 'x'), { code: 'CHAAC_NOT_FOUND' })
    await t.rejects(p.rename(ROOT_INO, 'a', ROOT_INO, 'n'.repeat(256)), { code: 'CHAAC_NAME_TOO_LONG' })
  })
  t.test('a directory replacing an empty directory in another parent: link counts move', async (t) => {
    const rootLinks = node(p, ROOT_INO).nlink
    const bLinks = node(p, b.ino).nlink
    await p.create(b.ino, 'target', DIR)
    t.equal(node(p, b.ino).nlink, bLinks + 1)
    t.equal(await p.rename(ROOT_INO, 'empty', b.ino, 'target'), undefined, 'a replaced directory is deleted, not returned')
    t.equal(p.lookup(b.ino, 'target'), empty.ino)
    t.equal(node(p, ROOT_INO).nlink, rootLinks - 1, 'root lost a subdirectory')
    t.equal(node(p, b.ino).nlink, bLinks + 1, 'b has one subdirectory, as before the rename')
    // The moved directory's parent is now b: moving b into it is a loop.
    await t.rejects(p.rename(ROOT_INO, 'b', empty.ino, 'b'), { code: 'CHAAC_INVALID' })
  })
})

t.test('data pool - commitFile counts references per ball and returns the released ones', async (t) => {
  const { pool } = await openPool(t)
  const p = pool()
  const f = await p.create(ROOT_INO, 'f', FILE)
  const g = await p.create(ROOT_INO, 'g', FILE)
  t.same(await p.commitFile(f.ino, { size: 3 * C, balls: [ball(1), null, ball(1)], chunkSize: C }), [])
  t.equal(p.balls.get(ball(1))?.refs, 2, 'a ball named twice in one file counts twice')
  t.equal(node(p, f.ino).size, 3 * C)
  t.same(node(p, f.ino).balls, [ball(1), null, ball(1)])
  await p.commitFile(g.ino, { size: C, balls: [ball(1)], chunkSize: C })
  t.equal(p.balls.get(ball(1))?.refs, 3, 'shared between files')
  t.same(await p.commitFile(f.ino, { size: C, balls: [ball(2)], chunkSize: C }), [], 'g still holds ball 1')
  t.equal(p.balls.get(ball(1))?.refs, 1)
  t.ok(p.isReferenced(ball(2)))
  await p.unlink(ROOT_INO, 'g')
  t.same(await p.purge(g.ino), [ball(1)], 'the last reference went with g')
  t.notOk(p.isReferenced(ball(1)))
  t.same(await p.purge(f.ino), [], 'an inode with a name is not purged')
})

t.test('data pool - the upload queue and the map of balls', async (t) => {
  const { pool } = await openPool(t)
  const p = pool()
  const f = await p.create(ROOT_INO, 'f', FILE)
  let queued = 0
  p.on('queued', () => queued++)
  await p.recordCopy('bin-a', ball(1), 100, true)
  await p.markInCloud(ball(1), 100)
  await p.commitFile(f.ino, { size: 2 * C, balls: [ball(1), ball(2)], chunkSize: C }, { upload: true })
  t.same([...p.uploads], [ball(2)], 'only the ball the cloud tier lacks is queued')
  t.equal(queued, 1)
  t.ok(p.inCloud(ball(1)))
  t.notOk(p.inCloud(ball(2)))
  await p.recordCopy('bin-a', ball(2), 100, true)
  await p.recordCopy('bin-b', ball(2), 100, true)
  await p.recordCopy('bin-b', ball(2), 100, true)
  t.same(p.balls.get(ball(2))?.bins, ['bin-a', 'bin-b'], 'a copy is recorded once')
  await p.recordCopy('bin-a', ball(2), 100, false)
  t.same(p.balls.get(ball(2))?.bins, ['bin-b'])
  await p.markInCloud(ball(2), 100)
  t.same([...p.uploads], [])
  await p.dropBall(ball(1))
  t.equal(p.balls.get(ball(1)), undefined)
})

t.test('data pool - everything survives a close and reopen of the LevelDB', async (t) => {
  const { pool, reopen } = await openPool(t)
  const p = pool()
  const d = await p.create(ROOT_INO, 'dir', DIR)
  const f = await p.create(d.ino, 'file', FILE)
  await p.create(ROOT_INO, 'link', { ...FILE, mode: S_IFLNK | 0o777, target: 'dir/file' })
  await p.link(f.ino, ROOT_INO, 'hard')
  await p.commitFile(f.ino, { size: C + 10, balls: [ball(1), ball(2)], chunkSize: C, mtime: 1234 }, { upload: true })
  await p.recordCopy('bin-a', ball(1), 100, true)
  await p.markInCloud(ball(1), 100)
  await p.setattr(f.ino, { mode: S_IFREG | 0o600, uid: 7 })
  await p.rename(ROOT_INO, 'dir', ROOT_INO, 'moved')
  const orphan = await p.create(ROOT_INO, 'orphan', FILE)
  await p.unlink(ROOT_INO, 'orphan')
  const before = { root: node(p, ROOT_INO), file: node(p, f.ino), count: p.inodeCount }

  const q = await reopen()
  t.same(names(q, ROOT_INO), ['hard', 'link', 'moved'])
  const moved = q.lookup(ROOT_INO, 'moved')
  t.equal(moved, d.ino)
  t.equal(q.lookup(d.ino, 'file'), f.ino)
  t.same(node(q, f.ino), before.file, 'the file inode: size, balls, mode, owner, times')
  t.equal(node(q, f.ino).nlink, 2)
  t.same(node(q, ROOT_INO), before.root)
  t.equal(node(q, q.lookup(ROOT_INO, 'link')).target, 'dir/file')
  t.equal(q.inodeCount, before.count)
  t.same(q.orphans().map((n) => n.ino), [orphan.ino], 'an unlinked inode is still there, for garbage collection')
  t.same(q.balls.get(ball(1)), { bytes: 100, refs: 1, cloud: true, bins: ['bin-a'] })
  t.equal(q.balls.get(ball(2))?.refs, 1)
  t.same([...q.uploads], [ball(2)], 'the upload queue survives')
  // Inode numbers are not reused after a restart.
  const next = await q.create(ROOT_INO, 'new', FILE)
  t.ok(next.ino > orphan.ino)
  // The rename loop check works on the reloaded tree.
  await t.rejects(q.rename(ROOT_INO, 'moved', d.ino, 'x'), { code: 'CHAAC_INVALID' })
})

t.test('data pool - many concurrent changes are all stored', async (t) => {
  const { pool, reopen } = await openPool(t)
  const p = pool()
  await Promise.all(Array.from({ length: 200 }, async (_, i) => await p.create(ROOT_INO, `f${i}`, FILE)))
  const q = await reopen()
  t.equal(q.entries(ROOT_INO).size, 200)
  t.equal(new Set(q.entries(ROOT_INO).values()).size, 200, 'distinct inode numbers')
})

t.test('data pool - every stored batch is announced in order, with its operations and the agent it was for', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-unit-pool-'))
  const p = await DataPool.open(dir, { agentId: 'me' })
  t.teardown(async () => {
    await p.close()
    await rm(dir, { recursive: true, force: true })
  })
  const seen: Array<{ seq: number, keys: string[], origin: string }> = []
  p.on('change', (seq, ops, origin) => seen.push({ seq, keys: ops.map((o) => `${o.type} ${o.key}`), origin }))
  const lazy = await p.create(ROOT_INO, 'lazy', FILE, { lazy: true })
  t.same(seen, [], 'a lazy create waits for the next batch')
  await Promise.all([
    p.onBehalfOf('other', async () => await p.create(ROOT_INO, 'd', DIR)),
    p.setattr(lazy.ino, { mode: S_IFREG | 0o600 })
  ])
  t.same(seen.map((c) => [c.seq, c.origin]), [[1, 'other'], [2, 'me']], 'numbered in order, each tagged with its agent')
  t.ok(seen[0].keys.includes(`put i!${lazy.ino.toString(16).padStart(16, '0')}`), 'the lazy create went out with the next batch')
  t.equal(p.seq, 2)
  await p.settled()
  t.equal(p.seq, 2, 'settling announces nothing new')
  const { records, next } = await p.records('', 1)
  t.equal(records.length, 1, 'a page holds at least one record')
  t.equal(next, records[0][0], 'the next page starts after it')
  const all = await p.records('', 1 << 20)
  t.equal(all.next, null)
  t.ok(all.records.some(([key]) => key.startsWith('d!')), 'every stored record, entries too')
})

t.test('data pool - pooled slices: their bytes are committed with the chunk list, read back, and go with the last reference', async (t) => {
  const { pool, reopen } = await openPool(t)
  const f = await pool().create(ROOT_INO, 'f', FILE)
  const bytes = Buffer.from('slice bytes')
  const id = ball(7)
  const slices = [[{ at: 100, len: bytes.length, ball: id, pooled: true }]]
  await t.rejects(pool().commitFile(f.ino, { size: C, balls: [ball(1)], slices, chunkSize: C }), { code: 'CHAAC_INVALID' },
    'a pooled slice without its bytes is refused')
  await t.rejects(pool().commitFile(f.ino, { size: C, balls: [ball(1)], slices, chunkSize: C, pooled: [{ id, data: Buffer.from('short') }] }),
    { code: 'CHAAC_INVALID' }, 'and one whose bytes do not fit it')
  await t.rejects(pool().commitFile(f.ino, { size: C, balls: [ball(1)], slices: [[{ at: C - 1, len: 2, ball: id }]], chunkSize: C }),
    { code: 'CHAAC_INVALID' }, 'and a slice past its chunk')
  await pool().commitFile(f.ino, { size: C, balls: [ball(1)], slices, chunkSize: C, pooled: [{ id, data: bytes }] })
  t.same(node(pool(), f.ino).slices, slices)
  t.same(await pool().readPooled(id), bytes)
  t.equal(pool().balls.get(id)?.refs, 1)
  t.equal(pool().uploads.has(id), false, 'not queued for the cloud tier')
  const again = await reopen()
  t.same(await again.readPooled(id), bytes, 'stored, not only in memory')
  t.same(node(again, f.ino).slices, slices, 'the chunk list with its slices too')
  // The chunk sealed whole again: the slice is released, and dropping its record drops its bytes.
  t.same(await again.commitFile(f.ino, { size: C, balls: [ball(2)], slices: [null], chunkSize: C }), [ball(1), id])
  t.equal(node(again, f.ino).slices, undefined)
  await again.dropBall(id)
  await t.rejects(again.readPooled(id), { code: 'CHAAC_BALL_MISSING' })
})
