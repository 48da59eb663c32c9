// Re-replication, on the data pool's agent: every referenced ball whose
// durable copies on agents that count (alive, or gone for less than the
// grace period) are fewer than `replicas` gets new copies, in bins the
// allocator picks on other hosts, each target agent fetching the ball from
// an agent alive that holds it, or from the cloud tier.
import type { Pool } from '../meta/pool.ts'
import type { NetLog } from '../net/peer-link.ts'
import type { DataPlane } from './data-plane.ts'
import { rankPeers, repairPlan, type RepairJob } from './view.ts'

/** Copies made at once. */
const CONCURRENCY = 4

export interface RepairOptions {
  replicas: number
  graceMs: number
  intervalMs: number
  log: NetLog
}

export class Repairer {
  private timer?: NodeJS.Timeout
  private readonly running = new Map<string, Promise<void>>()
  private closed = false

  constructor (private readonly pool: Pool, private readonly plane: DataPlane, private readonly opts: RepairOptions) {}

  start (): void {
    const every = Math.max(500, Math.min(this.opts.graceMs / 2, 5_000))
    this.timer = setInterval(() => this.pass(), every)
    this.timer.unref()
  }

  async close (): Promise<void> {
    this.closed = true
    clearInterval(this.timer)
    await Promise.allSettled([...this.running.values()])
  }

  /** Starts copies for the balls that lack them, a few at a time. */
  pass (): void {
    if (this.closed) return
    const jobs = repairPlan({ balls: this.pool.balls, agents: this.pool.agents, now: Date.now(), ...this.opts })
    for (const job of jobs) {
      if (this.running.size >= CONCURRENCY) return
      if (this.running.has(job.id)) continue
      this.running.set(job.id, this.repair(job).finally(() => this.running.delete(job.id)))
    }
  }

  private async repair (job: RepairJob): Promise<void> {
    const targets = this.plane.allocator.allocate(
      this.plane.bins().filter((b) => !job.counted.includes(b.host)), { size: job.bytes, k: job.missing })
    const { peers } = this.plane
    const sources = rankPeers(job.sources.map((id) => ({
      agent: id, context: this.pool.agents.get(id)?.context, rttMs: peers.rttMs(id), suspect: peers.isSuspect(id)
    }))).map((c) => c.agent)
    await Promise.all(targets.map(async (bin) => {
      try {
        await this.plane.pullTo(bin.agent, { id: job.id, bytes: job.bytes, from: sources, cloud: job.cloud, bin: bin.id })
        this.opts.log.info({ ball: job.id, to: bin.agent, bin: bin.id }, 'copied a ball again')
      } catch (err) {
        this.opts.log.warn({ ball: job.id, to: bin.agent, err: (err as Error).message }, 'could not copy a ball again; will try later')
      }
    }))
  }
}
