// The byte ranges of a chunk written since it was last sealed: sorted,
// disjoint and merged where they touch. Pure: no I/O.

export interface Range { start: number, end: number }

export class Ranges {
  private list: Range[] = []

  get size (): number {
    return this.list.length
  }

  /** Bytes covered. */
  get bytes (): number {
    let n = 0
    for (const r of this.list) n += r.end - r.start
    return n
  }

  /** The ranges, cut at `limit` (a chunk's length: bytes past a file's end are not data). */
  upTo (limit: number): Range[] {
    const out: Range[] = []
    for (const r of this.list) {
      if (r.start >= limit) break
      out.push({ start: r.start, end: Math.min(r.end, limit) })
    }
    return out
  }

  /** Adds [start, end); ranges closer than `gap` bytes are merged into one. */
  add (start: number, end: number, gap = 0): void {
    if (end <= start) return
    const list = this.list
    let i = 0
    while (i < list.length && list[i].end + gap < start) i++
    let j = i
    while (j < list.length && list[j].start <= end + gap) {
      start = Math.min(start, list[j].start)
      end = Math.max(end, list[j].end)
      j++
    }
    list.splice(i, j - i, { start, end })
  }

  /** These ranges with those closer than `gap` bytes merged. */
  coalesced (gap: number): Ranges {
    const c = new Ranges()
    for (const r of this.list) c.add(r.start, r.end, gap)
    return c
  }

  copy (): Ranges {
    const c = new Ranges()
    c.list = this.list.map((r) => ({ ...r }))
    return c
  }
}
