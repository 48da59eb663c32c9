// GET/PUT /api/v1/scheme: the cluster's distribution scheme (allocator policy
// and replicas). A change needs the agent's admin token; the replicas are
// not changed here (balls keep the copies they were written with).
import { timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { isPolicy, POLICIES } from '../placement/types.ts'
import type { AgentView } from './agent-view.ts'
import { replicasOf } from './cluster-state.ts'
import { BadRequest, HttpError } from './http-error.ts'

export function scheme (agent: AgentView): object {
  return { policy: agent.policy, replicas: replicasOf(agent), policies: [...POLICIES], writable: agent.config.adminToken !== undefined }
}

/** Throws the HttpError (403, 401) that refuses a change, unless the request carries the admin token. */
export function checkAdmin (agent: AgentView, req: IncomingMessage): void {
  const token = agent.config.adminToken
  if (token === undefined) throw new HttpError(403, 'read-only: the agent has no admin token')
  const presented = Buffer.from(req.headers.authorization ?? '')
  const expected = Buffer.from(`Bearer ${token}`)
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected)) {
    throw new HttpError(401, 'a change needs the admin token: Authorization: Bearer <token>')
  }
}

/** The change a PUT asks for; the caller checked the admin token (checkAdmin) before reading the body. */
export async function changeScheme (agent: AgentView, body: unknown): Promise<object> {
  const policy = (body as { policy?: unknown } | null)?.policy
  if (typeof body !== 'object' || body === null || Array.isArray(body) || policy === undefined) {
    throw new BadRequest('body must be JSON like {"policy": "context"}')
  }
  if (!isPolicy(policy)) throw new BadRequest(`unknown policy ${JSON.stringify(policy)}: one of ${POLICIES.join(', ')}`)
  if ((body as { replicas?: unknown }).replicas !== undefined && (body as { replicas?: unknown }).replicas !== replicasOf(agent)) {
    throw new BadRequest('the replicas cannot be changed here: balls keep the copies they were written with')
  }
  await agent.changePolicy(policy)
  return scheme(agent)
}
