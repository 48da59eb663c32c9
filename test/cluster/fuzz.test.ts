// Every agent's peer port takes random, truncated and malformed frames,
// before and after authentication (with the cluster secret, requests naming
// the real ops with garbage bodies): each closes only its own connection, or
// is answered; then every agent is healthy and every file intact, read on
// every agent from its peers.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { BALL_OP } from '../../src/cluster/ball-protocol.ts'
import { OP } from '../../src/meta/pool-protocol.ts'
import { encodeFrame } from '../../src/net/frames.ts'
import { Rng } from '../../src/placement/rng.ts'
import { shOk, type RunningAgent } from '../helpers/agent.ts'
import { peerUrl, startCluster, waitReachable } from '../helpers/cluster.ts'
import { fuzzFrame, inParallel, rawAuthenticated, rawPeer, type RawPeer } from '../helpers/raw-peer.ts'
import { waitFor, withDeadline } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const OPTS = { timeout: 300_000 }
const FRAMES = 120
const OPS = [...Object.values(BALL_OP), ...Object.values(OP)]

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function shaOn (agent: RunningAgent, path: string): Promise<string> {
  return (await shOk(`sha256sum '${join(agent.mount, path)}'`, { timeoutMs: 60_000 })).split(' ')[0]
}

t.test('cluster - garbage at every peer port closes only its own connections; every agent stays healthy, every file intact', OPTS, async (t) => {
  const cluster = await startCluster(t, { cloud: 'none' })
  const src = await mkdtemp(join(tmpdir(), 'chaac-fuzz-src-'))
  t.teardown(async () => await rm(src, { recursive: true, force: true }))
  const files = new Map<string, Buffer>()
  for (const [i, writer] of cluster.agents.entries()) {
    const data = randomBytes(4 * MiB + 999 * i)
    files.set(`f${i}`, data)
    await writeFile(join(src, `f${i}`), data)
    await shOk(`cp '${join(src, `f${i}`)}' '${join(writer.mount, `f${i}`)}'`)
  }

  const seed = Number(process.env.CHAAC_FUZZ_SEED ?? 0xc1a5)
  t.comment(`seed ${seed} (set CHAAC_FUZZ_SEED to replay another)`)
  const rng = new Rng(seed)
  const send = (raw: RawPeer, data: Buffer | string): void => raw.ws.send(data, { binary: typeof data !== 'string' })
  let answered = 0
  let closed = 0
  for (const agent of cluster.agents) {
    const url = peerUrl(agent)
    // The cluster's frames may be as large as 16 MiB: an oversized one is 1 MiB here, well inside, so it is just garbage.
    const frames = Array.from({ length: FRAMES }, () => fuzzFrame(rng, MiB, OPS))
    await withDeadline(inParallel(frames, 8, async ({ data }) => {
      const raw = await rawPeer(url)
      try {
        send(raw, data)
        await withDeadline(raw.closed, 30_000, 'the close after garbage before auth')
        closed++
      } finally {
        raw.ws.terminate()
      }
    }), 120_000, `the frames before auth at ${url}`)
    await withDeadline(inParallel(frames, 8, async ({ data }) => {
      const raw = await rawAuthenticated(url, cluster.secret)
      try {
        send(raw, data)
        raw.ws.send(encodeFrame({ t: 'ping', n: 424242 }))
        let frame = await raw.next()
        while (frame && !(frame.t === 'pong' && frame.n === 424242)) frame = await raw.next()
        if (frame) answered++
        else closed++
      } finally {
        raw.ws.terminate()
      }
    }), 120_000, `the frames after auth at ${url}`)
  }
  t.comment(`${closed} connections closed, ${answered} answered`)
  t.equal(closed + answered, 2 * FRAMES * cluster.agents.length, 'every connection ended in a close or an answer')

  await waitReachable(cluster.agents)
  for (const agent of cluster.agents) {
    const status = await agent.json('/status')
    t.equal(status.cluster.reachable, true, `${agent.http} healthy`)
    t.notMatch(agent.log(), /"level":(50|60)/, `${agent.http} logged no error`)
  }
  await waitFor(async () => (await cluster.agents[0].json('/api/v1/bins')).bins.filter((x: any) => x.alive).length === 6,
    { timeoutMs: 30_000, what: 'every agent alive' })
  for (const agent of cluster.agents) {
    for (const [name, data] of files) t.equal(await shaOn(agent, name), sha(data), `${name} intact on ${agent.http}`)
  }
})
