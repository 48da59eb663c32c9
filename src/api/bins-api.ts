// POST /api/v1/bins and DELETE /api/v1/bins/:id: the launcher's data
// container bins, on this agent's host or, forwarded over HTTP, on another
// agent's (the one named by `host`, or the one that owns the bin). Changes:
// they need the admin token, which the agents of a cluster share for this.
import type { IncomingMessage } from 'node:http'
import { isChaacError } from '../errors.ts'
import { binOwners } from '../cluster/view.ts'
import { isAlive } from '../meta/membership.ts'
import { parseBinRequest } from '../containers/launcher.ts'
import type { AgentView } from './agent-view.ts'
import { agentRecords } from './cluster-state.ts'
import { BadRequest, HttpError } from './http-error.ts'

/** How long a forwarded request may take: the image may be made first, or many balls moved. */
const FORWARD_TIMEOUT_MS = 600_000

export async function createBin (agent: AgentView, req: IncomingMessage, body: unknown): Promise<unknown> {
  const request = parseBinRequest(body)
  if (request.host !== undefined && request.host !== agent.id) {
    const { host, ...rest } = request
    return await forward(agent, agentNamed(agent, host), 'POST', '/api/v1/bins', req, rest)
  }
  return await launcherCall(agent, async (launcher) => await launcher.create(request))
}

export async function removeBin (agent: AgentView, req: IncomingMessage, key: string): Promise<unknown> {
  const owner = binOwners(agentRecords(agent)).get(key)
  if (owner !== undefined && owner.id !== agent.id) return await forward(agent, owner.id, 'DELETE', `/api/v1/bins/${encodeURIComponent(key)}`, req)
  return await launcherCall(agent, async (launcher) => await launcher.remove(key))
}

/** The bin an URL path names, for DELETE /api/v1/bins/:id; undefined for other paths. */
export function binInPath (pathname: string): string | undefined {
  const m = /^\/api\/v1\/bins\/([^/]+)$/.exec(pathname)
  return m ? decodeURIComponent(m[1]) : undefined
}

async function launcherCall<T> (agent: AgentView, fn: (launcher: NonNullable<AgentView['launcher']>) => Promise<T>): Promise<T> {
  const launcher = agent.launcher
  if (!launcher) throw new HttpError(503, 'this agent does not launch data containers yet (it is starting)')
  try {
    return await fn(launcher)
  } catch (err) {
    if (isChaacError(err, 'CHAAC_NOT_SUPPORTED')) throw new HttpError(503, err.message)
    throw err
  }
}

// The agent a request names: its id, or the start of it when only one agent's id starts so.
function agentNamed (agent: AgentView, name: string): string {
  const ids = agentRecords(agent).map((r) => r.id)
  if (ids.includes(name)) return name
  const matches = ids.filter((id) => id.startsWith(name))
  if (matches.length === 1) return matches[0]
  throw new BadRequest(matches.length === 0 ? `no agent ${name} in this cluster (GET /api/v1/agents lists them)` : `${name} names several agents: give more of the id`)
}

async function forward (agent: AgentView, to: string, method: string, path: string, req: IncomingMessage, body?: unknown): Promise<unknown> {
  const rec = agent.pool.agents.get(to)
  if (!rec || !isAlive(rec, Date.now(), agent.config.contextIntervalMs)) throw new HttpError(503, `agent ${to} is not alive: it cannot be asked`)
  if (rec.http === null) throw new HttpError(503, `agent ${to} has no HTTP API`)
  let res: Response
  try {
    res = await fetch(`http://${rec.http}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(req.headers.authorization !== undefined ? { authorization: req.headers.authorization } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(FORWARD_TIMEOUT_MS)
    })
  } catch (err) {
    throw new HttpError(502, `agent ${to}'s HTTP API at ${rec.http} does not answer (${(err as Error).message}); its --http must be reachable from this agent`)
  }
  const answer = await res.json().catch(() => ({})) as { error?: string }
  if (!res.ok) throw new HttpError(res.status, `agent ${to}: ${answer.error ?? `HTTP ${res.status}`}`)
  return answer
}
