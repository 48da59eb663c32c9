// Cluster membership: each agent tells the data pool who it is, where its
// peers reach it, its bins and its host context, at start and every few
// seconds after; the pool keeps the latest report of every agent.
import type { Pool } from './pool.ts'
import type { AgentRecord, AgentReport } from './schema.ts'

/** Reports an agent may miss before it counts as gone. */
const MISSED_REPORTS = 3

/** Whether the agent is in touch: its link to the pool is up and it reported lately. */
export function isAlive (rec: AgentRecord, now: number, intervalMs: number): boolean {
  return rec.goneAt === undefined && now - rec.seenAt <= MISSED_REPORTS * intervalMs
}

/**
 * Since when the agent has been out of touch (ms since the epoch), or
 * undefined while it is alive: from the moment the pool lost its link, or
 * from its last report when it went silent.
 */
export function goneSince (rec: AgentRecord, now: number, intervalMs: number): number | undefined {
  if (isAlive(rec, now, intervalMs)) return undefined
  return rec.goneAt ?? rec.seenAt + MISSED_REPORTS * intervalMs
}

export class Membership {
  private timer?: NodeJS.Timeout
  private sending?: Promise<void>
  private failing = false

  constructor (
    private readonly pool: Pool,
    private readonly report: () => AgentReport,
    private readonly intervalMs: number,
    private readonly log: { info: (obj: object, msg: string) => void, warn: (obj: object, msg: string) => void }
  ) {}

  /** Registers with the pool, then reports every interval; throws when the pool refuses the agent. */
  async join (): Promise<void> {
    await this.pool.reportAgent(this.report())
    this.timer = setInterval(() => this.reportNow(), this.intervalMs)
    this.timer.unref()
  }

  /** Sends a report now (unless one is on its way); a failure is logged once per outage. */
  reportNow (): void {
    if (this.sending) return
    this.sending = this.pool.reportAgent(this.report()).then(() => {
      if (this.failing) this.log.info({}, 'reporting to the data pool again')
      this.failing = false
    }, (err: Error) => {
      if (!this.failing) this.log.warn({ err: err.message }, 'could not report to the data pool; will try again')
      this.failing = true
    }).finally(() => { this.sending = undefined })
  }

  async close (): Promise<void> {
    clearInterval(this.timer)
    await this.sending
  }
}
