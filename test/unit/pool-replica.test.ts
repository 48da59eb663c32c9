// The data pool and a replica over real peer links on loopback: the snapshot
// (paged), the change stream, changes asked for through the replica, the
// checks on what a replica may ask, a lost pool and its return.
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ChaacError } from '../../src/errors.ts'
import { connectPeer } from '../../src/net/peer-client.ts'
import type { NetLog } from '../../src/net/peer-link.ts'
import { listenPeers, type PeerServer } from '../../src/net/peer-server.ts'
import { DataPool } from '../../src/meta/data-pool.ts'
import { CLUSTER_MAX_FRAME_BYTES, OP, PAGE_BYTES, parseCall } from '../../src/meta/pool-protocol.ts'
import { PoolReplica } from '../../src/meta/pool-replica.ts'
import { PoolService } from '../../src/meta/pool-service.ts'
import { ROOT_INO, S_IFDIR, S_IFREG } from '../../src/meta/schema.ts'
import { waitFor } from '../helpers/wait.ts'

const SECRET = 'pool replica test secret'
const FILE = { mode: S_IFREG | 0o644, uid: 1000, gid: 1000 }
const DIR = { mode: S_IFDIR | 0o755, uid: 1000, gid: 1000 }
const C = 4 * 1024 * 1024
const ball = (n: number): string => n.toString(16).padStart(64, '0')
const quiet: NetLog = { info: () => {}, warn: () => {}, error: () => {} }

interface Cluster {
  pool: DataPool
  port: number
  /** Stops listening: every replica loses the pool. */
  stop: () => Promise<void>
  /** Listens again on the same port. */
  start: () => Promise<void>
  join: (agentId: string, secret?: string) => Promise<PoolReplica>
}

async function cluster (t: Test): Promise<Cluster> {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-unit-replica-'))
  const pool = await DataPool.open(dir, { agentId: 'pool-agent' })
  const service = new PoolService(pool, quiet)
  let server: PeerServer | undefined
  const replicas: PoolReplica[] = []
  const listen = async (port: number): Promise<void> => {
    server = await listenPeers({
      port, localId: 'pool-agent', secret: SECRET, log: quiet, maxFrameBytes: CLUSTER_MAX_FRAME_BYTES, onLink: (link) => service.attach(link)
    })
  }
  await listen(0)
  const port = (server as PeerServer).port
  t.teardown(async () => {
    for (const r of replicas) await r.close()
    await server?.close()
    await pool.close()
    await rm(dir, { recursive: true, force: true })
  })
  return {
    pool,
    port,
    stop: async () => {
      await server?.close()
      server = undefined
    },
    start: async () => await listen(port),
    join: async (agentId, secret = SECRET) => {
      const replica = await PoolReplica.connect({ url: `ws://127.0.0.1:${port}`, agentId, secret, log: quiet, startTimeoutMs: 5_000 })
      replicas.push(replica)
      return replica
    }
  }
}

const names = (p: { entries: (dir: number) => ReadonlyMap<string, number> }, dir: number): string[] => [...p.entries(dir).keys()].sort()

t.test('replica - takes a snapshot in pages, then follows the change stream', async (t) => {
  const c = await cluster(t)
  const d = await c.pool.create(ROOT_INO, 'd', DIR)
  // Enough records for several snapshot pages, stored in one batch.
  const count = Math.ceil(2.5 * PAGE_BYTES / 100)
  for (let i = 0; i < count; i++) await c.pool.create(d.ino, `f${i}`, FILE, { lazy: true })
  await c.pool.flushLazy()
  const f0 = c.pool.lookup(d.ino, 'f0') as number
  await c.pool.commitFile(f0, { size: C + 5, balls: [ball(1), ball(2)], chunkSize: C })
  await c.pool.reportAgent({ id: 'pool-agent', peer: null, http: null, bins: [], context: null })

  const r = await c.join('agent-b')
  t.equal(r.inodeCount, c.pool.inodeCount, 'every inode')
  t.equal(r.entries(d.ino).size, count, 'every entry of a big directory')
  t.same(r.get(f0), c.pool.get(f0), 'a file with its ball list')
  t.equal(r.balls.get(ball(1))?.refs, 1, 'the map of balls')
  t.equal(r.parent(d.ino), ROOT_INO)
  t.ok(r.agents.has('pool-agent'), 'the map of agents')

  const seen: Array<[number, string]> = []
  r.on('change', (seq, _ops, origin) => seen.push([seq, origin]))
  await c.pool.rename(d.ino, 'f1', ROOT_INO, 'moved')
  await waitFor(() => r.lookup(ROOT_INO, 'moved') !== undefined, { timeoutMs: 5_000, what: 'the rename to reach the replica' })
  t.equal(r.lookup(d.ino, 'f1'), undefined)
  t.same(seen.map(([, origin]) => origin), ['pool-agent'], 'a change made on the pool is tagged with the pool\'s agent')
  t.equal(seen[0][0], c.pool.seq)
})

t.test('replica - changes go through the pool and are visible on return, with the pool\'s errors', async (t) => {
  const c = await cluster(t)
  const b = await c.join('agent-b')
  const other = await c.join('agent-c')
  const d = await b.create(ROOT_INO, 'd', DIR)
  t.equal(b.get(d.ino), d, 'the replica\'s own object')
  t.equal(c.pool.get(d.ino)?.ino, d.ino, 'stored by the pool')
  const f = await b.create(d.ino, 'f', FILE)
  t.equal(b.lookup(d.ino, 'f'), f.ino)
  t.equal(f.nlink, 1)
  await t.rejects(b.create(d.ino, 'f', FILE), { code: 'CHAAC_EXISTS' }, 'the pool\'s error code comes back')
  await t.rejects(b.unlink(ROOT_INO, 'nope'), { code: 'CHAAC_NOT_FOUND' })
  await t.rejects(b.rmdir(ROOT_INO, 'd'), { code: 'CHAAC_NOT_EMPTY' })

  const origins: string[] = []
  other.on('change', (_seq, _ops, origin) => origins.push(origin))
  t.same(await b.commitFile(f.ino, { size: 10, balls: [ball(7)], chunkSize: C, mtime: 1234 }), [])
  t.equal(b.get(f.ino)?.size, 10)
  t.equal(b.get(f.ino)?.mtime, 1234)
  await b.recordCopy('bin-b', ball(7), 100, true)
  await b.markInCloud(ball(7), 100)
  t.same(b.balls.get(ball(7)), { bytes: 100, refs: 1, cloud: true, bins: ['bin-b'] }, 'the map of balls, fed by the replica')
  await waitFor(() => other.balls.get(ball(7))?.cloud === true, { timeoutMs: 5_000, what: 'the other replica to see the ball' })
  t.ok(origins.length > 0 && origins.every((o) => o === 'agent-b'), 'changes asked for by agent-b are tagged with it')
  const replaced = await b.create(ROOT_INO, 'g', FILE)
  t.equal((await b.rename(d.ino, 'f', ROOT_INO, 'g'))?.ino, replaced.ino, 'rename answers the replaced inode')
  t.equal(b.get(replaced.ino)?.nlink, 0)
  t.same(await b.purge(replaced.ino), [])
  t.equal(b.get(replaced.ino), undefined)
  await b.setattr(f.ino, { mode: S_IFREG | 0o600 })
  await other.revalidate()
  t.equal(other.get(f.ino)?.mode, S_IFREG | 0o600, 'after revalidate a replica shows every change stored before it')

  await b.reportAgent({ id: 'agent-b', peer: 'ws://127.0.0.2:7071', http: null, bins: [{ id: 'bin-b', level: 'disk', dir: '/b', capacity: 10, used: 1, balls: 1 }], context: null })
  await other.revalidate()
  t.equal(other.agents.get('agent-b')?.bins[0].id, 'bin-b')
  await t.rejects(other.reportAgent({ id: 'agent-c', peer: null, http: null, bins: [{ id: 'bin-b', level: 'disk', dir: '/c', capacity: 10, used: 0, balls: 0 }], context: null }),
    { code: 'CHAAC_EXISTS', message: /belongs to agent agent-b/ }, 'a bin has one agent')
})

t.test('pool.call - only allowed changes, with checked arguments, on behalf of the caller only', async (t) => {
  t.throws(() => parseCall({ method: 'close', args: [] }, 'x'), { code: 'CHAAC_NOT_SUPPORTED' })
  t.throws(() => parseCall({ method: 'constructor', args: [] }, 'x'), { code: 'CHAAC_NOT_SUPPORTED' })
  t.throws(() => parseCall({ method: 'create', args: [1, 'f'] }, 'x'), { code: 'CHAAC_INVALID', message: /create argument 3 must be a map/ })
  t.throws(() => parseCall({ method: 'unlink', args: [-1, 'f'] }, 'x'), { code: 'CHAAC_INVALID' })
  t.throws(() => parseCall({ method: 'dropBall', args: ['../etc'] }, 'x'), { code: 'CHAAC_INVALID', message: /ball id/ })
  t.throws(() => parseCall({ method: 'reportAgent', args: [{ id: 'y', peer: null, http: null, bins: [], context: null }] }, 'x'), { code: 'CHAAC_NOT_PERMITTED' })
  const { args } = parseCall({ method: 'setattr', args: [5, { mode: 0o644, ino: 9, balls: ['x'] }] }, 'x')
  t.same(args, [5, { mode: 0o644 }], 'fields a change does not take are dropped')

  const c = await cluster(t)
  const link = await connectPeer(`ws://127.0.0.1:${c.port}`, { localId: 'rogue', secret: SECRET, log: quiet, maxFrameBytes: CLUSTER_MAX_FRAME_BYTES })
  t.teardown(async () => await link.close())
  await t.rejects(link.request(OP.call, { method: 'close', args: [] }), { code: 'CHAAC_NOT_SUPPORTED' })
  t.equal(c.pool.inodeCount, 1, 'the pool is untouched')
})

t.test('replica - a lost pool answers EIO at once; back, the replica takes a fresh snapshot', async (t) => {
  const c = await cluster(t)
  const r = await c.join('agent-b')
  await r.create(ROOT_INO, 'before', DIR)
  let synced = 0
  r.on('synced', () => { synced++ })
  await c.stop()
  await waitFor(() => !r.reachable, { timeoutMs: 5_000, what: 'the replica to notice' })
  t.throws(() => r.lookup(ROOT_INO, 'before'), { code: 'CHAAC_IO', message: /unreachable/ }, 'no stale answers')
  const started = Date.now()
  await t.rejects(r.create(ROOT_INO, 'x', FILE), new ChaacError('CHAAC_IO', `the data pool at ws://127.0.0.1:${c.port} is unreachable`))
  await t.rejects(r.revalidate(), { code: 'CHAAC_IO' })
  t.ok(Date.now() - started < 1000, 'fails fast')
  // Changed while the replica was away.
  await c.pool.create(ROOT_INO, 'meanwhile', DIR)
  await c.start()
  await waitFor(() => r.reachable, { timeoutMs: 10_000, what: 'the replica to reconnect' })
  t.equal(synced, 1)
  t.ok(r.lookup(ROOT_INO, 'meanwhile'), 'what changed meanwhile is there')
  t.same(names(r, ROOT_INO), ['before', 'meanwhile'])
  await r.create(ROOT_INO, 'after', FILE)
  t.ok(c.pool.lookup(ROOT_INO, 'after'))
})

t.test('replica - a wrong secret is refused with a message that says so', async (t) => {
  const c = await cluster(t)
  await t.rejects(c.join('agent-x', 'not the secret'), { code: 'CHAAC_AUTH_FAILED', message: /refused this agent: its cluster secret .* is not the pool's/ })
  const ok = await c.join('agent-b')
  t.ok(ok.reachable, 'the pool goes on serving others')
})

t.test('replica - slices go through the pool; their lists follow the change stream and the snapshot, pooled bytes stay with the pool', async (t) => {
  const c = await cluster(t)
  const b = await c.join('agent-b')
  const other = await c.join('agent-c')
  const f = await b.create(ROOT_INO, 'f', FILE)
  const bytes = Buffer.from('eight bytes')
  const slices = [[{ at: 8, len: bytes.length, ball: ball(9), pooled: true }], [{ at: 0, len: 5, ball: ball(10) }]]
  await b.commitFile(f.ino, { size: 2 * C, balls: [ball(1), ball(2)], slices, chunkSize: C, pooled: [{ id: ball(9), data: bytes }] })
  t.same(b.get(f.ino)?.slices, slices, 'the writer\'s replica')
  await other.revalidate()
  t.same(other.get(f.ino)?.slices, slices, 'another replica, from the change stream')
  t.same(await other.readPooled(ball(9)), bytes, 'pooled bytes come from the pool on request')
  await t.rejects(other.readPooled(ball(3)), { code: 'CHAAC_BALL_MISSING' })
  // A new inode record keeps the slice records; a list that empties goes.
  await b.setattr(f.ino, { mode: S_IFREG | 0o600 })
  await b.commitFile(f.ino, { size: 2 * C, balls: [ball(1), ball(2)], slices: [slices[0], null], chunkSize: C })
  await other.revalidate()
  t.same(other.get(f.ino)?.slices, [slices[0]])
  const late = await c.join('agent-d')
  t.same(late.get(f.ino)?.slices, [slices[0]], 'a replica that joins later, from the snapshot')
})
