// The etcd engine on three real etcd members, two agents' pools on one
// prefix: a name taken by one is refused to the other, changes made on one
// are seen by the other after revalidate (close-to-open), inode numbers never
// clash, and a transaction whose answer is lost is looked up, not applied
// twice nor reported failed.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { etcdSpec } from '../../src/meta/etcd-client.ts'
import { EtcdPool } from '../../src/meta/etcd-pool.ts'
import { ROOT_INO, S_IFDIR, S_IFREG } from '../../src/meta/schema.ts'
import { withEtcd } from '../helpers/etcd.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'
import { waitFor } from '../helpers/wait.ts'

const OPTS = { timeout: 120_000 }
const FILE = { mode: S_IFREG | 0o644, uid: 0, gid: 0 }
const DIR = { mode: S_IFDIR | 0o755, uid: 0, gid: 0 }
const log = { info: () => {}, warn: () => {}, debug: () => {} }

t.test('etcd engine - two agents on one prefix', OPTS, async (t) => {
  const etcd = await withEtcd(t, { clientPort: 23_101, peerPort: 23_102 })
  const spec = etcdSpec({ endpoints: etcd.endpoints, prefix: `/pool-${randomBytes(4).toString('hex')}/` })
  const open = async (agentId: string): Promise<EtcdPool> => {
    const pool = await EtcdPool.open({ spec, agentId, log })
    t.teardown(async () => await pool.close())
    return pool
  }
  const a = await open('a')
  const b = await open('b')

  t.test('a name taken on one agent is refused on the other, whichever came first', async (t) => {
    const results = await Promise.allSettled([a.create(ROOT_INO, 'same', FILE), b.create(ROOT_INO, 'same', FILE)])
    t.equal(results.filter((r) => r.status === 'fulfilled').length, 1, 'one create wins')
    const lost = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
    t.match(lost.reason, { code: 'CHAAC_EXISTS' })
    await a.revalidate()
    await b.revalidate()
    t.equal(a.lookup(ROOT_INO, 'same'), b.lookup(ROOT_INO, 'same'), 'both agents see the one that won')
  })

  t.test('creates on both agents at once: every name on both, every inode number once', async (t) => {
    const made = await Promise.all([
      ...Array.from({ length: 150 }, async (_, i) => await a.create(ROOT_INO, `a${i}`, FILE)),
      ...Array.from({ length: 150 }, async (_, i) => await b.create(ROOT_INO, `b${i}`, FILE))
    ])
    t.equal(new Set(made.map((n) => n.ino)).size, 300, 'inode numbers are unique across agents')
    await a.revalidate()
    await b.revalidate()
    for (const pool of [a, b]) {
      t.equal([...pool.entries(ROOT_INO).keys()].filter((n) => /^[ab]\d+$/.test(n)).length, 300)
    }
  })

  t.test('directories, renames and unlinks from both sides keep link counts right', async (t) => {
    await a.create(ROOT_INO, 'd1', DIR)
    await b.create(ROOT_INO, 'd2', DIR)
    await a.revalidate()
    const d1 = a.lookup(ROOT_INO, 'd1') as number
    await a.rename(ROOT_INO, 'a1', d1, 'moved')
    await b.revalidate()
    await b.rename(ROOT_INO, 'd2', d1, 'd2')
    await b.unlink(ROOT_INO, 'b1')
    await a.revalidate()
    await b.revalidate()
    for (const pool of [a, b]) {
      t.equal(pool.lookup(d1, 'moved'), b.lookup(d1, 'moved'))
      t.equal(pool.lookup(ROOT_INO, 'a1'), undefined)
      t.equal(pool.lookup(ROOT_INO, 'b1'), undefined)
      t.equal(pool.get(d1)?.nlink, 3, 'd1 holds one directory')
      t.equal(pool.get(ROOT_INO)?.nlink, 3, 'the root holds d1 only')
    }
  })

  t.test('a commit larger than etcd takes in one transaction goes in steps: counts up, the file, counts down', async (t) => {
    const small = await EtcdPool.open({ spec, agentId: 'small', log, maxOps: 10 })
    t.teardown(async () => await small.close())
    const node = await small.create(ROOT_INO, 'big', FILE)
    const ids = (tag: string): string[] => Array.from({ length: 30 }, (_, i) => `${tag}${String(i).padStart(62, '0')}`)
    const chunkSize = 64 * 1024
    await small.commitFile(node.ino, { size: 30 * chunkSize, balls: ids('a'), chunkSize })
    const released = await small.commitFile(node.ino, { size: 30 * chunkSize, balls: [...ids('a').slice(0, 10), ...ids('b').slice(10)], chunkSize })
    t.same(released.sort(), ids('a').slice(10).sort(), 'the balls no longer named are released')
    await a.revalidate()
    t.same(a.get(node.ino)?.balls, [...ids('a').slice(0, 10), ...ids('b').slice(10)], 'another agent sees the whole ball list')
    t.ok(ids('a').slice(0, 10).every((id) => a.balls.get(id)?.refs === 1), 'kept balls counted once')
    t.ok(ids('b').slice(10).every((id) => a.balls.get(id)?.refs === 1), 'new balls counted once')
    t.ok(ids('a').slice(10).every((id) => (a.balls.get(id)?.refs ?? 0) === 0), 'released balls counted zero')
  })

  t.test('changes of one record queued behind each other while others are in flight: memory ends as etcd holds it', async (t) => {
    const hot = await a.create(ROOT_INO, 'hot', FILE)
    const d = await a.create(ROOT_INO, 'busy', DIR)
    // Creates elsewhere keep lanes busy; the setattrs of one inode wait for each other, and the watch echoes each.
    await Promise.all([
      ...Array.from({ length: 120 }, async (_, i) => await a.setattr(hot.ino, { mtime: i + 1 })),
      ...Array.from({ length: 120 }, async (_, i) => await a.create(d.ino, `n${i}`, FILE))
    ])
    await a.revalidate()
    const fresh = await open('fresh')
    t.equal(a.get(hot.ino)?.mtime, 120, 'the last change wins here')
    t.equal(fresh.get(hot.ino)?.mtime, 120, 'and in etcd')
    t.equal(a.entries(d.ino).size, 120)
    t.same(a.get(d.ino), fresh.get(d.ino), 'the directory as etcd holds it')
  })

  t.test('a change made while the other agent is busy shows after revalidate, not before its watch', async (t) => {
    const node = await a.create(ROOT_INO, 'grow', FILE)
    await a.setattr(node.ino, { mode: S_IFREG | 0o600 })
    await b.revalidate()
    t.equal(b.get(node.ino)?.mode, S_IFREG | 0o600)
  })
})

t.test('etcd engine - a transaction whose answer is lost is applied once and reported done', OPTS, async (t) => {
  const etcd = await withEtcd(t, { clientPort: 23_111, peerPort: 23_112 })
  const [host, port] = etcd.endpoints[0].split(':')
  const proxy = await startTcpProxy(Number(port), host, { listen: '127.0.0.1' })
  t.teardown(async () => await proxy.close())
  const prefix = `/lost-${randomBytes(4).toString('hex')}/`
  const pool = await EtcdPool.open({ spec: etcdSpec({ endpoints: [`127.0.0.1:${proxy.port}`], prefix }, { callTimeoutMs: 500 }), agentId: 'a', log })
  t.teardown(async () => await pool.close())
  const other = await EtcdPool.open({ spec: etcdSpec({ endpoints: etcd.endpoints, prefix }), agentId: 'b', log })
  t.teardown(async () => await other.close())

  proxy.hold()
  const creating = pool.create(ROOT_INO, 'once', FILE)
  // The transaction reached etcd: the other agent sees the name while the answer is held back.
  await waitFor(async () => {
    await other.revalidate()
    return other.lookup(ROOT_INO, 'once') !== undefined
  }, { timeoutMs: 5_000, what: 'the create to reach etcd' })
  proxy.release()
  const node = await creating
  t.equal(node.ino, other.lookup(ROOT_INO, 'once'), 'the create is reported done, with the inode that was stored')
  await waitFor(() => pool.reachable, { timeoutMs: 10_000, what: 'the agent back in touch' })
  await pool.create(ROOT_INO, 'after', FILE)
  await other.revalidate()
  t.same([...other.entries(ROOT_INO).keys()].sort(), ['after', 'once'], 'nothing applied twice, and the agent goes on')
})
