// The open-file state shared by every handle of a file on this agent: what
// a commit holds, how a dirty chunk is sealed (slices of what was written, or
// whole) and how reads lay written bytes over the stored ones. Checked with
// a fake ball store in memory whose reads can be held back.
import t, { type Test } from 'tap'
import { COMPACT_AT, OpenFile, type Snapshot } from '../../src/fs/open-file.ts'
import { S_IFREG, type Inode } from '../../src/meta/schema.ts'
import type { Slice } from '../../src/meta/slices.ts'
import type { Balls } from '../../src/balls/balls.ts'

const C = 1024 * 1024

function inode (balls: Array<string | null>, size: number, slices?: Array<Slice[] | null>): Inode {
  return { ino: 2, mode: S_IFREG | 0o644, uid: 0, gid: 0, nlink: 1, size, rdev: 0, atime: 0, mtime: 0, ctime: 0, balls, slices, chunkSize: C }
}

interface FakeStore { store: Balls, balls: Map<string, Buffer>, release: () => void, reads: string[], puts: number[] }

// Committed pooled slices, as the data pool would hold them.
type Pooled = Map<string, Buffer>

function openFile (node: Inode, s: FakeStore, pooled: Pooled, inlineMax = 0, fetchInline?: () => Promise<Buffer>): OpenFile {
  return new OpenFile(2, node, {
    chunkSize: C,
    store: s.store,
    inlineMax,
    fetchInline,
    readPooled: async (id) => {
      const data = pooled.get(id)
      if (!data) throw new Error(`no pooled slice ${id}`)
      return data
    }
  })
}

// Balls by id in memory; with `gated`, reads wait for `release()`.
function fakeStore (gated = false): FakeStore {
  const balls = new Map<string, Buffer>()
  let open!: () => void
  const gate = gated ? new Promise<void>((resolve) => { open = resolve }) : Promise.resolve()
  const reads: string[] = []
  const puts: number[] = []
  let next = 0
  const store = {
    read: async (id: string, offset: number, length: number) => {
      reads.push(id)
      await gate
      const data = balls.get(id)
      if (!data) throw new Error(`no ball ${id}`)
      return data.subarray(offset, offset + length)
    },
    put: async (data: Buffer) => {
      const id = `ball-${next++}`
      balls.set(id, Buffer.from(data))
      puts.push(data.length)
      return id
    },
    isLocal: () => true,
    prefetch: () => {},
    sync: async () => {}
  }
  return { store: store as unknown as Balls, balls, release: () => open?.(), reads, puts }
}

// A file of one chunk stored as the ball 'base', every byte `fill`.
function overBall (fill: number, gated = false): { pooled: Pooled, s: FakeStore, file: OpenFile, model: Buffer } {
  const pooled: Pooled = new Map()
  const s = fakeStore(gated)
  s.balls.set('base', Buffer.alloc(C, fill))
  return { pooled, s, file: openFile(inode(['base'], C), s, pooled), model: Buffer.alloc(C, fill) }
}

async function commit (file: OpenFile, pooled: Pooled): Promise<Snapshot> {
  return await file.serially(async (version) => {
    const snap = await file.settle()
    for (const { id, data } of snap.pooled) pooled.set(id, data)
    file.markCommitted(version)
    file.markPooled(snap)
    return snap
  })
}

// The bytes of a committed snapshot, as a reader on another agent would put them together.
function content (snap: Snapshot, balls: Map<string, Buffer>, pooled: Pooled): Buffer {
  const out = Buffer.alloc(snap.size)
  const chunks = Math.max(snap.balls.length, snap.slices.length)
  for (let i = 0; i < chunks; i++) {
    const base = snap.balls[i] ?? null
    if (base !== null) (balls.get(base) as Buffer).copy(out, i * C)
    for (const s of snap.slices[i] ?? []) ((s.pooled === true ? pooled : balls).get(s.ball) as Buffer).copy(out, i * C + s.at)
  }
  return out
}

async function read (file: OpenFile, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length)
  const n = await file.read(buf, length, offset, false)
  return buf.subarray(0, n)
}

t.test('open file - a write does not wait for the stored chunk, and a commit racing it keeps it for the next', async (t) => {
  const pooled: Pooled = new Map()
  const s = fakeStore(true)
  s.balls.set('base', Buffer.alloc(C, 0x61))
  const file = openFile(inode(['base'], C), s, pooled)
  // Reads of the stored chunk are held back: the write and the commit go on meanwhile.
  await file.write(Buffer.from('B'), 10)
  t.ok(file.changed, 'written')
  const reading = read(file, 0, 16)
  const snap = await commit(file, pooled)
  t.same(s.reads, ['base'], 'only the reader read the ball')
  s.release()
  t.equal((await reading).toString(), 'aaaaaaaaaaBaaaaa', 'the read lays the written byte over the stored ones')
  t.notOk(file.changed)
  t.same(snap.balls, ['base'], 'the ball stays')
  t.equal(snap.slices[0]?.length, 1, 'one slice')
  t.same(snap.slices[0]?.[0] && { at: snap.slices[0][0].at, len: snap.slices[0][0].len }, { at: 10, len: 1 })
  t.equal(content(snap, s.balls, pooled)[10], 'B'.charCodeAt(0))
  t.equal(snap.slices[0]?.[0].pooled, true, 'a small slice is kept in the data pool')
  t.same(snap.pooled.map((p) => p.data.toString()), ['B'], 'its bytes go with the commit')
  t.same(snap.pinned, [], 'no ball to pin')
})

t.test('open file - small overwrites are sealed as slices of what was written; reads lay them over the ball', async (t) => {
  const pooled: Pooled = new Map()
  const s = fakeStore()
  const bytes = Buffer.alloc(C)
  for (let i = 0; i < C; i++) bytes[i] = i % 251
  s.balls.set('base', bytes)
  const file = openFile(inode(['base'], C), s, pooled)
  const model = Buffer.from(bytes)
  for (let i = 0; i < 10; i++) {
    const at = (i * 77_777) % (C - 8192)
    const data = Buffer.alloc(8192, i + 1)
    await file.write(data, at)
    data.copy(model, at)
    const snap = await commit(file, pooled)
    t.same(snap.pooled.map((p) => p.data.length), [8192], `commit ${i} stored only the 8 KiB written`)
    t.equal(s.puts.length, 0, 'and no ball')
    t.same(content(snap, s.balls, pooled), model, `commit ${i} holds the file`)
  }
  t.same(await read(file, 0, C), model, 'the open file reads the same')
  const reopened = openFile(inode(['base'], C, (await commit(file, pooled)).slices), s, pooled)
  t.same(await read(reopened, 0, C), model, 'and so does a fresh open of the committed chunk list')
})

// The balls a snapshot names; refersTo answers the same for every ball seen so far.
function checkRefs (t: Test, file: OpenFile, snap: Snapshot, seen: Set<string>): void {
  const named = new Set<string>()
  for (const ball of snap.balls) if (ball != null) named.add(ball)
  for (const list of snap.slices) for (const s of list ?? []) named.add(s.ball)
  for (const id of named) seen.add(id)
  const wrong = [...seen].filter((id) => file.refersTo(id) !== named.has(id))
  t.same(wrong, [], 'refersTo names exactly the balls of the content')
}

t.test('open file - a chunk that gathered many slices is merged into one ball in the background', async (t) => {
  const { pooled, s, file, model } = overBall(7)
  const seen = new Set<string>()
  t.ok(file.refersTo('base'))
  for (let i = 0; i < COMPACT_AT + 3; i++) {
    const at = i * 4096
    await file.write(Buffer.alloc(100, i), at)
    model.fill(i, at, at + 100)
    const snap = await commit(file, pooled)
    // The merge starts with the last slice and changes the content behind the snapshot.
    if (i < COMPACT_AT - 1) checkRefs(t, file, snap, seen)
  }
  await file.drain()
  // One more slice after the merge: it stays a slice over the merged ball.
  await file.write(Buffer.alloc(10, 0xee), 500_000)
  model.fill(0xee, 500_000, 500_010)
  const snap = await commit(file, pooled)
  checkRefs(t, file, snap, seen)
  t.notOk(file.refersTo('base'), 'the merged ball replaced the old one')
  t.not(snap.balls[0], 'base', 'a new ball')
  t.ok((snap.slices[0]?.length ?? 0) < 5, `a few slices left (${snap.slices[0]?.length ?? 0})`)
  t.same(content(snap, s.balls, pooled), model, 'the same bytes')
  t.same(await read(file, 0, C), model)
})

t.test('open file - a page written again and again stays one slice: slices wholly under newer ones go', async (t) => {
  const { pooled, s, file, model } = overBall(7)
  const seen = new Set<string>()
  // A database's log: the page being filled is written and synced again at every commit, then the next one.
  for (let i = 0; i < 3 * COMPACT_AT; i++) {
    const at = 40_960 + Math.floor(i / 20) * 8192
    const data = Buffer.alloc(8192, i % 251)
    await file.write(data, at)
    data.copy(model, at)
    const snap = await commit(file, pooled)
    t.same(content(snap, s.balls, pooled), model, `commit ${i} holds the file`)
    checkRefs(t, file, snap, seen)
  }
  const snap = await commit(file, pooled)
  const pages = Math.ceil(3 * COMPACT_AT / 20)
  t.equal(snap.slices[0]?.length, pages, 'a slice a page: the last one written')
  t.same(s.puts, [], 'no merge into a whole ball was needed')
  t.same(await read(file, 0, C), model, 'the open file reads the same')
  // A slice only partly under a newer one stays.
  await file.write(Buffer.alloc(4096, 0xaa), 200_000)
  await commit(file, pooled)
  await file.write(Buffer.alloc(4096, 0xbb), 202_048)
  model.fill(0xaa, 200_000, 204_096)
  model.fill(0xbb, 202_048, 206_144)
  const last = await commit(file, pooled)
  t.equal(last.slices[0]?.length, pages + 2, 'the partly covered slice stays under the newer one')
  t.same(content(last, s.balls, pooled), model)
})

t.test('open file - a write of more than a quarter of a chunk is sealed whole, not as a slice', async (t) => {
  const { pooled, s, file, model } = overBall(7)
  await file.write(Buffer.alloc(C / 2, 9), 0)
  model.fill(9, 0, C / 2)
  const snap = await commit(file, pooled)
  t.same(s.puts, [C], 'sealed whole, once')
  t.equal(snap.slices[0] ?? null, null)
  t.same(content(snap, s.balls, pooled), model)
})

t.test('open file - a slice larger than the data pool keeps is a ball in bins', async (t) => {
  const { pooled, s, file } = overBall(1)
  await file.write(Buffer.alloc(100_000, 2), 5000)
  const snap = await commit(file, pooled)
  t.same(s.puts, [100_000], 'one ball of the bytes written')
  t.equal(snap.slices[0]?.[0].pooled, undefined)
  t.same(snap.pinned, [snap.slices[0]?.[0].ball], 'pinned until committed')
  t.same(snap.unsynced, [snap.slices[0]?.[0].ball], 'synced at the next fsync')
  const expect = Buffer.alloc(C, 1)
  expect.fill(2, 5000, 105_000)
  t.same(content(snap, s.balls, pooled), expect)
})

t.test('open file - a truncate inside a chunk with slices drops the bytes past the end for good', async (t) => {
  const { pooled, s, file } = overBall(1)
  await file.write(Buffer.alloc(4096, 2), C - 8192)
  await commit(file, pooled)
  await file.truncate(4096)
  await file.truncate(C)
  const snap = await commit(file, pooled)
  const expect = Buffer.alloc(C)
  expect.fill(1, 0, 4096)
  t.same(content(snap, s.balls, pooled), expect, 'zeros where the slice and the ball were')
  t.same(await read(file, 0, C), expect)
})

t.test('open file - a small file kept inline grows into a ball with its bytes', async (t) => {
  const pooled: Pooled = new Map()
  const s = fakeStore()
  const file = openFile(inode([], 5), s, pooled, 4096, async () => Buffer.from('hello'))
  await file.write(Buffer.alloc(100_000, 0x7a), 5)
  const snap = await commit(file, pooled)
  t.equal(snap.inline, undefined)
  t.equal(snap.slices[0] ?? null, null, 'no slice over inline bytes')
  t.equal(content(snap, s.balls, pooled).subarray(0, 6).toString(), 'helloz')
})

t.test('open file - once a small file grew into a ball, its inline bytes are not the chunk\'s content any more', async (t) => {
  const pooled: Pooled = new Map()
  const s = fakeStore()
  const file = openFile(inode([], 4096), s, pooled, 4096, async () => Buffer.alloc(4096, 'i'))
  await file.write(Buffer.alloc(4095, 'a'), 4096)
  const first = await commit(file, pooled)
  t.equal(first.inline, undefined)
  await file.write(Buffer.alloc(10, 'b'), 8191)
  const snap = await commit(file, pooled)
  const expect = Buffer.concat([Buffer.alloc(4096, 'i'), Buffer.alloc(4095, 'a'), Buffer.alloc(10, 'b')])
  t.same(content(snap, s.balls, pooled), expect, 'the bytes appended before the first commit are kept')
  t.same(await read(file, 0, expect.length), expect)
})

t.test('open file - small writes far into a stored chunk take a few pages, in whatever order they come', async (t) => {
  const { pooled, s, file, model } = overBall(5)
  const writes: Array<[number, number, number]> = [[C - 4096, 100, 1], [C / 2 + 7, 5000, 2], [C / 2 - 3, 10, 3], [12_000, 1, 4]]
  for (const [at, n, fill] of writes) {
    await file.write(Buffer.alloc(n, fill), at)
    model.fill(fill, at, at + n)
  }
  t.same(await read(file, 0, C), model, 'reads lay the writes over the stored bytes')
  const snap = await commit(file, pooled)
  t.same(content(snap, s.balls, pooled), model)
  t.same(s.puts, [], 'slices only')
})

t.test('open file - a small file whose inline bytes were at hand grows into a whole ball, not slices over nothing', async (t) => {
  const pooled: Pooled = new Map()
  const s = fakeStore()
  const file = openFile(inode([], 100), s, pooled, 4096, async () => Buffer.alloc(100, 'i'))
  t.same(await read(file, 0, 100), Buffer.alloc(100, 'i'), 'the inline bytes are fetched')
  await file.write(Buffer.alloc(8192, 'w'), 200_000)
  const snap = await commit(file, pooled)
  const expect = Buffer.alloc(208_192)
  expect.fill('i', 0, 100)
  expect.fill('w', 200_000)
  t.same(content(snap, s.balls, pooled), expect, 'the first bytes are kept')
})
