// GET /api/v1/zones?k=N: the agents alive that reported a context, ranked and grouped in zones.
import { hostOf } from '../cluster/view.ts'
import { isAlive } from '../meta/membership.ts'
import type { AgentView } from './agent-view.ts'
import { agentRecords } from './cluster-state.ts'
import { BadRequest } from './http-error.ts'
import { FACTORS, zonesOf, type ZoneInput } from './zones.ts'

/** The most zones asked for. */
const MAX_K = 64

export function zones (agent: AgentView, url: URL): object {
  const text = url.searchParams.get('k')
  const k = text === null || !/^\d+$/.test(text) ? NaN : Number(text)
  if (!Number.isInteger(k) || k < 1 || k > MAX_K) throw new BadRequest(`k is required: a whole number of zones from 1 to ${MAX_K}, e.g. /api/v1/zones?k=3`)
  const now = Date.now()
  const inputs: ZoneInput[] = agentRecords(agent).flatMap((rec) => {
    const alive = rec.id === agent.id || isAlive(rec, now, agent.config.contextIntervalMs)
    if (!alive || rec.context === null) return []
    const { ufCPU, ufMemory, ufFileSystem, ufNet } = rec.context
    return [{ kind: 'host' as const, id: rec.id, agent: rec.id, name: hostOf(rec), context: { ufCPU, ufMemory, ufFileSystem, ufNet } }]
  })
  const result = zonesOf(inputs, k)
  return { k: result.k, asked: k, factors: [...FACTORS], members: result.members, zones: result.zones }
}
