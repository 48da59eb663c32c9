// The background worker's election on real etcd members: exactly one agent is
// elected; when it stops another takes over, and its liveness key goes with
// its lease; the elected agent compacts etcd's history. (An elected agent
// killed with -9, its lease left to expire, is in faults.test.ts.)
import { randomBytes } from 'node:crypto'
import { Etcd3 } from 'etcd3'
import t from 'tap'
import { BackgroundWorker } from '../../src/cluster/worker.ts'
import { withEtcd } from '../helpers/etcd.ts'
import { waitFor } from '../helpers/wait.ts'

const TTL = 2
const log = { info: () => {}, warn: () => {}, error: () => {} }

t.test('worker - one elected at a time; another once it stops; the history compacted', { timeout: 120_000 }, async (t) => {
  const etcd = await withEtcd(t)
  const prefix = `/worker-${randomBytes(4).toString('hex')}/`
  const probe = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) })
  t.teardown(() => probe.close())
  await probe.put(`${prefix}old`).value('1')
  const old = Number((await probe.kv.range({ key: Buffer.from(`${prefix}old`) })).header.revision)
  const running = new Map<string, number>()
  const start = (id: string): { worker: BackgroundWorker, client: Etcd3 } => {
    const client = new Etcd3({ hosts: etcd.endpoints.map((e) => `http://${e}`) })
    const worker = new BackgroundWorker({
      etcd: client,
      prefix,
      agentId: id,
      ttlSeconds: TTL,
      log,
      historyMs: 0,
      onElected: () => {
        running.set(id, Date.now())
        return async () => { running.delete(id) }
      }
    })
    worker.start()
    t.teardown(async () => {
      await worker.close().catch(() => {})
      client.close()
    })
    return { worker, client }
  }
  const workers = ['a', 'b', 'c'].map((id) => ({ id, ...start(id) }))
  await waitFor(() => running.size === 1, { timeoutMs: 15_000, what: 'one agent elected' })
  const first = workers.find((w) => w.worker.elected) as typeof workers[number]
  t.equal(workers.filter((w) => w.worker.elected).length, 1, 'exactly one elected')
  t.same(await first.worker.liveAgents(), new Set(['a', 'b', 'c']), 'every agent has its liveness key')

  // The elected agent compacts up to the revision it saw when elected (no history kept here): the one before is gone.
  await waitFor(async () => await probe.kv.range({ key: Buffer.from(`${prefix}old`), revision: old }).then(() => false, (err: Error) => /compacted/.test(err.message)),
    { timeoutMs: 30_000, intervalMs: 200, what: 'etcd history compacted by the elected agent' })
  t.pass('the history before the election is compacted')

  const stopped = Date.now()
  await first.worker.close()
  const next = await waitFor(() => workers.find((w) => w !== first && w.worker.elected), { timeoutMs: 20_000, what: 'another agent elected' })
  t.comment(`${next.id} elected ${Date.now() - stopped} ms after ${first.id} stopped`)
  t.notOk(running.has(first.id), 'the stopped agent\'s work stopped')
  t.equal(running.size, 1, 'one agent runs the work')
  t.notOk((await next.worker.liveAgents()).has(first.id), 'the stopped agent\'s liveness key is gone')
})
