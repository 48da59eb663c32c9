// Time series kept for a while (an hour): points [time ms, value] by series,
// a series being a metric of one subject (an agent, a container...). Held in
// memory in a ring of two Float64Arrays per series, bounded (points per
// series by the retention over the sampling interval, 16 bytes each, and a
// most number of series), and kept across restarts in a
// JSON Lines file: one line per sampling round, appended, rewritten from
// memory once it holds as many rounds again as are kept. A line that cannot
// be read (a crash mid-append, a corrupt file) is skipped with a warning.
import { appendFile, readFile, rename, writeFile } from 'node:fs/promises'

export type Point = [number, number]

export interface Sample {
  metric: string
  /** Whose value: an agent id (or a container's, for container metrics). */
  agent: string
  value: number
}

export interface Series {
  metric: string
  agent: string
  points: Point[]
}

export interface HistoryStoreOptions {
  /** The JSON Lines file; undefined: memory only. */
  file?: string
  retentionMs: number
  intervalMs: number
  /** The most series kept; samples of further series are dropped (with one warning). */
  maxSeries: number
  log: { warn: (obj: object, msg: string) => void }
  now?: () => number
}

// One sampling round as stored: its time and [metric, agent, value] triples.
interface Round { t: number, s: Array<[string, string, number]> }

// The points of one series, oldest first, in a ring.
class Ring {
  private readonly times: Float64Array
  private readonly values: Float64Array
  private start = 0
  length = 0

  constructor (readonly metric: string, readonly agent: string, capacity: number) {
    this.times = new Float64Array(capacity)
    this.values = new Float64Array(capacity)
  }

  time (i: number): number {
    return this.times[(this.start + i) % this.times.length]
  }

  value (i: number): number {
    return this.values[(this.start + i) % this.values.length]
  }

  /** Adds a point after the last (the oldest goes when the ring is full). */
  push (t: number, v: number): void {
    if (this.length === this.times.length) this.drop()
    const at = (this.start + this.length) % this.times.length
    this.times[at] = t
    this.values[at] = v
    this.length++
  }

  drop (): void {
    this.start = (this.start + 1) % this.times.length
    this.length--
  }

  points (since = -Infinity): Point[] {
    const out: Point[] = []
    for (let i = 0; i < this.length; i++) if (this.time(i) >= since) out.push([this.time(i), this.value(i)])
    return out
  }
}

/** Points a series keeps at most, whatever the interval (a test's short one keeps less than the retention). */
const MAX_POINTS = 3601

const keyOf = (metric: string, agent: string): string => `${metric}\0${agent}`

export class HistoryStore {
  private readonly series = new Map<string, Ring>()
  private readonly maxPoints: number
  private readonly now: () => number
  // Rounds appended to the file since it was last rewritten.
  private appended = 0
  private writing: Promise<void> = Promise.resolve()
  private warnedFull = false
  private warnedWrite = false

  constructor (private readonly opts: HistoryStoreOptions) {
    this.maxPoints = Math.min(MAX_POINTS, Math.ceil(opts.retentionMs / opts.intervalMs) + 1)
    this.now = opts.now ?? Date.now
  }

  /** Reads the file (what is still within the retention); never throws for its content. */
  async load (): Promise<void> {
    const file = this.opts.file
    if (file === undefined) return
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.opts.log.warn({ file, err: (err as Error).message }, 'could not read the history; starting without it')
      return
    }
    let bad = 0
    const rounds: Round[] = []
    for (const line of text.split('\n')) {
      if (line === '') continue
      const round = parseRound(line)
      if (round === undefined) bad++
      else rounds.push(round)
    }
    if (bad > 0) this.opts.log.warn({ file, lines: bad }, 'skipped lines of the history that could not be read')
    rounds.sort((a, b) => a.t - b.t)
    for (const r of rounds) this.add(r.t, r.s.map(([metric, agent, value]) => ({ metric, agent, value })))
    this.trim()
    await this.compact()
  }

  /** Adds one sampling round at time `t` and appends it to the file. */
  record (t: number, samples: Sample[]): void {
    this.add(t, samples)
    this.trim()
    const file = this.opts.file
    if (file === undefined || samples.length === 0) return
    const line = JSON.stringify({ t, s: samples.map((x) => [x.metric, x.agent, x.value]) }) + '\n'
    this.appended++
    const compact = this.appended >= this.maxPoints
    this.writing = this.writing.then(async () => {
      if (compact) await this.compact()
      else await appendFile(file, line)
    }).catch((err) => {
      if (!this.warnedWrite) this.opts.log.warn({ file, err: (err as Error).message }, 'could not write the history; it is kept in memory')
      this.warnedWrite = true
    })
  }

  /** The series of these metrics (of one agent, if given) with their points since `since`. */
  query (metrics: string[], since: number, agent?: string): Series[] {
    const wanted = new Set(metrics)
    const out: Series[] = []
    for (const s of this.series.values()) {
      if (!wanted.has(s.metric) || (agent !== undefined && s.agent !== agent)) continue
      const points = s.points(since)
      if (points.length > 0) out.push({ metric: s.metric, agent: s.agent, points })
    }
    return out.sort((a, b) => metrics.indexOf(a.metric) - metrics.indexOf(b.metric) || (a.agent < b.agent ? -1 : a.agent > b.agent ? 1 : 0))
  }

  /** Waits for the writes under way. */
  async close (): Promise<void> {
    await this.writing
  }

  private add (t: number, samples: Sample[]): void {
    for (const { metric, agent, value } of samples) {
      if (!Number.isFinite(value)) continue
      const key = keyOf(metric, agent)
      let s = this.series.get(key)
      if (s === undefined) {
        if (this.series.size >= this.opts.maxSeries) {
          if (!this.warnedFull) this.opts.log.warn({ series: this.series.size }, 'the history holds as many series as it may; new ones are not kept')
          this.warnedFull = true
          continue
        }
        s = new Ring(metric, agent, this.maxPoints)
        this.series.set(key, s)
      }
      if (s.length > 0 && s.time(s.length - 1) >= t) continue
      s.push(t, value)
    }
  }

  // Drops the points past the retention, and the series left without any.
  private trim (): void {
    const oldest = this.now() - this.opts.retentionMs
    for (const [key, s] of this.series) {
      while (s.length > 0 && s.time(0) < oldest) s.drop()
      if (s.length === 0) this.series.delete(key)
    }
  }

  // Rewrites the file from memory: one line per round, oldest first; a new file replaces the old at once.
  private async compact (): Promise<void> {
    const file = this.opts.file
    if (file === undefined) return
    this.appended = 0
    const rounds = new Map<number, Array<[string, string, number]>>()
    for (const s of this.series.values()) {
      for (const [t, v] of s.points()) {
        let r = rounds.get(t)
        if (r === undefined) rounds.set(t, r = [])
        r.push([s.metric, s.agent, v])
      }
    }
    const text = [...rounds].sort(([a], [b]) => a - b).map(([t, s]) => JSON.stringify({ t, s }) + '\n').join('')
    await writeFile(file + '.tmp', text)
    await rename(file + '.tmp', file)
  }
}

function parseRound (line: string): Round | undefined {
  let r: unknown
  try {
    r = JSON.parse(line)
  } catch {
    return undefined
  }
  if (typeof r !== 'object' || r === null) return undefined
  const { t, s } = r as { t?: unknown, s?: unknown }
  if (typeof t !== 'number' || !Number.isFinite(t) || !Array.isArray(s)) return undefined
  const ok = s.every((x) => Array.isArray(x) && x.length === 3 && typeof x[0] === 'string' && typeof x[1] === 'string' && typeof x[2] === 'number')
  return ok ? { t, s: s as Round['s'] } : undefined
}
