// The pure parts of small writes: written ranges of a chunk, and the pieces a
// chunk's bytes come from when slices lie over its ball.
import t from 'tap'
import { Ranges } from '../../src/fs/ranges.ts'
import { badSlices, ballsOf, pieces } from '../../src/meta/slices.ts'

t.test('ranges - added ranges merge where they touch or overlap, and are cut at a limit', async (t) => {
  const r = new Ranges()
  r.add(10, 20)
  r.add(30, 40)
  r.add(20, 25)
  t.same(r.upTo(100), [{ start: 10, end: 25 }, { start: 30, end: 40 }])
  r.add(0, 5)
  r.add(24, 31)
  t.same(r.upTo(100), [{ start: 0, end: 5 }, { start: 10, end: 40 }])
  t.equal(r.bytes, 35)
  t.same(r.upTo(12), [{ start: 0, end: 5 }, { start: 10, end: 12 }], 'cut at the limit')
  t.same(r.coalesced(5).upTo(100), [{ start: 0, end: 40 }], 'a gap of 5 bytes merged')
  t.same(r.upTo(100).length, 2, 'coalesced() leaves the ranges as they were')
  r.add(7, 7)
  t.equal(r.size, 2, 'an empty range adds nothing')
})

t.test('slices - the newest slice over a byte wins; the ball shows where none lies', async (t) => {
  const s = (at: number, len: number, ball: string): { at: number, len: number, ball: string } => ({ at, len, ball })
  t.same(pieces([], 0, 10), [{ from: 0, to: 10, slice: -1 }])
  const list = [s(2, 4, 'a'), s(4, 4, 'b'), s(0, 1, 'c')]
  t.same(pieces(list, 0, 10), [
    { from: 0, to: 1, slice: 2 },
    { from: 1, to: 2, slice: -1 },
    { from: 2, to: 4, slice: 0 },
    { from: 4, to: 8, slice: 1 },
    { from: 8, to: 10, slice: -1 }
  ])
  t.same(pieces(list, 3, 5), [{ from: 3, to: 4, slice: 0 }, { from: 4, to: 5, slice: 1 }], 'a part of the chunk')
  t.same(pieces([s(0, 10, 'a'), s(0, 10, 'b')], 0, 10), [{ from: 0, to: 10, slice: 1 }], 'a slice over another')
  t.same(ballsOf(['x', null, 'y'], [[s(0, 1, 'a')], null, [s(1, 1, 'x')]]), ['x', 'y', 'a', 'x'], 'every use of a ball counts')
})

t.test('slices - a slice outside its chunk is refused', async (t) => {
  t.equal(badSlices([[{ at: 0, len: 10, ball: 'a' }]], 10), undefined)
  t.match(badSlices([null, [{ at: 5, len: 10, ball: 'a' }]], 10), /chunk 1/)
  t.ok(badSlices([[{ at: 0, len: 0, ball: 'a' }]], 10), 'empty')
  t.ok(badSlices([[{ at: -1, len: 2, ball: 'a' }]], 10), 'negative')
  t.ok(badSlices([[{ at: 0.5, len: 2, ball: 'a' }]], 10), 'not whole')
})
