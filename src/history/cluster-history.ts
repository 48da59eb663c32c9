// The cluster's history as every agent records it: each sampling round takes
// the context of every agent alive and, for each agent whose reports carry
// its counters, its read outcomes and mount traffic per second since its
// previous report. From the membership records (this agent's own, live).
import type { AgentCounters, AgentReport } from '../meta/schema.ts'
import type { HistoryStore, Sample } from './history-store.ts'

export interface MetricInfo {
  unit: string
}

/** The metrics of GET /api/v1/history, with their units. */
export const CLUSTER_METRICS: Record<string, MetricInfo> = {
  'reads.local_hit': { unit: 'reads/s' },
  'reads.remote_hit': { unit: 'reads/s' },
  'reads.miss': { unit: 'reads/s' },
  'reads.skip': { unit: 'reads/s' },
  'bytes.read': { unit: 'B/s' },
  'bytes.written': { unit: 'B/s' },
  'context.ufCPU': { unit: 'ratio' },
  'context.ufMemory': { unit: 'ratio' },
  'context.ufFileSystem': { unit: 'ratio' },
  'context.ufNet': { unit: 'ratio' },
  'context.freeBytes': { unit: 'B' },
  // This agent's containers that use Chaac (the series' subject is the container's short id).
  'container.cpu': { unit: 'ratio' },
  'container.memory': { unit: 'B' },
  'container.netRx': { unit: 'B/s' },
  'container.netTx': { unit: 'B/s' },
  'container.blkRead': { unit: 'B/s' },
  'container.blkWrite': { unit: 'B/s' },
  'container.chaacRead': { unit: 'B/s' },
  'container.chaacWritten': { unit: 'B/s' }
}

// Which counter each rate metric is computed from.
const RATES: Array<[string, Exclude<keyof AgentCounters, 'at'>]> = [
  ['reads.local_hit', 'localHit'],
  ['reads.remote_hit', 'remoteHit'],
  ['reads.miss', 'miss'],
  ['reads.skip', 'skip'],
  ['bytes.read', 'bytesRead'],
  ['bytes.written', 'bytesWritten']
]

/** Free bytes in an agent's bins (every level): the `freeBytes` of its context. */
export function freeBytes (report: AgentReport): number {
  return report.bins.reduce((sum, b) => sum + Math.max(0, b.capacity - b.used), 0)
}

/** One round's samples of these agents (as they last reported); `previous` holds each agent's counters of the round before (updated). */
export function roundSamples (agents: AgentReport[], previous: Map<string, AgentCounters>): Sample[] {
  const out: Sample[] = []
  for (const report of agents) {
    const ctx = report.context
    if (ctx !== null) {
      out.push(
        { metric: 'context.ufCPU', agent: report.id, value: ctx.ufCPU },
        { metric: 'context.ufMemory', agent: report.id, value: ctx.ufMemory },
        { metric: 'context.ufFileSystem', agent: report.id, value: ctx.ufFileSystem },
        { metric: 'context.ufNet', agent: report.id, value: ctx.ufNet },
        { metric: 'context.freeBytes', agent: report.id, value: freeBytes(report) }
      )
    }
    const now = report.counters
    if (now === undefined) continue
    const before = previous.get(report.id)
    // No report since the last round: nothing new to say. Counters that went back: the agent restarted.
    if (before !== undefined && now.at > before.at && RATES.every(([, c]) => now[c] >= before[c])) {
      const seconds = (now.at - before.at) / 1000
      for (const [metric, c] of RATES) out.push({ metric, agent: report.id, value: (now[c] - before[c]) / seconds })
    }
    if (before === undefined || now.at !== before.at) previous.set(report.id, now)
  }
  return out
}

/** Samples the cluster into a history store every interval (a timer that keeps no process alive). */
export class ClusterHistory {
  private timer?: NodeJS.Timeout
  private readonly previous = new Map<string, AgentCounters>()

  constructor (
    readonly store: HistoryStore,
    private readonly agents: () => AgentReport[],
    readonly intervalMs: number,
    /** What only this agent sees, sampled in the same rounds (its containers). */
    private readonly local: () => Sample[] = () => []
  ) {}

  /** Takes a first round now (the counters to compute the next round's rates from), then one every interval. */
  start (): void {
    this.sampleNow()
    this.timer = setInterval(() => this.sampleNow(), this.intervalMs)
    this.timer.unref()
  }

  sampleNow (): void {
    const agents = this.agents()
    const live = new Set(agents.map((a) => a.id))
    for (const id of this.previous.keys()) if (!live.has(id)) this.previous.delete(id)
    this.store.record(Date.now(), [...roundSamples(agents, this.previous), ...this.local()])
  }

  async close (): Promise<void> {
    clearInterval(this.timer)
    await this.store.close()
  }
}
