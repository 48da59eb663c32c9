// The data pool's journal: records read back whole, a torn or corrupt tail
// ends it, and at open LevelDB gets the records it does not hold yet (and
// only those: an old record never brings back an old value).
import { mkdtemp, open, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { crc32 } from 'node:zlib'
import { pack } from 'msgpackr'
import t, { type Test } from 'tap'
import { Level } from 'level'
import { DataPool } from '../../src/meta/data-pool.ts'
import { BatchWriter, type BatchOp } from '../../src/meta/batch-writer.ts'
import { Journal, decodeRecords, encodeRecord } from '../../src/meta/journal.ts'
import { ROOT_INO, S_IFREG, direntKey, encode, inodeKey, type Inode } from '../../src/meta/schema.ts'
import { waitFor } from '../helpers/wait.ts'

const FILE = { mode: S_IFREG | 0o644, uid: 0, gid: 0 }
const JOURNAL = 'chaac-journal'

/** The records in one file of a pool's journal (as a replay reads them, before it skips those LevelDB holds). */
async function fileRecords (dir: string, i: number): Promise<number[]> {
  return decodeRecords(await readFile(join(dir, `${JOURNAL}.${i}`))).map((r) => r.seq)
}

/** The records a replay of the pool's journal would write to LevelDB (the pool closed). */
async function toReplay (dir: string): Promise<number[]> {
  const stored = await lastSeq(dir)
  return [...await fileRecords(dir, 0), ...await fileRecords(dir, 1)].filter((seq) => seq > stored)
}

/** Whether the journal's files hold a record that writes `key`. */
async function holds (dir: string, key: string): Promise<boolean> {
  const files = await Promise.all([0, 1].map(async (i) => decodeRecords(await readFile(join(dir, `${JOURNAL}.${i}`)))))
  return files.flat().some((r) => r.ops.some((op) => op.key === key))
}

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
  const scratch = Buffer.alloc(64)
  const inScratch = encodeRecord(4, [{ type: 'put', key: 'k4', value: Buffer.from('v4') }], scratch)
  t.equal(inScratch.buffer, scratch.buffer, 'a record that fits is written into the buffer given')
  t.same(decodeRecords(inScratch)[0].ops, [{ type: 'put', key: 'k4', value: Buffer.from('v4') }])
  t.not(encodeRecord(5, [{ type: 'put', key: 'k5', value: Buffer.alloc(100) }], scratch).buffer, scratch.buffer, 'a larger one gets its own')
  t.same(decodeRecords(encodeRecord(6, [{ type: 'put', key: 'dir!ñame', value: Buffer.alloc(0) }]))[0].ops, [{ type: 'put', key: 'dir!ñame', value: Buffer.alloc(0) }], 'keys in UTF-8, empty values')
})

t.test('journal - records an older agent wrote (MessagePack bodies) read as before', async (t) => {
  const old = (seq: number, pairs: Array<[string, Buffer | null]>): Buffer => {
    const body = pack([seq, pairs])
    const head = Buffer.alloc(8)
    head.writeUInt32BE(body.length, 0)
    head.writeUInt32BE(crc32(body), 4)
    return Buffer.concat([head, body])
  }
  const records = decodeRecords(Buffer.concat([old(1, [['k1', Buffer.from('v1')], ['k0', null]]), encodeRecord(2, [{ type: 'del', key: 'k1' }])]))
  t.same(records, [
    { seq: 1, ops: [{ type: 'put', key: 'k1', value: Buffer.from('v1') }, { type: 'del', key: 'k0' }] },
    { seq: 2, ops: [{ type: 'del', key: 'k1' }] }
  ])
})

t.test('journal - LevelDB gets the records it misses at open; the journal is emptied', async (t) => {
  const dir = await poolDir(t)
  let pool = await DataPool.open(dir)
  const f = await pool.create(ROOT_INO, 'f', FILE)
  await pool.commitFile(f.ino, { size: 3, balls: [], chunkSize: 4 << 20, inline: Buffer.from('abc') })
  await pool.close()
  t.same(await toReplay(dir), [], 'a clean close leaves nothing to replay')
  t.same([...await fileRecords(dir, 0), ...await fileRecords(dir, 1)], [], 'nor any old record for the next open to read')
  // As if the agent died after appending two records LevelDB never got.
  const applied = await lastSeq(dir)
  // In both files, as after a switch from one to the other.
  await writeFile(join(dir, `${JOURNAL}.1`), Buffer.concat([
    encodeRecord(applied + 1, [{ type: 'put', key: inodeKey(99), value: encode(inode(99, 0)) }, { type: 'put', key: direntKey(ROOT_INO, 'g'), value: Buffer.from('99') }])
  ]))
  await writeFile(join(dir, `${JOURNAL}.0`), encodeRecord(applied + 2, [{ type: 'put', key: inodeKey(99), value: encode(inode(99, 7)) }]))
  pool = await DataPool.open(dir)
  t.teardown(async () => await pool.close().catch(() => {}))
  t.equal(pool.lookup(ROOT_INO, 'g'), 99, 'the name from the journal')
  t.equal(pool.get(99)?.size, 7, 'the later record last')
  t.equal(await lastSeq(dir, pool), applied + 2)
  await pool.close()
  t.same(await toReplay(dir), [], 'emptied once LevelDB holds it')
})

t.test('journal - a record LevelDB already holds is not written again', async (t) => {
  const dir = await poolDir(t)
  let pool = await DataPool.open(dir)
  const f = await pool.create(ROOT_INO, 'f', FILE)
  await pool.commitFile(f.ino, { size: 1, balls: [], chunkSize: 4 << 20, inline: Buffer.from('a') })
  await pool.commitFile(f.ino, { size: 2, balls: [], chunkSize: 4 << 20, inline: Buffer.from('ab') })
  await pool.close()
  const applied = await lastSeq(dir)
  // An old record (its number already applied) that would set the size back, where the next append would go.
  const file = await open(join(dir, `${JOURNAL}.0`), 'r+')
  await file.write(encodeRecord(applied - 1, [{ type: 'put', key: inodeKey(f.ino), value: encode({ ...inode(f.ino, 1) }) }]), 0, undefined, 0)
  await file.close()
  t.same(await fileRecords(dir, 0), [applied - 1], 'the old record is read')
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
  t.ok(await holds(dir, inodeKey(f.ino)), 'appended at once')
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

t.test('journal - the commit of an fsync is durable once the journal is flushed, without waiting for LevelDB; close flushes LevelDB first', async (t) => {
  const dir = await poolDir(t)
  const pool = await DataPool.open(dir)
  t.teardown(async () => await pool.close().catch(() => {}))
  const f = await pool.create(ROOT_INO, 'f', FILE)
  const db = (pool as unknown as { db: { batch: (ops: unknown[], opts?: { sync?: boolean }) => Promise<void> } }).db
  const written: boolean[] = []
  let open = (): void => {}
  const gate = new Promise<void>((resolve) => { open = resolve })
  const batch = db.batch.bind(db)
  db.batch = async (ops, opts) => {
    await gate
    await batch(ops, opts)
    written.push(opts?.sync === true)
  }
  await pool.commitFile(f.ino, { size: 1, balls: [], chunkSize: 4 << 20, inline: Buffer.from('a') }, { sync: true })
  await pool.sync()
  t.same(written, [], 'both returned while LevelDB had nothing yet')
  t.ok(await holds(dir, inodeKey(f.ino)), 'the journal holds the commit')
  open()
  await pool.close()
  t.equal(written.at(-1), true, 'close wrote LevelDB with sync')
  t.same(await toReplay(dir), [], 'then emptied the journal')
  const again = await DataPool.open(dir)
  t.equal(again.get(f.ino)?.size, 1)
  await again.close()
})

t.test('journal - two files: appends move to the other once one is full, and a file LevelDB holds all of is emptied', async (t) => {
  const dir = await poolDir(t)
  const journal = Journal.open(join(dir, JOURNAL), { segmentBytes: 1000 })
  t.teardown(() => journal.close())
  const op = (i: number): BatchOp[] => [{ type: 'put', key: `k${i}`, value: Buffer.alloc(300, i) }]
  const seqs = (): number[] => journal.records().map((r) => r.seq)
  for (let i = 1; i <= 4; i++) journal.append(i, op(i))
  t.same(await fileRecords(dir, 0), [1, 2, 3, 4], 'the first file filled up')
  t.same(await fileRecords(dir, 1), [])
  journal.append(5, op(5))
  t.same(await fileRecords(dir, 1), [5], 'then the second takes the appends')
  journal.applied(3)
  t.same(seqs(), [1, 2, 3, 4, 5], 'not emptied while LevelDB misses a record in it')
  journal.applied(4)
  t.same(seqs(), [5], 'emptied once LevelDB holds all of it, though the other file is not applied yet')
  for (let i = 6; i <= 9; i++) journal.append(i, op(i))
  journal.append(10, op(10))
  t.same(await fileRecords(dir, 0), [9, 10], 'back to the first file once the second filled up, written from its start')
  t.same(seqs(), [5, 6, 7, 8, 9, 10], 'records from both files, in order')
  journal.applied(10)
  t.same(seqs(), [9, 10], 'the full file is emptied; the one being written stays until it is big')
})

t.test('journal - its files are laid out ahead of the records and written in place: fsyncs rarely find a file grown', async (t) => {
  const dir = await poolDir(t)
  const journal = Journal.open(join(dir, JOURNAL), { segmentBytes: 4096 })
  const sizes = async (): Promise<string> => (await Promise.all([0, 1].map(async (i) => (await stat(join(dir, `${JOURNAL}.${i}`))).size))).join(',')
  const seen = new Set<string>()
  for (let i = 1; i <= 60; i++) {
    journal.append(i, [{ type: 'put', key: `k${i}`, value: Buffer.alloc(200, i) }])
    await journal.sync()
    journal.applied(i - 1)
    seen.add(await sizes())
  }
  t.ok(seen.size <= 2, `the files grew only when first written, each by a megabyte of zeros (sizes seen: ${[...seen].join(' ')})`)
  t.same(journal.records().at(-1)?.seq, 60)
  journal.close()
  // Reopened as after a crash: each file's records end where its numbers stop growing.
  const again = Journal.open(join(dir, JOURNAL), { segmentBytes: 4096 })
  const seqs = again.records().map((r) => r.seq)
  again.close()
  t.same(seqs.filter((seq) => seq > 59), [60], 'the last record is read back')
  t.ok(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]), 'in order, no record twice')
})

t.test('journal - LevelDB gets the batches gathered: a key committed again and again goes once; until then the writer answers for it', async (t) => {
  const dir = await poolDir(t)
  const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
  await db.open()
  const journal = Journal.open(join(dir, JOURNAL))
  t.teardown(async () => {
    journal.close()
    await db.close()
  })
  const batches: Array<Array<{ key: string }>> = []
  const batch = db.batch.bind(db) as (ops: any[], opts?: any) => Promise<void>
  ;(db as any).batch = async (ops: any[], opts?: any) => {
    batches.push(ops)
    await batch(ops, opts)
  }
  const writer = new BatchWriter(db, journal, 0)
  for (let i = 0; i < 50; i++) await writer.write([{ type: 'put', key: 'k', value: Buffer.from(`v${i}`) }], i % 10 === 0)
  await writer.write([{ type: 'put', key: 'gone', value: Buffer.from('x') }])
  await writer.write([{ type: 'del', key: 'gone' }])
  t.same(writer.pending('k'), Buffer.from('v49'), 'the last value, before LevelDB has it')
  t.equal(writer.pending('gone'), null, 'a deleted key answers null')
  t.equal(writer.pending('other'), undefined, 'LevelDB answers for the rest')
  await writer.applied()
  t.same(await db.get('k'), Buffer.from('v49'))
  t.equal(await db.get('gone'), undefined)
  t.equal(writer.pending('k'), undefined, 'LevelDB answers once it holds the key')
  const puts = batches.flat().filter((op) => op.key === 'k').length
  t.ok(puts < 10, `50 commits of one key went to LevelDB ${puts} times`)
  await writer.flush()
})
