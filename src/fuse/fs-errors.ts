// What a program sees as a failure of the filesystem (EIO, or an op past its
// deadline) is the agent's to explain: each is logged at warn (error for an
// unexpected one) with its code, inode, path and ball, and counted for
// /metrics and /status. Errors that are a normal answer (ENOENT, EEXIST,
// ENOTEMPTY, ...) stay at debug. A broken file can fail thousands of reads a
// second, so the same (code, inode, ball) is logged at most once a second;
// the next line says how many it stands for.
import { constants } from 'node:os'
import { ChaacError } from '../errors.ts'

export interface ErrorLog {
  error: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  debug: (obj: object, msg: string) => void
}

export interface FailureCount { errno: 'EIO' | 'ETIMEDOUT', code: string, op: string, count: number }

export interface LastFailure { at: number, op: string, code: string, ino: number, path: string | null, ball: string | null }

const { EIO } = constants.errno
const LOG_EVERY_MS = 1000
// Keys of failures logged lately are dropped once this many pile up (each only matters for a second).
const MAX_KEYS = 10_000
/** The code of errors that are not ChaacErrors: bugs, logged at error with their stack. */
export const UNEXPECTED = 'UNEXPECTED'

export class FsErrors {
  private readonly counts = new Map<string, FailureCount>()
  private readonly logged = new Map<string, { until: number, repeats: number }>()
  private last: LastFailure | null = null

  constructor (
    private readonly log: ErrorLog,
    /** The path naming an inode, best effort. */
    private readonly pathOf: (ino: number) => string | undefined,
    private readonly now: () => number = Date.now
  ) {}

  /** The errno to answer `err` with; logs and counts it when the program gets EIO. */
  errnoOf (err: unknown, op: string, ino: number): number {
    if (err instanceof ChaacError && err.errno !== 'EIO') {
      this.log.debug({ op, ino, code: err.code, err: err.message }, 'operation failed')
      return constants.errno[err.errno as keyof typeof constants.errno] ?? EIO
    }
    this.failed('EIO', err, op, err instanceof ChaacError ? err.ino ?? ino : ino)
    return EIO
  }

  /** An op that got ETIMEDOUT because it did not finish within `ms`. */
  timedOut (op: string, ino: number, ms: number): void {
    this.failed('ETIMEDOUT', new ChaacError('CHAAC_TIMEOUT', `the operation did not finish within ${ms} ms`), op, ino)
  }

  /** Failures so far by errno, code and op. */
  totals (): FailureCount[] {
    return [...this.counts.values()]
  }

  /** For /status: how many failures by code, and the latest. */
  summary (): { total: number, byCode: Record<string, number>, last: LastFailure | null } {
    const byCode: Record<string, number> = {}
    let total = 0
    for (const c of this.counts.values()) {
      byCode[c.code] = (byCode[c.code] ?? 0) + c.count
      total += c.count
    }
    return { total, byCode, last: this.last }
  }

  private failed (errno: FailureCount['errno'], err: unknown, op: string, ino: number): void {
    const chaac = err instanceof ChaacError ? err : undefined
    const code = chaac?.code ?? UNEXPECTED
    const ball = chaac?.ball ?? null
    const countKey = `${errno} ${code} ${op}`
    const count = this.counts.get(countKey)
    if (count) count.count++
    else this.counts.set(countKey, { errno, code, op, count: 1 })

    const now = this.now()
    const key = `${code} ${ino} ${ball ?? ''}`
    const seen = this.logged.get(key)
    if (seen && now < seen.until) {
      seen.repeats++
      return
    }
    if (this.logged.size >= MAX_KEYS) for (const [k, v] of this.logged) if (v.until <= now) this.logged.delete(k)
    this.logged.set(key, { until: now + LOG_EVERY_MS, repeats: 0 })
    const path = this.pathSafe(ino) ?? null
    this.last = { at: now, op, code, ino, path, ball }
    // repeats: the same failures since the last line about it, not logged.
    const line = { op, errno, code, ino, path, ball, repeats: seen?.repeats ?? 0 }
    if (chaac) this.log.warn({ ...line, err: chaac.message }, `file operation failed with ${errno}`)
    else this.log.error({ ...line, err }, `unexpected error in a file operation (${errno})`)
  }

  private pathSafe (ino: number): string | undefined {
    try {
      return this.pathOf(ino)
    } catch {
      // E.g. a joined agent cut off from the data pool: its namespace is not there to search.
      return undefined
    }
  }
}
