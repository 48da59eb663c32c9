// The data plane's pure parts (which peers to ask, which balls lack copies,
// the checks on ball requests), the map of balls' pins and garbage rules in
// a real data pool, and the ball reader's remote reads, pulls and caches over
// a fake set of peers (real bins on disk).
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { parseGet, parsePull, parseSync } from '../../src/cluster/ball-protocol.ts'
import { Balls } from '../../src/balls/balls.ts'
import { LocalBalls } from '../../src/balls/local.ts'
import type { RemoteBalls, RemoteSource } from '../../src/balls/types.ts'
import { placementBins, rankPeers, repairPlan } from '../../src/cluster/view.ts'
import { DataPool } from '../../src/meta/data-pool.ts'
import type { AgentRecord, BallRecord } from '../../src/meta/schema.ts'
import { encodeBall } from '../../src/store/ball-codec.ts'
import { Bin } from '../../src/store/bin.ts'

const KiB = 1024
const ball = (n: number): string => n.toString(16).padStart(64, '0')
const INTERVAL = 5000
const NOW = 1_000_000

function agent (id: string, bins: string[], extra: Partial<AgentRecord> = {}): AgentRecord {
  return {
    id,
    peer: `ws://10.0.0.${id.length}:7071`,
    http: null,
    bins: bins.map((b) => ({ id: b, level: b.startsWith('mem') ? 'mem' : 'disk', dir: `/${b}`, capacity: 100, used: 10, balls: 1 })),
    context: null,
    seenAt: NOW,
    ...extra
  }
}

t.test('rankPeers - suspects last, then by round trip and how busy the host is', async (t) => {
  const busy = { ufCPU: 1, ufMemory: 0, ufFileSystem: 0, ufNet: 1 }
  const ranked = rankPeers([
    { agent: 'slow', rttMs: 20, suspect: false },
    { agent: 'busy', rttMs: 0.2, context: busy, suspect: false },
    { agent: 'near', rttMs: 0.3, suspect: false },
    { agent: 'failed', rttMs: 0.1, suspect: true },
    { agent: 'unknown', suspect: false }
  ])
  t.same(ranked.map((c) => c.agent), ['near', 'unknown', 'busy', 'slow', 'failed'])
})

t.test('placementBins - this agent as it is now, the others alive as they reported', async (t) => {
  const agents = [agent('self', ['d-old']), agent('b', ['d-b', 'mem-b']), agent('gone', ['d-g'], { goneAt: NOW - 1 }), agent('silent', ['d-s'], { seenAt: NOW - 4 * INTERVAL })]
  const self = { ...agent('self', ['d-self']), peer: null }
  const bins = placementBins(agents, self, NOW, INTERVAL)
  t.same(bins.map((b) => `${b.host}/${b.id}/${b.level}`), ['self/d-self/disk', 'b/d-b/disk', 'b/mem-b/mem'])
})

t.test('repairPlan - referenced balls short of k copies on agents that count, with somewhere to fetch from', async (t) => {
  const agents = new Map([
    ['a', agent('a', ['da'])],
    ['b', agent('b', ['db'])],
    ['c', agent('c', ['dc'], { goneAt: NOW - 1000 })],
    ['d', agent('d', ['dd'], { goneAt: NOW - 60_000 })]
  ])
  const rec = (bins: string[], extra: Partial<BallRecord> = {}): BallRecord => ({ bytes: 100, refs: 1, cloud: false, bins, ...extra })
  const balls = new Map<string, BallRecord>([
    [ball(1), rec(['da', 'db'])], // two copies: fine
    [ball(2), rec(['da', 'dc'])], // c gone, but within the grace period: counts
    [ball(3), rec(['da', 'dd'])], // d gone for longer: one copy short
    [ball(4), rec(['dd'])], // only on d, nothing alive to fetch from, no cloud: left out
    [ball(5), rec(['dd'], { cloud: true })], // from the cloud tier
    [ball(6), rec(['da', 'db'], { cached: ['db'] })], // a cache does not count
    [ball(7), rec(['da'], { refs: 0 })] // garbage: never copied
  ])
  const jobs = repairPlan({ balls, agents, now: NOW, intervalMs: INTERVAL, graceMs: 10_000, replicas: 2 })
  t.same(jobs.map((j) => [j.id, j.missing, j.counted, j.sources, j.cloud]), [
    [ball(3), 1, ['a'], ['a'], false],
    [ball(5), 2, [], [], true],
    [ball(6), 1, ['a'], ['a', 'b'], false]
  ])
  const lone = repairPlan({ balls, agents: new Map([['a', agent('a', ['da'])]]), now: NOW, intervalMs: INTERVAL, graceMs: 10_000, replicas: 2 })
  t.same(lone.filter((j) => j.id === ball(1)), [], 'one host alive: one copy is all there can be')
})

t.test('ball requests - checked fields, bounded sizes', async (t) => {
  t.same(parseGet({ id: ball(1), start: 0, length: 4096, extra: 1 }), { id: ball(1), start: 0, length: 4096 })
  t.throws(() => parseGet({ id: ball(1), start: 0, length: 65 * 1024 * 1024 }), /at most/)
  t.throws(() => parseGet({ id: 'x', start: 0, length: 1 }), /ball id/)
  t.same(parsePull({ id: ball(2), bytes: 10, from: ['a'], cloud: false }), { id: ball(2), bytes: 10, from: ['a'], cloud: false })
  t.throws(() => parsePull({ id: ball(2), bytes: 10, from: Array(65).fill('a'), cloud: false }), /at most 64/)
  t.throws(() => parseSync({ ids: [1] }), /ball id/)
})

async function tempDir (t: Test, prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

t.test('data pool - writers pin balls; a copy is released only when nothing needs it; empty records go', async (t) => {
  const pool = await DataPool.open(join(await tempDir(t, 'chaac-unit-pins-'), 'meta'))
  t.teardown(async () => await pool.close())
  await pool.reportAgent({ id: 'w', peer: null, http: null, bins: [], context: null, startedAt: 1 })
  await pool.recordCopy('bin-p', ball(1), 100, true, { writer: 'w' })
  t.same(pool.balls.get(ball(1))?.writers, ['w'])
  t.ok(pool.inUse(ball(1)), 'pinned by its writer')
  t.equal(await pool.releaseCopy('bin-p', ball(1)), false, 'a holder may not drop it')
  t.same(await pool.pinBalls('v', [ball(1)]), [['bin-p']], 'another writer learns the durable copies there are')
  await pool.unpinBalls('w', [ball(1)])
  await pool.unpinBalls('v', [ball(1)])
  t.notOk(pool.inUse(ball(1)))
  t.equal(await pool.releaseCopy('bin-p', ball(1)), true, 'garbage now')
  t.equal(pool.balls.get(ball(1)), undefined, 'and its record went with its last copy')

  await pool.recordCopy('bin-p', ball(2), 100, true, { writer: 'w' })
  await pool.recordCopy('bin-q', ball(2), 100, true, { cached: true })
  t.same(pool.balls.get(ball(2))?.cached, ['bin-q'])
  await pool.recordCopy('bin-q', ball(2), 100, true)
  t.equal(pool.balls.get(ball(2))?.cached, undefined, 'a cache made durable')
  await pool.reportAgent({ id: 'w', peer: null, http: null, bins: [], context: null, startedAt: 2 })
  t.equal(pool.balls.get(ball(2))?.writers, undefined, 'a restarted writer\'s pins are gone')
  await pool.markGone('w')
  t.type(pool.agents.get('w')?.goneAt, 'number')
  await pool.reportAgent({ id: 'w', peer: null, http: null, bins: [], context: null, startedAt: 2 })
  t.equal(pool.agents.get('w')?.goneAt, undefined, 'back once it reports')
})

t.test('ball reader - remote sources: reads from the best peer, moves on from a bad one, caches, evicts caches', async (t) => {
  const root = await tempDir(t, 'chaac-unit-remote-')
  const disk = new Bin({ level: 'disk', dir: join(root, 'disk'), capacity: 300 * KiB })
  await disk.open()
  let durableElsewhere = true
  const local = new LocalBalls({ bins: [disk], eviction: 'lru', inCloud: () => false, durableElsewhere: () => durableElsewhere })
  // Balls the peers hold: the bad peer's copies have a flipped byte.
  const stored = new Map<string, Buffer>()
  const make = (bytes: number): { id: string, data: Buffer } => {
    const data = randomBytes(bytes)
    const { id, header } = encodeBall(data)
    stored.set(id, Buffer.concat([header, data]))
    return { id, data }
  }
  const { id, data } = make(100 * KiB)
  const served: string[] = []
  const peer = (name: string, corrupt: boolean): RemoteSource => {
    const copy = (ball: string): Buffer => {
      const bytes = Buffer.from(stored.get(ball) as Buffer)
      if (corrupt) bytes[Math.floor(bytes.length * 0.7)] ^= 0xff
      return bytes
    }
    return {
      agent: name,
      readRaw: async (ball, start, length) => {
        served.push(name)
        return copy(ball).subarray(start, start + length)
      },
      readBall: async (ball) => {
        served.push(name)
        return copy(ball)
      }
    }
  }
  const remote: RemoteBalls = {
    sources: () => [peer('bad', true), peer('good', false)],
    place: async () => {},
    sync: async () => {},
    unpinned: () => {}
  }
  const store = new Balls({ local, writePolicy: 'none', inCloud: () => false, remote })
  t.teardown(async () => await store.close())
  t.same(await store.read(id, 1000, 10, false), data.subarray(1000, 1010))
  t.same(served, ['bad', 'good'], 'the corrupt copy was passed over')
  t.equal(store.outcomes.remoteHit, 1)
  await store.settle()
  t.ok(disk.has(id) && disk.entries.get(id)?.cached === true, 'kept as a cache')
  t.same(await store.read(id, 0, 10, false), data.subarray(0, 10))
  t.equal(store.outcomes.localHit, 1, 'then read locally')

  // A cache goes for room when a durable copy is elsewhere; a durable copy stays.
  const other = randomBytes(250 * KiB)
  const pulled = encodeBall(other)
  t.equal(await local.pull(pulled.id, async () => Buffer.concat([pulled.header, other])), disk.id, 'a pulled ball is stored durable')
  t.notOk(disk.has(id), 'the cache made room')
  durableElsewhere = false
  await t.rejects(local.pull(ball(9), async () => Buffer.from('not a ball')), /fails its hash/, 'a pulled ball is checked')
  t.ok(disk.has(pulled.id) && disk.entries.get(pulled.id)?.cached === false)

  // Cache skip: only the blocks needed, from a peer, nothing kept.
  const big = make(200 * KiB)
  served.length = 0
  t.same(await store.read(big.id, 130 * KiB, 10, true), big.data.subarray(130 * KiB, 130 * KiB + 10))
  t.same(served, ['bad', 'bad', 'good'], 'the header, then the block from the first peer whose block checks out')
  t.notOk(disk.has(big.id), 'nothing kept')
  t.equal(store.outcomes.remoteHit, 2)
})
