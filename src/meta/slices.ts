// A chunk's content as the data pool records it: a base ball (or a hole)
// with slices laid over it in order, each a small ball of bytes written at
// an offset. A small overwrite then stores only the bytes written; a chunk
// that gathered many slices is sealed whole again. Pure: no I/O.

/**
 * Bytes `len` at `at` in the chunk, stored as the ball `ball`: in bins, or
 * (`pooled`, a small one) in the data pool itself, so that the bytes of an
 * fsync and the chunk list that names them reach stable storage in one write.
 */
export interface Slice { at: number, len: number, ball: string, pooled?: boolean }

/** The largest slice kept in the data pool rather than in bins. */
export const MAX_POOLED_SLICE = 64 * 1024

/** Where the bytes of one piece of a chunk come from: slice `slice` of the list, or the base (-1). */
export interface Piece { from: number, to: number, slice: number }

/** The pieces that make up [from, to) of a chunk: the newest slice over a byte wins. */
export function pieces (slices: readonly Slice[], from: number, to: number): Piece[] {
  let out: Piece[] = [{ from, to, slice: -1 }]
  slices.forEach((s, i) => {
    const a = Math.max(from, s.at)
    const b = Math.min(to, s.at + s.len)
    if (a >= b) return
    const next: Piece[] = []
    for (const p of out) {
      if (p.to <= a || p.from >= b) {
        next.push(p)
        continue
      }
      if (p.from < a) next.push({ from: p.from, to: a, slice: p.slice })
      if (p.to > b) next.push({ from: b, to: p.to, slice: p.slice })
    }
    next.push({ from: a, to: b, slice: i })
    out = next.sort((x, y) => x.from - y.from)
  })
  return out
}

/** Every ball a chunk list names: bases and slices, once each per use. */
export function ballsOf (balls: ReadonlyArray<string | null>, slices?: ReadonlyArray<readonly Slice[] | null>): string[] {
  const ids: string[] = []
  for (const id of balls) if (id !== null) ids.push(id)
  for (const list of slices ?? []) for (const s of list ?? []) ids.push(s.ball)
  return ids
}

/** What is wrong with a chunk list's slices (of the chunks `only`, else all) for chunks of `chunkSize` bytes, or undefined. */
export function badSlices (slices: ReadonlyArray<readonly Slice[] | null>, chunkSize: number, only?: readonly number[]): string | undefined {
  for (const idx of only ?? slices.keys()) {
    for (const s of slices[idx] ?? []) {
      if (!Number.isInteger(s.at) || !Number.isInteger(s.len) || s.at < 0 || s.len <= 0 || s.at + s.len > chunkSize) {
        return `chunk ${idx}: slice of ${s.len} bytes at ${s.at} is not within a chunk of ${chunkSize}`
      }
    }
  }
  return undefined
}

/**
 * Where two chunk lists differ: the chunks whose base ball differs, those
 * whose slice list does, and the slices only one side has.
 */
export interface ChunkDiff { balls: number[], slices: number[], added: Slice[], removed: Slice[] }

/**
 * Where two chunk lists differ. Slices and slice lists are never changed in
 * place, so the same object is the same slice (or list): a commit that laid
 * a slice over one chunk costs that slice, not the file nor the chunk.
 */
export function chunkDiff (
  ballsBefore: ReadonlyArray<string | null>, slicesBefore: ReadonlyArray<readonly Slice[] | null>,
  ballsAfter: ReadonlyArray<string | null>, slicesAfter: ReadonlyArray<readonly Slice[] | null>
): ChunkDiff {
  const diff: ChunkDiff = { balls: [], slices: [], added: [], removed: [] }
  for (let i = 0; i < Math.max(ballsBefore.length, ballsAfter.length); i++) {
    if ((ballsBefore[i] ?? null) !== (ballsAfter[i] ?? null)) diff.balls.push(i)
  }
  for (let i = 0; i < Math.max(slicesBefore.length, slicesAfter.length); i++) {
    const a = slicesBefore[i] ?? EMPTY
    const b = slicesAfter[i] ?? EMPTY
    if (a === b || sameSlices(a, b)) continue
    diff.slices.push(i)
    const had = new Set(a)
    const has = new Set(b)
    for (const s of b) if (!had.has(s)) diff.added.push(s)
    for (const s of a) if (!has.has(s)) diff.removed.push(s)
  }
  return diff
}

/** The balls one side of a diff names where the two differ (`before`: the removed slices, else the added), once each per use. */
export function diffBalls (balls: ReadonlyArray<string | null>, diff: ChunkDiff, side: 'before' | 'after'): string[] {
  const ids: string[] = []
  for (const i of diff.balls) {
    const id = balls[i] ?? null
    if (id !== null) ids.push(id)
  }
  for (const s of side === 'before' ? diff.removed : diff.added) ids.push(s.ball)
  return ids
}

const EMPTY: readonly Slice[] = []

/** Whether two lists name the same slices in the same order. */
export function sameSlices (a: readonly Slice[], b: readonly Slice[]): boolean {
  return a.length === b.length && a.every((s, i) => s.ball === b[i].ball && s.at === b[i].at && s.len === b[i].len && s.pooled === b[i].pooled)
}
