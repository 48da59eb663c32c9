// A cluster on etcd survives the loss of any host: three etcd members on
// 127.0.0.5-7 and three agents on 127.0.0.2-4 (two copies of each ball),
// each agent reaching etcd from its own address. Faults are real: kill -9 of
// an agent, kill -9 of the etcd leader, and an agent's traffic to etcd
// dropped with iptables.
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { sh, shOk, type RunningAgent } from '../helpers/agent.ts'
import { startCluster } from '../helpers/cluster.ts'
import { cutOff, withEtcd } from '../helpers/etcd.ts'
import { startTcpProxy } from '../helpers/tcp-proxy.ts'
import { waitFor } from '../helpers/wait.ts'

const OPTS = { timeout: 600_000 }
const MiB = 1024 * 1024
const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function shaOn (agent: RunningAgent, name: string): Promise<string> {
  return (await shOk(`sha256sum '${join(agent.mount, name)}'`, { timeoutMs: 60_000 })).split(' ')[0]
}

/** Creates, writes, renames, lists and reads on the agent's mount; fails on the first error. */
async function workOn (agent: RunningAgent, tag: string): Promise<void> {
  const m = agent.mount
  await shOk([
    `mkdir '${m}/${tag}'`, `echo '${tag}' > '${m}/${tag}/a'`, `head -c 300000 /dev/urandom > '${m}/${tag}/b'`, 'sync',
    `mv '${m}/${tag}/a' '${m}/${tag}/c'`, `ls '${m}' '${m}/${tag}' > /dev/null`, `cat '${m}/${tag}/c' '${m}/${tag}/b' > /dev/null`
  ].join(' && '), { timeoutMs: 60_000 })
}

t.test('etcd cluster - any one host lost, nothing stops', OPTS, async (t) => {
  const etcd = await withEtcd(t, { clientPort: 23_201, peerPort: 23_202 })
  // Each agent dials etcd from its own address, so that its traffic can be cut alone.
  const proxies = await Promise.all([2, 3, 4].map(async (n) => await Promise.all(etcd.members.map(async (m) => {
    const proxy = await startTcpProxy(Number(m.clientUrl.split(':').pop()), m.host, { listen: `127.0.0.${n}`, from: `127.0.0.${n}` })
    t.teardown(async () => await proxy.close())
    return `127.0.0.${n}:${proxy.port}`
  }))))
  const prefix = `faults-${randomBytes(4).toString('hex')}`
  const cluster = await startCluster(t, { cloud: 'none', args: ['--replicas', '2'], meta: (i) => `etcd://${proxies[i].join(',')}/${prefix}` })
  const [a, b, c] = cluster.agents
  const src = await mkdtemp(join(tmpdir(), 'chaac-etcd-faults-'))
  t.teardown(async () => await rm(src, { recursive: true, force: true }))
  const files = new Map<string, string>()
  for (let i = 0; i < 4; i++) {
    const data = randomBytes(3 * MiB + 1000 * i)
    await writeFile(join(src, `f${i}`), data)
    await shOk(`cp '${join(src, `f${i}`)}' '${join(a.mount, `f${i}`)}' && sync`)
    files.set(`f${i}`, sha(data))
  }
  const worker = async (agents: RunningAgent[]): Promise<RunningAgent> => await waitFor(async () => {
    for (const agent of agents) if ((await agent.json('/status').catch(() => null))?.cluster?.worker === true) return agent
    return undefined
  }, { timeoutMs: 30_000, what: 'an agent elected to run the background work' })

  t.test('kill -9 of an agent: the others read every file and go on writing', async (t) => {
    const elected = await worker(cluster.agents)
    const victim = elected
    const others = cluster.agents.filter((x) => x !== victim)
    await victim.kill9()
    const started = Date.now()
    for (const agent of others) {
      await workOn(agent, `after-kill-${agent.http.split(':')[0]}`)
      for (const [name, hash] of files) t.equal(await shaOn(agent, name), hash, `${name} whole on ${agent.http}`)
    }
    t.comment(`the other agents worked on at once: ${Date.now() - started} ms for their operations`)
    const next = await worker(others)
    t.not(next, victim, `another agent (${next.http}) runs the background work`)
    await waitFor(async () => (await next.json('/status')).cluster.agents.filter((x: any) => x.alive).length === 2,
      { timeoutMs: 30_000, what: 'the killed agent counted gone' })
    const i = cluster.agents.indexOf(victim)
    const again = i === 0 ? await cluster.restartPool() : await cluster.restart(i)
    await workOn(again, 'back')
    t.equal(await shaOn(again, 'f0'), files.get('f0'), 'the restarted agent reads what was written')
  })

  t.test('kill -9 of the etcd leader: operations pause, then go on; nothing acknowledged is lost', async (t) => {
    // A writer on b creates files one by one, each fsync'ed, and prints each name once acknowledged.
    const script = `import os, sys, time
d = sys.argv[1]; worst = 0
for i in range(400):
    t0 = time.monotonic()
    fd = os.open(f"{d}/w{i}", os.O_CREAT | os.O_WRONLY, 0o644); os.write(fd, b"x%d" % i); os.fsync(fd); os.close(fd)
    worst = max(worst, time.monotonic() - t0)
    print(f"w{i}", flush=True)
print(f"worst {worst:.3f}", flush=True)`
    await writeFile(join(src, 'writer.py'), script)
    await shOk(`mkdir '${b.mount}/leader'`)
    const writing = sh(`python3 '${join(src, 'writer.py')}' '${b.mount}/leader'`, { timeoutMs: 240_000 })
    await waitFor(async () => (await sh(`ls '${b.mount}/leader' | wc -l`)).stdout.trim() !== '0', { timeoutMs: 30_000, what: 'the writer to start' })
    const leader = await etcd.leader()
    await etcd.kill(leader)
    const out = await writing
    t.equal(out.code, 0, `the writer finished without an error: ${out.stderr.slice(0, 300)}`)
    const worst = Number(/worst ([\d.]+)/.exec(out.stdout)?.[1])
    t.comment(`leader ${leader.name} killed: the longest create+fsync took ${worst} s`)
    t.ok(worst < 15, 'the pause is bounded by the client deadlines')
    const acked = out.stdout.split('\n').filter((l) => /^w\d+$/.test(l))
    t.equal(acked.length, 400)
    for (const agent of [a, c]) {
      const listed = new Set((await shOk(`ls '${agent.mount}/leader'`)).split('\n').filter((x) => x !== ''))
      t.equal(acked.filter((name) => !listed.has(name)).length, 0, `every acknowledged file is there on ${agent.http}`)
    }
    const sample = await shOk(`cat '${c.mount}/leader/w399' '${c.mount}/leader/w0'`)
    t.equal(sample, 'x399x0')
    await etcd.restart(leader)
  })

  t.test('a file unlinked while open stays while its holder lives, and goes once the holder died with it open', async (t) => {
    // The agents as they are now (the first test restarted one).
    const [a, , c] = cluster.agents
    await shOk(`head -c 300000 /dev/urandom > '${c.mount}/held'`)
    const want = await shaOn(c, 'held')
    // A process on c keeps the file open; each line it reads makes it read the whole file through its handle.
    await writeFile(join(src, 'holder.py'), `import hashlib, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
print("open", flush=True)
for line in sys.stdin:
    os.lseek(fd, 0, 0)
    print(hashlib.sha256(os.read(fd, 1 << 20)).hexdigest(), flush=True)`)
    const holder = spawn('python3', [join(src, 'holder.py'), join(c.mount, 'held')], { stdio: ['pipe', 'pipe', 'inherit'] })
    t.teardown(() => { holder.kill('SIGKILL') })
    const lines: string[] = []
    holder.stdout.on('data', (d) => lines.push(...String(d).split('\n').filter((l) => l !== '')))
    await waitFor(() => lines.includes('open'), { timeoutMs: 30_000, what: 'the holder to open the file' })
    const files = async (): Promise<number> => (await a.json('/status')).files
    const before = await files()
    const unlinked = Date.now()
    // Unlinked by the agent that holds it open (an agent deletes at once a file it does not hold).
    await shOk(`rm '${c.mount}/held'`)
    // A negative check: the file must outlive the grace the elected agent gives orphans (three reports, 15 s).
    await waitFor(async () => {
      if (Date.now() - unlinked < 20_000) return false
      holder.stdin.write('\n')
      return await waitFor(() => lines.length > 1 ? lines[lines.length - 1] : undefined, { timeoutMs: 10_000, what: 'the holder to read' })
    }, { timeoutMs: 60_000, intervalMs: 1_000, what: 'the grace to pass' })
    t.equal(lines[lines.length - 1], want, 'the holder reads the whole file through its handle after the grace')
    t.equal(await files(), before, 'the unlinked file is kept while its holder is alive')
    await c.kill9()
    holder.kill('SIGKILL')
    await waitFor(async () => await files() === before - 1, { timeoutMs: 90_000, intervalMs: 1_000, what: 'the file deleted once its holder is gone' })
    t.pass('deleted once the agent holding it died')
    const i = cluster.agents.indexOf(c)
    await cluster.restart(i)
  })

  t.test('an agent cut off from etcd answers EIO within its deadline, and comes back by itself', async (t) => {
    const cut = await cutOff('127.0.0.4', etcd.endpoints)
    t.teardown(async () => await cut.heal())
    const started = Date.now()
    await waitFor(async () => (await sh(`ls '${c.mount}'`, { timeoutMs: 20_000 })).stderr.includes('Input/output error'),
      { timeoutMs: 30_000, what: 'EIO on the cut-off agent' })
    t.comment(`EIO on the cut-off agent after ${Date.now() - started} ms`)
    const write = await sh(`echo no > '${c.mount}/cut-write'`, { timeoutMs: 30_000 })
    t.not(write.code, 0, 'a write is refused while cut off')
    await workOn(a, 'while-cut')
    await cut.heal()
    await waitFor(async () => (await sh(`ls '${c.mount}/while-cut'`, { timeoutMs: 20_000 })).code === 0,
      { timeoutMs: 60_000, what: 'the cut-off agent back, seeing what was written meanwhile' })
    await workOn(c, 'healed')
    t.equal((await sh(`ls '${a.mount}/cut-write'`)).code !== 0, true, 'the refused write was never stored')
  })
})
