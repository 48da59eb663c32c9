// --auto-bins FILL: the cluster's background worker launches a disk bin (a
// data container) on the least loaded host when the disk bins of the
// agents alive are fuller than FILL together. One launch at a time; the next
// is weighed once the new bin is in the reports.
import type { ClusterBin } from '../cluster/view.ts'
import type { AgentReport } from '../meta/schema.ts'
import { utilisationCost } from '../placement/cost.ts'
import { formatSize } from '../units.ts'

export interface AutoBinDecision {
  /** The disk bins' fill together (0..1). */
  fill: number
  /** The agent on whose host the bin goes. */
  agent: string
}

/**
 * Whether to launch a disk bin now, and where: the disk bins' total use over
 * their total capacity past `threshold` -> the agent alive whose host costs
 * least as the allocator weighs hosts (its context, and its own disk bins'
 * fill), among those whose agent reads a Docker engine (all, when none says).
 */
export function autoBinDecision (bins: ClusterBin[], agents: AgentReport[], threshold: number): AutoBinDecision | undefined {
  const disk = bins.filter((b) => b.level === 'disk')
  const capacity = disk.reduce((sum, b) => sum + b.capacity, 0)
  const used = disk.reduce((sum, b) => sum + Math.min(b.used, b.capacity), 0)
  const fill = capacity > 0 ? used / capacity : 1
  if (fill <= threshold || agents.length === 0) return undefined
  const withDocker = agents.filter((a) => a.context?.containers !== undefined)
  const candidates = withDocker.length > 0 ? withDocker : agents
  const cost = (a: AgentReport): number => {
    const own = disk.filter((b) => b.agent === a.id)
    return utilisationCost({
      id: a.id,
      host: a.id,
      level: 'disk',
      capacity: own.reduce((sum, b) => sum + b.capacity, 0),
      used: own.reduce((sum, b) => sum + Math.min(b.used, b.capacity), 0),
      ...(a.context ? { context: a.context } : {})
    }, 0)
  }
  const best = [...candidates].sort((a, b) => cost(a) - cost(b) || (a.id < b.id ? -1 : 1))[0]
  return { fill, agent: best.id }
}

export interface AutoBinsOptions {
  threshold: number
  capacity: number
  /** The bins of the agents alive, and the agents alive. */
  bins: () => ClusterBin[]
  agents: () => AgentReport[]
  /** Launches a disk bin on an agent's host; its bin's id. */
  launch: (agent: string, capacity: number) => Promise<string>
  intervalMs: number
  log: { info: (obj: object, msg: string) => void, warn: (obj: object, msg: string) => void }
}

/** After a failed launch, the worker waits this long before it tries again. */
const RETRY_AFTER_MS = 30_000
/** A launched bin not seen in the reports by then no longer holds back the next launch. */
const SEEN_WITHIN_MS = 60_000

export class AutoBins {
  private timer?: NodeJS.Timeout
  private launching?: Promise<void>
  // The bin launched last, until the reports show it.
  private awaited?: { bin: string, since: number }
  private notBefore = 0

  constructor (private readonly opts: AutoBinsOptions) {}

  start (): void {
    this.timer = setInterval(() => this.pass(), this.opts.intervalMs)
    this.timer.unref()
  }

  pass (): void {
    if (this.launching || Date.now() < this.notBefore) return
    const bins = this.opts.bins()
    const awaited = this.awaited
    if (awaited && !bins.some((b) => b.id === awaited.bin) && Date.now() - awaited.since < SEEN_WITHIN_MS) return
    this.awaited = undefined
    const decision = autoBinDecision(bins, this.opts.agents(), this.opts.threshold)
    if (!decision) return
    const { threshold, capacity, log } = this.opts
    const pct = (x: number): string => `${Math.round(x * 100)}%`
    this.launching = this.opts.launch(decision.agent, capacity).then((bin) => {
      this.awaited = { bin, since: Date.now() }
      log.info({ fill: decision.fill, threshold, agent: decision.agent, bin, capacity },
        `the disk bins are ${pct(decision.fill)} full (over --auto-bins ${threshold}): launched a disk bin of ${formatSize(capacity)} on agent ${decision.agent}`)
    }, (err: Error) => {
      this.notBefore = Date.now() + RETRY_AFTER_MS
      log.warn({ fill: decision.fill, agent: decision.agent, err: err.message }, 'the disk bins are past --auto-bins but a bin could not be launched; will try again')
    }).finally(() => { this.launching = undefined })
  }

  async close (): Promise<void> {
    clearInterval(this.timer)
    await this.launching
  }
}
