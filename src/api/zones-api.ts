// GET /api/v1/zones?k=N: the hosts alive that reported a context, and the
// containers on them whose stats their agent read, ranked and grouped in zones.
import { hostOf } from '../cluster/view.ts'
import { isAlive } from '../meta/membership.ts'
import type { AgentRecord } from '../meta/schema.ts'
import type { AgentView } from './agent-view.ts'
import { agentRecords } from './cluster-state.ts'
import { BadRequest } from './http-error.ts'
import { FACTORS, zonesOf, type ZoneInput } from './zones.ts'

/** The most zones asked for. */
const MAX_K = 64

/**
 * The members: each agent alive with a context as a host, and each of its
 * containers with its own CPU and memory share and its host's file system
 * and network (which the containers share).
 */
export function zoneInputs (records: AgentRecord[], self: string, now: number, intervalMs: number): ZoneInput[] {
  return records.flatMap((rec) => {
    if ((rec.id !== self && !isAlive(rec, now, intervalMs)) || rec.context === null) return []
    const { ufCPU, ufMemory, ufFileSystem, ufNet, containers } = rec.context
    const host: ZoneInput = { kind: 'host', id: rec.id, agent: rec.id, name: hostOf(rec), context: { ufCPU, ufMemory, ufFileSystem, ufNet } }
    return [host, ...(containers?.list ?? []).map((c): ZoneInput => ({
      kind: 'container', id: c.id, agent: rec.id, name: c.name, context: { ufCPU: c.cpu, ufMemory: c.memory, ufFileSystem, ufNet }
    }))]
  })
}

export function zones (agent: AgentView, url: URL): object {
  const text = url.searchParams.get('k')
  const k = text === null || !/^\d+$/.test(text) ? NaN : Number(text)
  if (!Number.isInteger(k) || k < 1 || k > MAX_K) throw new BadRequest(`k is required: a whole number of zones from 1 to ${MAX_K}, e.g. /api/v1/zones?k=3`)
  const result = zonesOf(zoneInputs(agentRecords(agent), agent.id, Date.now(), agent.config.contextIntervalMs), k)
  return { k: result.k, asked: k, factors: [...FACTORS], members: result.members, zones: result.zones }
}
