// The cluster as the HTTP API shows it: each agent with its state, context
// and bins, and the count of balls short of copies. Read from the membership
// records and the map of balls this agent holds (a replica's, on a joined agent).
import { binOwners, offlineBins, placementBins, type ClusterBin } from '../cluster/view.ts'
import { isAlive } from '../meta/membership.ts'
import { freeBytes } from '../history/cluster-history.ts'
import { durableCopies, type AgentRecord, type AgentReport, type BallRecord } from '../meta/schema.ts'
import type { AgentView } from './agent-view.ts'

export type AgentState = 'alive' | 'suspect' | 'gone'

/** Reports an agent may miss before it counts as suspect (it is gone after three, as membership.ts says). */
export const SUSPECT_AFTER_REPORTS = 2

/**
 * gone: not alive as membership.ts has it (the pool lost its link to it, or
 * it missed three reports); suspect: still alive, but silent for more than
 * two report intervals; alive otherwise. This agent is always alive.
 */
export function agentState (rec: AgentRecord, now: number, intervalMs: number): AgentState {
  if (!isAlive(rec, now, intervalMs)) return 'gone'
  return now - rec.seenAt > SUSPECT_AFTER_REPORTS * intervalMs ? 'suspect' : 'alive'
}

/** This agent as it is now, and every other as the data pool last heard from it. */
export function agentRecords (agent: AgentView): AgentRecord[] {
  const self: AgentRecord = { ...agent.report(), seenAt: Date.now() }
  return [self, ...[...agent.pool.agents.values()].filter((a) => a.id !== agent.id)]
}

function binsOf (agent: AgentView, rec: AgentRecord, now: number): Array<Record<string, unknown>> {
  const self = rec.id === agent.id
  return rec.bins.map((b) => {
    const local = self ? agent.store.bins.find((x) => x.id === b.id) : undefined
    return {
      id: b.id,
      agent: rec.id,
      peer: rec.peer,
      level: b.level,
      dir: b.dir,
      capacity: b.capacity,
      used: b.used,
      free: local?.free ?? Math.max(0, b.capacity - b.used),
      balls: b.balls,
      kind: b.container ? 'container' : 'directory',
      container: b.container ?? null,
      offline: b.offline ?? null,
      draining: b.draining === true,
      context: rec.context,
      seenAt: rec.seenAt,
      alive: self || isAlive(rec, now, agent.config.contextIntervalMs)
    }
  })
}

/** This agent's bins as they are now; every other agent's as it last reported them to the data pool. */
export function clusterBins (agent: AgentView): Array<Record<string, unknown>> {
  const now = Date.now()
  return agentRecords(agent).flatMap((rec) => binsOf(agent, rec, now))
}

export function agents (agent: AgentView): object {
  const now = Date.now()
  return {
    agents: agentRecords(agent).map((rec) => {
      const self = rec.id === agent.id
      return {
        id: rec.id,
        peer: rec.peer,
        http: rec.http,
        state: self ? 'alive' : agentState(rec, now, agent.config.contextIntervalMs),
        seenAt: rec.seenAt,
        startedAt: rec.startedAt ?? null,
        context: rec.context === null ? null : { ...rec.context, freeBytes: freeBytes(rec) },
        bins: binsOf(agent, rec, now),
        self
      }
    })
  }
}

/** How many copies each ball should have: the cluster's replicas, one for an agent alone. */
export function replicasOf (agent: AgentView): number {
  return agent.plane ? agent.config.cluster.replicas : 1
}

/** The live agents among the owners of a ball's copies (durable ones only, or any), leaving out bins whose container is stopped. */
export function liveHolders (rec: BallRecord, owners: Map<string, AgentReport>, live: Set<string>, durable: boolean, offline?: Map<string, number>): Set<string> {
  const out = new Set<string>()
  for (const bin of durable ? durableCopies(rec) : rec.bins) {
    if (offline?.has(bin) === true) continue
    const owner = owners.get(bin)?.id
    if (owner !== undefined && live.has(owner)) out.add(owner)
  }
  return out
}

/** The agents alive now (this one always), who owns each bin, and the bins whose container is stopped. */
export function liveness (agent: AgentView): { live: Set<string>, owners: Map<string, AgentReport>, offline: Map<string, number> } {
  const now = Date.now()
  const records = agentRecords(agent)
  const live = new Set(records.filter((r) => r.id === agent.id || isAlive(r, now, agent.config.contextIntervalMs)).map((r) => r.id))
  return { live, owners: binOwners(records), offline: offlineBins(records) }
}

export interface ReplicationCount {
  replicas: number
  balls: number
  underReplicated: number
  missing: number
  checkedAt: number
}

/** A scan of the map of balls is kept this long: the page polls, and a scan costs a pass over every ball. */
export const REPLICATION_CACHE_MS = 3000

/**
 * Counts the balls files reference (pooled slices aside: their bytes are in
 * the data pool) whose durable copies on agents alive are fewer than the
 * replicas, and among them those with no copy on an agent alive and none in
 * the cloud tier (missing: unreadable until an agent comes back).
 */
export function countReplication (agent: AgentView): ReplicationCount {
  const replicas = replicasOf(agent)
  const { live, owners, offline } = liveness(agent)
  let balls = 0
  let underReplicated = 0
  let missing = 0
  for (const rec of agent.pool.balls.values()) {
    if (rec.refs <= 0 || rec.pooled === true) continue
    balls++
    if (liveHolders(rec, owners, live, true, offline).size >= replicas) continue
    underReplicated++
    if (!rec.cloud && liveHolders(rec, owners, live, false, offline).size === 0) missing++
  }
  return { replicas, balls, underReplicated, missing, checkedAt: Date.now() }
}

export class ReplicationCache {
  private last?: ReplicationCount

  get (agent: AgentView): ReplicationCount {
    if (this.last === undefined || Date.now() - this.last.checkedAt > REPLICATION_CACHE_MS) this.last = countReplication(agent)
    return this.last
  }
}

/** The bins of the agents alive that hold copies (disk level, where the cluster has any), for the allocator. */
export function durablePlacementBins (agent: AgentView): ClusterBin[] {
  const bins = agent.plane?.bins() ?? placementBins([], agent.report(), Date.now(), agent.config.contextIntervalMs)
  const disk = bins.filter((b) => b.level === 'disk')
  return disk.length > 0 ? disk : bins
}

/** The spread of the bins' fill: the fullest's fill ratio minus the emptiest's (0 with fewer than two bins). */
export function spread (bins: Array<{ capacity: number, used: number }>): number {
  const fills = bins.filter((b) => b.capacity > 0).map((b) => b.used / b.capacity)
  return fills.length < 2 ? 0 : Math.max(...fills) - Math.min(...fills)
}
