// GET /api/v1/history?metric=M[,M...]&since=T[&agent=ID | &container=ID]: the
// cluster's history, as this agent sampled it (and its own containers').
import { CLUSTER_METRICS } from '../history/cluster-history.ts'
import type { AgentView } from './agent-view.ts'
import { BadRequest } from './http-error.ts'

/** Without `since`: the last hour. */
const DEFAULT_SINCE_S = -3600

export function history (agent: AgentView, url: URL): object {
  const known = Object.keys(CLUSTER_METRICS)
  const metrics = (url.searchParams.get('metric') ?? '').split(',').map((m) => m.trim()).filter((m) => m !== '')
  if (metrics.length === 0) throw new BadRequest(`metric is required, one or more of: ${known.join(', ')}`)
  const unknown = metrics.filter((m) => !Object.hasOwn(CLUSTER_METRICS, m))
  if (unknown.length > 0) throw new BadRequest(`unknown metric ${unknown.join(', ')}: the metrics are ${known.join(', ')}`)
  const since = sinceOf(url.searchParams.get('since'))
  // A container's series are by its short id, as an agent's are by the agent's id.
  const who = url.searchParams.get('agent') ?? url.searchParams.get('container') ?? undefined
  const series = agent.history.store.query(metrics, since, who === '' ? undefined : who)
  return {
    interval: agent.history.intervalMs / 1000,
    since,
    series: series.map((s) => ({
      metric: s.metric, ...(s.metric.startsWith('container.') ? { container: s.agent } : { agent: s.agent }), unit: CLUSTER_METRICS[s.metric].unit, points: s.points
    }))
  }
}

/** ms since the epoch, or a negative number of seconds from now. */
function sinceOf (text: string | null): number {
  const value = text === null || text === '' ? DEFAULT_SINCE_S : Number(text)
  if (!Number.isFinite(value)) throw new BadRequest('since must be ms since the epoch, or a negative number of seconds from now (e.g. -3600)')
  return value < 0 ? Date.now() + value * 1000 : value
}
