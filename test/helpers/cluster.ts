// Starts a cluster of real agent processes for integration tests: the pool
// agent on 127.0.0.2 and joined agents on 127.0.0.3, 127.0.0.4, ... (peer
// and HTTP ports on each agent's own loopback address), one cluster secret,
// and one cloud tier directory shared by all (write through), or none, so
// that every ball read elsewhere comes from a peer. Teardown kills by PID and
// unmounts lazily.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { cleanupAgent, startAgent, testMeta, type RunningAgent } from './agent.ts'
import { waitFor } from './wait.ts'

export interface Cluster {
  secret: string
  cloud: string
  /** The pool agent first, then the joined agents. */
  agents: RunningAgent[]
  /** ws://127.0.0.2:PORT, what joined agents dial. */
  poolUrl: string
  /** Starts the pool agent again on its data folder and peer port (after kill9 or stop). */
  restartPool: () => Promise<RunningAgent>
  /** Starts one more agent joining the pool, on 127.0.0.N, with extra env (e.g. another secret). */
  join: (n: number, env?: NodeJS.ProcessEnv) => Promise<RunningAgent>
  /** Starts joined agent i (1, 2, ...) again on its data folder and peer port, after kill9 or stop. */
  restart: (i: number) => Promise<RunningAgent>
}

export interface ClusterOptions {
  /** Agents, the pool's included; default 3. */
  size?: number
  /** `none`: no cloud tier, so every ball read elsewhere comes from a peer. Default: one directory shared by all. */
  cloud?: 'shared' | 'none'
  /** More `chaac agent` flags for every agent. */
  args?: string[]
  /** More environment for agent i (0: the pool agent). */
  env?: (i: number) => NodeJS.ProcessEnv
  /** The --meta URL of agent i (0, 1, ...): every agent on etcd, all equal. */
  meta?: (i: number) => string
}

const host = (n: number): string => `127.0.0.${n}`

function agentArgs (n: number, cloud: string, port = 0): string[] {
  return ['--listen', `${host(n)}:${port}`, '--http', `${host(n)}:0`, '--cloud', cloud, ...(cloud === 'none' ? [] : ['--write', 'through'])]
}

/** The peer address an agent printed at start. */
export function peerUrl (agent: RunningAgent): string {
  const m = /peers:\s+(ws:\/\/[\d.]+:\d+)/.exec(agent.log())
  if (!m) throw new Error(`the agent printed no peer address:\n${agent.log()}`)
  return m[1]
}

export async function startCluster (t: Test, opts: number | ClusterOptions = {}): Promise<Cluster> {
  const { size = 3, cloud: kind = 'shared', args = [], env: envOf = () => ({}), meta: metaOf } = typeof opts === 'number' ? { size: opts } : opts
  const root = await mkdtemp(join(tmpdir(), 'chaac-cluster-'))
  const cloud = kind === 'none' ? 'none' : join(root, 'cloud')
  const secret = randomBytes(16).toString('hex')
  const env = { CHAAC_SECRET: secret }
  const agents: RunningAgent[] = []
  // Every agent ever started, for the teardown (a restarted agent replaces its old self in agents).
  const started: RunningAgent[] = []
  t.teardown(async () => {
    await Promise.all(started.map(async (a) => await cleanupAgent(a)))
    await rm(root, { recursive: true, force: true })
  })
  const track = (agent: RunningAgent): RunningAgent => {
    started.push(agent)
    return agent
  }
  // In the contract suite on etcd every agent is equal: the first is the "pool" agent only by its place.
  const meta = testMeta()
  const roleArgs = (first: boolean, n: number): string[] => metaOf !== undefined
    ? ['--meta', metaOf(n - 2)]
    : meta !== undefined
      ? ['--meta', `${meta}/c-${createHash('sha256').update(root).digest('hex').slice(0, 16)}`]
      : first ? ['--pool'] : ['--join', poolUrl]
  let poolUrl = ''
  const pool = track(await startAgent({ args: [...roleArgs(true, 2), ...agentArgs(2, cloud), ...args], env: { ...env, ...envOf(0) } }))
  agents.push(pool)
  poolUrl = peerUrl(pool)
  const port = (agent: RunningAgent): number => Number(peerUrl(agent).split(':').pop())
  const poolPort = port(pool)
  const joinAgent = async (n: number, extra: NodeJS.ProcessEnv = {}, data?: string, peerPort = 0): Promise<RunningAgent> =>
    track(await startAgent({ data, args: [...roleArgs(false, n), ...agentArgs(n, cloud, peerPort), ...args], env: { ...env, ...envOf(n - 2), ...extra } }))
  for (let i = 1; i < size; i++) agents.push(await joinAgent(2 + i))
  return {
    secret,
    cloud,
    agents,
    poolUrl,
    join: async (n, extra) => await joinAgent(n, extra),
    restart: async (i) => {
      const again = await joinAgent(2 + i, {}, agents[i].data, port(agents[i]))
      agents[i] = again
      return again
    },
    restartPool: async () => {
      const again = track(await startAgent({ data: agents[0].data, args: [...roleArgs(true, 2), ...agentArgs(2, cloud, poolPort), ...args], env: { ...env, ...envOf(0) } }))
      agents[0] = again
      return again
    }
  }
}

/** Waits until every agent's /status shows the data pool reachable. */
export async function waitReachable (agents: RunningAgent[], timeoutMs = 30_000): Promise<void> {
  for (const agent of agents) {
    await waitFor(async () => (await agent.json('/status').catch(() => null))?.cluster?.reachable === true,
      { timeoutMs, what: `agent ${agent.http} to reach the data pool` })
  }
}
