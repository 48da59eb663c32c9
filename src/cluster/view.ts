// The cluster as the data plane sees it, from the membership records and the
// map of balls: the bins a new ball may go to, which agents hold a ball, the
// order to ask them in, and the balls that lack copies. Pure: records in,
// decisions out. One agent runs per host, so a host is named by its agent id.
import { goneSince, isAlive } from '../meta/membership.ts'
import { binUsable, durableCopies, type AgentRecord, type AgentReport, type BallRecord } from '../meta/schema.ts'
import type { PlacementBin, Utilisation } from '../placement/types.ts'

export interface ClusterBin extends PlacementBin {
  /** The agent that owns the bin (also its `host`). */
  agent: string
  dir: string
}

/** The bins of a data container that is stopped or gone: their copies cannot be read until it starts again. */
export function offlineBins (agents: Iterable<AgentReport>): Map<string, number> {
  const out = new Map<string, number>()
  for (const agent of agents) for (const bin of agent.bins) if (bin.offline !== undefined) out.set(bin.id, bin.offline)
  return out
}

/** Which agent owns each bin. */
export function binOwners (agents: Iterable<AgentReport>): Map<string, AgentReport> {
  const owners = new Map<string, AgentReport>()
  for (const agent of agents) for (const bin of agent.bins) owners.set(bin.id, agent)
  return owners
}

/**
 * The bins of the agents alive, as the allocator takes them: this agent's
 * as they are now (`self`), the others' as they last reported.
 */
export function placementBins (agents: Iterable<AgentRecord>, self: AgentReport, now: number, intervalMs: number): ClusterBin[] {
  const live: AgentReport[] = [self]
  for (const rec of agents) if (rec.id !== self.id && isAlive(rec, now, intervalMs)) live.push(rec)
  return live.flatMap((agent) => agent.bins.filter(binUsable).map((b) => ({
    id: b.id,
    host: agent.id,
    agent: agent.id,
    dir: b.dir,
    level: b.level === 'mem' ? 'mem' as const : 'disk' as const,
    capacity: b.capacity,
    used: Math.min(b.used, b.capacity),
    ...(agent.context ? { context: agent.context } : {})
  })))
}

export interface PeerCandidate {
  agent: string
  /** The measured round trip, if a link is up. */
  rttMs?: number
  context?: Utilisation | null
  /** It failed a request lately. */
  suspect: boolean
}

/** What a peer of unknown latency is taken to cost, in ms. */
export const UNKNOWN_RTT_MS = 1
/** What a saturated CPU, or network, of the peer's host costs, in ms of round trip: a busy peer serves slowly. */
export const BUSY_MS = 5

/** Peers holding a ball, best first: those that failed lately last, then by round trip and how busy their host is. */
export function rankPeers<C extends PeerCandidate> (candidates: C[]): C[] {
  const score = (c: C): number => (c.rttMs ?? UNKNOWN_RTT_MS) + BUSY_MS * ((c.context?.ufCPU ?? 0) + (c.context?.ufNet ?? 0))
  return [...candidates].sort((a, b) => Number(a.suspect) - Number(b.suspect) || score(a) - score(b) || (a.agent < b.agent ? -1 : 1))
}

/** Whether an agent alive other than `self` holds a copy of the ball that is not a cache. */
export function hasDurableCopy (balls: ReadonlyMap<string, BallRecord>, agents: ReadonlyMap<string, AgentRecord>, id: string, self: string, now: number, intervalMs: number): boolean {
  const rec = balls.get(id)
  return rec !== undefined && holders(rec, agents, self, now, intervalMs, false).length > 0
}

/** Agents alive other than `self` that hold a copy of the ball (any copy with `cached`, else only durable ones). */
export function holders (rec: BallRecord, agents: ReadonlyMap<string, AgentRecord>, self: string, now: number, intervalMs: number, cached = true): AgentRecord[] {
  const owners = binOwners(agents.values())
  const offline = offlineBins(agents.values())
  const out = new Map<string, AgentRecord>()
  for (const binId of cached ? rec.bins : durableCopies(rec)) {
    if (offline.has(binId)) continue
    const owner = owners.get(binId)
    const agent = owner && agents.get(owner.id)
    if (agent && agent.id !== self && isAlive(agent, now, intervalMs)) out.set(agent.id, agent)
  }
  return [...out.values()]
}

export interface RepairJob {
  id: string
  bytes: number
  /** Copies to add. */
  missing: number
  /** Agents whose durable copies count: no new copy goes there. */
  counted: string[]
  /** Agents alive holding any copy, to fetch from. */
  sources: string[]
  cloud: boolean
}

export interface RepairInput {
  balls: ReadonlyMap<string, BallRecord>
  agents: ReadonlyMap<string, AgentRecord>
  now: number
  intervalMs: number
  /** How long an agent may be gone before its copies stop counting. */
  graceMs: number
  replicas: number
}

/**
 * Every referenced ball with fewer durable copies than it should have: `k`,
 * or as many as there are hosts alive with durable bins. Copies on an agent
 * gone for less than the grace period still count (it may be restarting);
 * a ball with no copy to fetch from is left out.
 */
export function repairPlan ({ balls, agents, now, intervalMs, graceMs, replicas }: RepairInput): RepairJob[] {
  const owners = binOwners(agents.values())
  // A data container's bin stopped counts as its agent gone would: for the grace period.
  const offline = offlineBins(agents.values())
  const counts = (agent: AgentRecord, binId: string): boolean => {
    const since = goneSince(agent, now, intervalMs) ?? offline.get(binId)
    return since === undefined || now - since < graceMs
  }
  const alive = [...agents.values()].filter((a) => isAlive(a, now, intervalMs) && a.bins.some((b) => b.level !== 'mem' && binUsable(b)))
  const k = Math.min(replicas, alive.length)
  const jobs: RepairJob[] = []
  for (const [id, rec] of balls) {
    if (rec.refs <= 0) continue
    const counted = new Set<string>()
    for (const binId of durableCopies(rec)) {
      const agent = agents.get(owners.get(binId)?.id ?? '')
      if (agent && counts(agent, binId)) counted.add(agent.id)
    }
    if (counted.size >= k) continue
    const sources = new Set<string>()
    for (const binId of rec.bins) {
      const agent = agents.get(owners.get(binId)?.id ?? '')
      if (agent && isAlive(agent, now, intervalMs) && !offline.has(binId)) sources.add(agent.id)
    }
    if (sources.size === 0 && !rec.cloud) continue
    jobs.push({ id, bytes: rec.bytes, missing: k - counted.size, counted: [...counted], sources: [...sources], cloud: rec.cloud })
  }
  return jobs
}

/** The host part of an agent's peer address (or HTTP address), for people. */
export function hostOf (agent: AgentReport): string {
  const address = agent.peer ?? (agent.http !== null ? `http://${agent.http}` : null)
  if (address === null) return agent.id
  try {
    return new URL(address).hostname.replace(/^\[(.*)\]$/, '$1')
  } catch {
    return agent.id
  }
}
