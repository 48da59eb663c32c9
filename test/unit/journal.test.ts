// The data pool's journal: records read back whole, a torn or corrupt tail
// ends it, and at open LevelDB gets the records it does not hold yet (and
// only those: an old record never brings back an old value).
import { appendFile, mkdtemp, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DataPool } from '../../src/meta/data-pool.ts'
import { decodeRecords, encodeRecord } from '../../src/meta/journal.ts'
import { ROOT_INO, S_IFREG, direntKey, encode, inodeKey, type Inode } from '../../src/meta/schema.ts'
import { waitFor } from '../helpers/wait.ts'

const FILE = { mode: S_IFREG | 0o644, uid: 0, gid: 0 }
const JOURNAL = 'chaac-journal'

async function poolDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-unit-journal-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

const inode = (ino: number, size: number): Inode => ({ ino, mode: FILE.mode, uid: 0, gid: 0, nlink: 1, size, rdev: 0, atime: 1, mtime: 1, ctime: 1 })

t.test('journal - records read back whole; a torn or corrupt tail ends the journal', async (t) => {
  const a = encodeRecord(1, [{ type: 'put', key: 'k1', value: Buffer.from('v1') }, { type: 'del', key: 'k0' }])
  const b = encodeRecord(2, [{ type: 'put', key: 'k2', value: Buffer.alloc(5000, 7) }])
  const c = encodeRecord(3, [{ type: 'put', key: 'k3', value: Buffer.from('v3') }])
  const all = decodeRecords(Buffer.concat([a, b, c]))
  t.same(all.map((r) => r.seq), [1, 2, 3])
  t.same(all[0].ops, [{ type: 'put', key: 'k1', value: Buffer.from('v1') }, { type: 'del', key: 'k0' }])
  t.same(all[1].ops[0], { type: 'put', key: 'k2', value: Buffer.alloc(5000, 7) })
  for (let cut = 1; cut < c.length; cut++) {
    t.same(decodeRecords(Buffer.concat([a, b, c.subarray(0, cut)])).map((r) => r.seq), [1, 2], `cut ${cut} bytes into the last record`)
  }
  const bad = Buffer.from(b)
  bad[bad.length - 1] ^= 1
  t.same(decodeRecords(Buffer.concat([a, bad, c])).map((r) => r.seq), [1], 'a corrupt record and all after it are dropped')
  t.same(decodeRecords(Buffer.alloc(0)), [])
})

t.test('journal - LevelDB gets the records it misses at open; the journal is emptied', async (t) => {
  const dir = await poolDir(t)
  let pool = await DataPool.open(dir)
  const f = await pool.create(ROOT_INO, 'f', FILE)
  await pool.commitFile(f.ino, { size: 3, balls: [], chunkSize: 4 << 20, inline: Buffer.from('abc') })
  await pool.close()
  t.equal((await stat(join(dir, JOURNAL))).size, 0, 'a clean close leaves an empty journal')
  // As if the agent died after appending two records LevelDB never got.
  const applied = await lastSeq(dir)
  await writeFile(join(dir, JOURNAL), Buffer.concat([
    encodeRecord(applied + 1, [{ type: 'put', key: inodeKey(99), value: encode(inode(99, 0)) }, { type: 'put', key: direntKey(ROOT_INO, 'g'), value: Buffer.from('99') }]),
    encodeRecord(applied + 2, [{ type: 'put', key: inodeKey(99), value: encode(inode(99, 7)) }])
  ]))
  pool = await DataPool.open(dir)
  t.teardown(async () => await pool.close().catch(() => {}))
  t.equal(pool.lookup(ROOT_INO, 'g'), 99, 'the name from the journal')
  t.equal(pool.get(99)?.size, 7, 'the later record last')
  t.equal((await stat(join(dir, JOURNAL))).size, 0, 'emptied once LevelDB holds it')
  t.equal(await lastSeq(dir, pool), applied + 2)
})

t.test('journal - a record LevelDB already holds is not written again', async (t) => {
  const dir = await poolDir(t)
  let pool = await DataPool.open(dir)
  const f = await pool.create(ROOT_INO, 'f', FILE)
  await pool.commitFile(f.ino, { size: 1, balls: [], chunkSize: 4 << 20, inline: Buffer.from('a') })
  await pool.commitFile(f.ino, { size: 2, balls: [], chunkSize: 4 << 20, inline: Buffer.from('ab') })
  await pool.close()
  const applied = await lastSeq(dir)
  // An old record (its number already applied) that would set the size back.
  await appendFile(join(dir, JOURNAL), encodeRecord(applied - 1, [{ type: 'put', key: inodeKey(f.ino), value: encode({ ...inode(f.ino, 1) }) }]))
  pool = await DataPool.open(dir)
  t.teardown(async () => await pool.close().catch(() => {}))
  t.equal(pool.get(f.ino)?.size, 2)
  t.same(await pool.readInline(f.ino), Buffer.from('ab'))
})

t.test('journal - changes are in the journal before LevelDB has them, and in LevelDB soon after', async (t) => {
  const dir = await poolDir(t)
  const pool = await DataPool.open(dir)
  t.teardown(async () => await pool.close().catch(() => {}))
  const f = await pool.create(ROOT_INO, 'f', FILE)
  await pool.commitFile(f.ino, { size: 5, balls: [], chunkSize: 4 << 20, inline: Buffer.from('hello') })
  t.ok((await stat(join(dir, JOURNAL))).size > 0, 'appended at once')
  t.same(await pool.readInline(f.ino), Buffer.from('hello'), 'a reader of LevelDB waits for it to catch up')
  const page = await pool.records('', 1 << 20)
  t.ok(page.records.some(([key]) => key === inodeKey(f.ino)), 'a snapshot page holds every change announced')
})

async function lastSeq (dir: string, open?: DataPool): Promise<number> {
  if (open) {
    const page = await open.records('', 1 << 20)
    return Number(page.records.find(([key]) => key === 'm!journal-seq')?.[1].toString())
  }
  const pool = await DataPool.open(dir)
  try {
    return await lastSeq(dir, pool)
  } finally {
    await pool.close()
  }
}

t.test('journal - a sync while a plain batch is on its way to LevelDB waits for a synced batch of its own', async (t) => {
  const dir = await poolDir(t)
  const pool = await DataPool.open(dir)
  t.teardown(async () => await pool.close().catch(() => {}))
  const f = await pool.create(ROOT_INO, 'f', FILE)
  const db = (pool as unknown as { db: { batch: (ops: unknown[], opts?: { sync?: boolean }) => Promise<void> } }).db
  let started = 0
  const written: boolean[] = []
  let open = (): void => {}
  const gate = new Promise<void>((resolve) => { open = resolve })
  const batch = db.batch.bind(db)
  db.batch = async (ops, opts) => {
    // The first (plain) batch waits until the sync below has been asked for.
    if (++started === 1) await gate
    await batch(ops, opts)
    written.push(opts?.sync === true)
  }
  await pool.commitFile(f.ino, { size: 1, balls: [], chunkSize: 4 << 20, inline: Buffer.from('a') })
  await waitFor(() => started === 1, { timeoutMs: 5_000, what: 'the plain batch on its way' })
  const synced = pool.sync()
  open()
  await synced
  t.same(written, [false, true], 'a second batch, written with sync, was done before sync returned')
})
