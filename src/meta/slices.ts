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

/** What is wrong with a chunk list's slices for chunks of `chunkSize` bytes, or undefined. */
export function badSlices (slices: ReadonlyArray<readonly Slice[] | null>, chunkSize: number): string | undefined {
  for (const [idx, list] of slices.entries()) {
    for (const s of list ?? []) {
      if (!Number.isInteger(s.at) || !Number.isInteger(s.len) || s.at < 0 || s.len <= 0 || s.at + s.len > chunkSize) {
        return `chunk ${idx}: slice of ${s.len} bytes at ${s.at} is not within a chunk of ${chunkSize}`
      }
    }
  }
  return undefined
}

/** Whether two lists name the same slices in the same order. */
export function sameSlices (a: readonly Slice[], b: readonly Slice[]): boolean {
  return a.length === b.length && a.every((s, i) => s.ball === b[i].ball && s.at === b[i].at && s.len === b[i].len && s.pooled === b[i].pooled)
}
