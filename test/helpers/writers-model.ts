// The model of what POSIX allows a file to hold after concurrent writers,
// for test/mount/concurrent-writers.test.ts. Every write's bytes come from a
// table of its own (see test/helpers/writers.py), so a byte tells which write
// it may have come from. Within a round each byte holds its value from
// before the round when no write covered it, or else the last write covering
// it of some writer (a writer's own writes are ordered; writers among
// themselves are not). After a crash a byte may also hold any write that was
// not yet acknowledged, but never one older than an acknowledged write of the
// same writer (fsync, fdatasync, msync).
import { createHash } from 'node:crypto'

const PERIOD = 4093

export interface Write { off: number, len: number, tag: string }

const tables = new Map<string, Buffer>()

/** The bytes a write tagged `tag` puts at each position modulo PERIOD (never zero). */
export function table (tag: string): Buffer {
  let t = tables.get(tag)
  if (t) return t
  const parts: Buffer[] = []
  for (let i = 0; i * 32 < PERIOD; i++) parts.push(createHash('sha256').update(`${tag}/${i}`).digest())
  t = Buffer.concat(parts).subarray(0, PERIOD)
  for (let i = 0; i < t.length; i++) if (t[i] === 0) t[i] = 1
  tables.set(tag, t)
  return t
}

/** The bytes of write `tag` from `start` on, as writers.py produces them. */
export function pattern (tag: string, start: number, len: number): Buffer {
  const t = table(tag)
  const out = Buffer.alloc(len)
  for (let i = 0; i < len; i++) out[i] = t[(start + i) % PERIOD]
  return out
}

/** `old` cut or extended with zeros to `size`, as ftruncate leaves it. */
export function truncated (old: Buffer, size: number): Buffer {
  const out = Buffer.alloc(size)
  old.copy(out, 0, 0, Math.min(size, old.length))
  return out
}

export interface WriterLog {
  /** The writer's writes that may have happened, in its order. */
  writes: Write[]
  /** How many of them are known to have landed (all, without a crash; acknowledged ones after one). */
  landed: number
}

/**
 * Whether `found` is a content the writers could have left on `old`; the
 * reason when it is not. Without a crash every write landed (`landed` is
 * all), so a byte holds its writer's last write; after one, anything from
 * the last landed write covering it on.
 */
export function explain (old: Buffer, logs: WriterLog[], found: Buffer): string | undefined {
  let min = old.length
  let max = old.length
  for (const { writes, landed } of logs) {
    writes.forEach((w, i) => {
      max = Math.max(max, w.off + w.len)
      if (i < landed) min = Math.max(min, w.off + w.len)
    })
  }
  if (found.length < min || found.length > max) return `size ${found.length}, expected ${min === max ? min : `${min}..${max}`}`
  const size = found.length
  // For each writer and byte: its last write covering the byte, and its last landed one.
  const last = logs.map(({ writes }) => paint(writes, writes.length, size))
  const floor = logs.map(({ writes, landed }) => paint(writes, landed, size))
  const tabs = logs.map(({ writes }) => writes.map((w) => table(w.tag)))
  for (let b = 0; b < size; b++) {
    const v = found[b]
    const m = b % PERIOD
    let covered = false
    let fixed = false
    let ok = false
    for (let k = 0; k < logs.length && !ok; k++) {
      const i = last[k][b]
      if (i < 0) continue
      covered = true
      if (floor[k][b] >= 0) fixed = true
      if (tabs[k][i][m] === v) ok = true
    }
    if (ok) continue
    // Slow path, only after a crash: an earlier write that landed while later ones did not.
    for (let k = 0; k < logs.length && !ok; k++) {
      const { writes } = logs[k]
      for (let i = last[k][b] - 1; i >= Math.max(0, floor[k][b]) && !ok; i--) {
        const w = writes[i]
        if (w.off <= b && b < w.off + w.len && tabs[k][i][m] === v) ok = true
      }
    }
    if (!ok && !fixed) ok = v === (b < old.length ? old[b] : 0)
    if (!ok) return describe(b, old, logs, found, last, covered)
  }
  return undefined
}

function paint (writes: Write[], n: number, size: number): Int32Array {
  const idx = new Int32Array(size).fill(-1)
  for (let i = 0; i < n; i++) idx.fill(i, Math.min(writes[i].off, size), Math.min(writes[i].off + writes[i].len, size))
  return idx
}

function describe (b: number, old: Buffer, logs: WriterLog[], found: Buffer, last: Int32Array[], covered: boolean): string {
  const v = found[b]
  // Whose byte it is, if any write of the round put that value there.
  const from = logs.flatMap(({ writes }) => writes).filter((w) => w.off <= b && b < w.off + w.len && table(w.tag)[b % PERIOD] === v).map((w) => w.tag)
  const allowed = logs.map(({ writes }, k) => last[k][b] >= 0 ? writes[last[k][b]].tag : null).filter((x) => x !== null)
  return `byte ${b} is ${v} (matches ${from.length > 0 ? from.join(', ') : b < old.length && old[b] === v ? 'the old value' : 'nothing'}); ` +
    `allowed: ${covered ? '' : `the old value ${b < old.length ? old[b] : 0}, `}the last write of each writer covering it: ${allowed.join(', ') || 'none'}`
}

/**
 * Whether the bytes appended to `old` in `found` are every record of every
 * appender exactly once, whole, each appender's in its order.
 */
export function explainAppends (old: Buffer, appenders: Array<Array<{ len: number, tag: string }>>, found: Buffer): string | undefined {
  const total = appenders.flat().reduce((n, r) => n + r.len, 0)
  if (found.length !== old.length + total) return `size ${found.length}, expected ${old.length + total}`
  if (!found.subarray(0, old.length).equals(old)) return 'the bytes before the appends changed'
  const next = appenders.map(() => 0)
  for (let pos = old.length; pos < found.length;) {
    const k = appenders.findIndex((recs, k) => next[k] < recs.length &&
      found.subarray(pos, pos + recs[next[k]].len).equals(pattern(recs[next[k]].tag, 0, recs[next[k]].len)))
    if (k < 0) return `at ${pos} no appender's next record (${appenders.map((recs, k) => recs[next[k]]?.tag).filter(Boolean).join(', ')}) follows whole`
    pos += appenders[k][next[k]++].len
  }
  return undefined
}
