// The open-file state shared by every handle of a file on this agent: the
// bookkeeping that decides what a commit holds, checked with a fake ball store
// whose reads wait until the test lets them go.
import t from 'tap'
import { OpenFile } from '../../src/fs/open-file.ts'
import { S_IFREG, type Inode } from '../../src/meta/schema.ts'
import type { BallStore } from '../../src/store/ball-store.ts'

const C = 64 * 1024

function inode (balls: Array<string | null>, size: number): Inode {
  return { ino: 2, mode: S_IFREG | 0o644, uid: 0, gid: 0, nlink: 1, size, rdev: 0, atime: 0, mtime: 0, ctime: 0, balls, chunkSize: C }
}

// Balls by id; reads of a ball wait for `release()`.
function gatedStore (balls: Map<string, Buffer>): { store: BallStore, release: () => void, reads: () => number } {
  let open!: () => void
  const gate = new Promise<void>((resolve) => { open = resolve })
  let reads = 0
  let next = 0
  const store = {
    read: async (id: string, offset: number, length: number) => {
      reads++
      await gate
      const data = balls.get(id)
      if (!data) throw new Error(`no ball ${id}`)
      return data.subarray(offset, offset + length)
    },
    put: async (data: Buffer) => {
      const id = `ball-${next++}`
      balls.set(id, Buffer.from(data))
      return id
    },
    isLocal: () => true,
    prefetch: () => {}
  }
  return { store: store as unknown as BallStore, release: open, reads: () => reads }
}

t.test('open file - a commit that runs while a write waits for its chunk does not count that write as committed', async (t) => {
  // Chunk 0 is a stored ball: a write into it must read the ball first.
  const balls = new Map([['base', Buffer.alloc(C, 0x61)]])
  const { store, release, reads } = gatedStore(balls)
  const file = new OpenFile(2, inode(['base'], C), C, store, 0)
  const writing = file.write(Buffer.from('B'), 10)
  t.equal(reads(), 1, 'the write waits for the ball')
  // Another handle's fsync commits meanwhile: it cannot hold the write's byte yet.
  const first = await file.serially(async (version) => {
    const snap = await file.settle()
    file.markCommitted(version)
    return snap
  })
  t.same(first.balls, ['base'], 'the first commit holds the old chunk')
  release()
  await writing
  t.ok(file.changed, 'the write still waits for a commit')
  const second = await file.serially(async (version) => {
    const snap = await file.settle()
    file.markCommitted(version)
    return snap
  })
  const id = second.balls[0] as string
  t.not(id, 'base', 'the next commit holds a new ball')
  t.equal(balls.get(id)?.[10], 'B'.charCodeAt(0), 'with the written byte')
  t.same(second.pinned, [id], 'pinned until committed')
  t.notOk(file.changed)
})
