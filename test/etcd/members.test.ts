// The etcd harness itself (scripts/lib/etcd.ts, test/helpers/etcd.ts) on one
// cluster of three real members: data written through the etcd3 client
// outlives a kill -9 of the leader, a killed member comes back on its data
// folder, and a cut-off address reaches no member until healed.
import { request } from 'node:http'
import { Etcd3 } from 'etcd3'
import t, { type Test } from 'tap'
import { cutOff, withEtcd, type EtcdMember } from '../helpers/etcd.ts'
import { waitFor } from '../helpers/wait.ts'

const OPTS = { timeout: 60_000 }

/** An etcd3 client on the given members, every call bounded by 2 s. */
function client (t: Test, members: EtcdMember[]): Etcd3 {
  const c = new Etcd3({
    hosts: members.map((m) => m.clientUrl),
    defaultCallOptions: (context) => context.isStream ? {} : { deadline: new Date(Date.now() + 2_000) }
  })
  t.teardown(() => c.close())
  return c
}

/** A serializable read of `key` from one member, sent from `localAddress` over etcd's JSON gateway; 'timeout' if no answer. */
async function readFrom (localAddress: string, member: EtcdMember, key: string, timeoutMs = 1_000): Promise<string | null | 'timeout'> {
  const body = JSON.stringify({ key: Buffer.from(key).toString('base64'), serializable: true })
  return await new Promise((resolve, reject) => {
    const req = request(`${member.clientUrl}/v3/kv/range`, { method: 'POST', localAddress, agent: false, timeout: timeoutMs }, (res) => {
      let text = ''
      res.on('data', (d) => { text += String(d) })
      res.on('end', () => {
        const kv = JSON.parse(text).kvs?.[0]
        resolve(kv === undefined ? null : Buffer.from(kv.value, 'base64').toString())
      })
    })
    req.on('timeout', () => {
      req.destroy()
      resolve('timeout')
    })
    req.on('error', reject)
    req.end(body)
  })
}

t.test('etcd members - three real members: writes, leader loss, restart, partition', OPTS, async (t) => {
  const started = Date.now()
  const etcd = await withEtcd(t)
  t.comment(`3 members healthy after ${Date.now() - started} ms on ${etcd.endpoints.join(',')}`)
  const kv = client(t, etcd.members)

  t.test('etcd members - a put through the etcd3 client is read back', async (t) => {
    await kv.put('/members/a').value('1')
    t.equal(await kv.get('/members/a').string(), '1')
  })

  t.test('etcd members - kill -9 of the leader: a new leader within 10 s, the data still there', async (t) => {
    const old = await etcd.leader()
    const pid = old.pid as number
    await etcd.kill(old)
    t.equal(old.pid, undefined, 'the member counts as gone')
    t.throws(() => process.kill(pid, 0), { code: 'ESRCH' }, 'its process is gone')
    const killed = Date.now()
    const next = await etcd.leader(10_000)
    t.comment(`${old.name} killed: ${next.name} leads after ${Date.now() - killed} ms`)
    t.not(next, old)
    t.equal(await kv.get('/members/a').string(), '1', 'the write made before is there')
    await kv.put('/members/b').value('2')

    const restarted = Date.now()
    await etcd.restart(old)
    t.comment(`${old.name} healthy again after ${Date.now() - restarted} ms`)
    t.not(old.pid, pid, 'a new process')
    // Alone on the restarted member, serializable: what its data folder kept and what it caught up on.
    const alone = client(t, [old])
    t.equal(await waitFor(async () => await alone.get('/members/b').serializable(true).string(), { timeoutMs: 5_000, what: 'the restarted member to catch up' }), '2')
    t.equal(await alone.get('/members/a').serializable(true).string(), '1')
    await etcd.waitHealthy(5_000)
  })

  t.test('etcd members - an address cut off reaches no member until healed; other addresses still do', async (t) => {
    const cut = await cutOff('127.0.0.2', etcd.members.map((m) => m.host))
    t.teardown(cut.heal)
    for (const m of etcd.members) {
      t.equal(await readFrom('127.0.0.2', m, '/members/a'), 'timeout', `127.0.0.2 gets no answer from ${m.name}`)
      t.equal(await readFrom('127.0.0.3', m, '/members/a'), '1', `127.0.0.3 still reads from ${m.name}`)
    }
    await cut.heal()
    for (const m of etcd.members) t.equal(await readFrom('127.0.0.2', m, '/members/a'), '1', `127.0.0.2 reads from ${m.name} again`)
  })
})
