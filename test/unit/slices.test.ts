// The pure parts of small writes: written ranges of a chunk, and the pieces a
// chunk's bytes come from when slices lie over its ball.
import t from 'tap'
import { Ranges } from '../../src/fs/ranges.ts'
import { badSlices, ballsOf, chunkDiff, diffBalls, pieces, type Slice } from '../../src/meta/slices.ts'
import { decodeSlices, encode, encodeSlices } from '../../src/meta/schema.ts'

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

t.test('slices - a commit sees only the chunks whose lists or balls changed', async (t) => {
  const a: Slice[] = [{ at: 0, len: 4, ball: 'p' }]
  const b: Slice[] = [{ at: 0, len: 4, ball: 'p' }, { at: 8, len: 4, ball: 'q' }]
  const same: Slice[] = [{ at: 0, len: 4, ball: 'p' }]
  const diff = chunkDiff(['x', 'y', null], [a, null, a], ['x', 'z', null, 'w'], [same, b, a])
  t.same(diff, { balls: [1, 3], slices: [1], added: b, removed: [] }, 'an equal list in a new object is no change; a ball of a new chunk is one')
  t.same(diffBalls(['x', 'y', null], diff, 'before'), ['y'], 'the balls the chunks that changed named before')
  t.same(diffBalls(['x', 'z', null, 'w'], diff, 'after'), ['z', 'w', 'p', 'q'], 'and after')
  const kept = b[1]
  const moved = chunkDiff(['x'], [b], ['x'], [[kept, { at: 0, len: 2, ball: 'r' }]])
  t.same(moved, { balls: [], slices: [0], added: [{ at: 0, len: 2, ball: 'r' }], removed: [b[0]] }, 'a slice kept by the next list is neither added nor removed')
  t.same(chunkDiff([], [a, [], null], [], []), { balls: [], slices: [0], added: [], removed: a }, 'an empty list is no list')
  t.equal(badSlices([[{ at: 0, len: 99, ball: 'a' }], [{ at: 0, len: 1, ball: 'b' }]], 10, [1]), undefined, 'only the chunks named are checked')
})

t.test('slices - a chunk list packs into 41 bytes a slice and back; other lists stay MessagePack', async (t) => {
  const id = (c: string): string => c.repeat(64)
  const list: Slice[] = [{ at: 0, len: 8192, ball: id('a'), pooled: true }, { at: 4194303, len: 1, ball: id('0') }, { at: 65536, len: 65536, ball: id('f') }]
  const packed = encodeSlices(list)
  t.equal(packed.length, 1 + 3 * 41)
  t.same(decodeSlices(packed), list)
  t.same(decodeSlices(encodeSlices(list)), list, 'again, from the slices packed before')
  t.same(decodeSlices(encode(list)), list, 'a list stored as MessagePack reads as before')
  const odd: Slice[] = [{ at: 0, len: 1, ball: 'not-an-id' }]
  t.same(decodeSlices(encodeSlices(odd)), odd, 'ids that are not SHA-256 hex are kept as MessagePack')
  t.same(decodeSlices(encodeSlices([])), [])
  t.throws(() => decodeSlices(packed.subarray(0, 30)), /not whole/, 'a cut list is refused')
})
