// Moving a cluster between metadata engines with chaac meta dump/load, on
// real agents and three real etcd members: a LevelDB data pool cluster of two
// agents goes to etcd and back, and every file reads back byte for byte on
// both agents at each step. Also: the cluster's settings refuse an agent whose
// flags contradict them, on etcd and when joining a data pool, and bad dumps or
// used targets are refused without a write.
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, PROJECT, py, sh, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { peerUrl, startCluster, waitReachable } from '../helpers/cluster.ts'
import { withEtcd } from '../helpers/etcd.ts'
import { parseDump } from '../../src/meta/dump.ts'

const OPTS = { timeout: 600_000 }
const CLI = `node '${join(PROJECT, 'bin', 'chaac.mjs')}'`
const FLAGS = ['--cloud', 'none', '--replicas', '2']

/** Every file's sha256, every symlink's target, every link count and every directory, in one text. */
async function fingerprint (agent: RunningAgent): Promise<string> {
  return await shOk(`cd '${agent.mount}' && find . -mindepth 1 | sort | while read -r p; do
    if [ -L "$p" ]; then echo "link $p -> $(readlink "$p")"
    elif [ -d "$p" ]; then echo "dir $p"
    else echo "file $p $(stat -c %h "$p") $(sha256sum < "$p" | cut -d' ' -f1)"; fi; done`, { timeoutMs: 120_000 })
}

/** Runs `chaac ARGS`, with stdin and stdout from and to files when given. */
async function chaac (args: string, io: { stdin?: string, stdout?: string, env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number, out: string }> {
  const r = await sh(`${CLI} ${args}${io.stdin === undefined ? '' : ` < '${io.stdin}'`}${io.stdout === undefined ? '' : ` > '${io.stdout}'`}`,
    { timeoutMs: 120_000, env: io.env })
  return { code: r.code, out: r.stdout + r.stderr }
}

async function chaacOk (args: string, io: { stdin?: string, stdout?: string, env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await chaac(args, io)
  if (r.code !== 0) throw new Error(`chaac ${args} failed (${r.code}):\n${r.out}`)
  return r.out
}

t.test('meta dump/load - a LevelDB cluster moved to etcd and back keeps every file', OPTS, async (t) => {
  const etcd = await withEtcd(t, { clientPort: 23_301, peerPort: 23_302 })
  const etcdUrl = (prefix: string): string => `etcd://${etcd.endpoints.join(',')}/${prefix}`
  const tmp = await mkdtemp(join(tmpdir(), 'chaac-migrate-'))
  t.teardown(async () => await rm(tmp, { recursive: true, force: true }))
  const cluster = await startCluster(t, { size: 2, cloud: 'none', args: ['--replicas', '2'] })
  const [a, b] = cluster.agents
  const env = { CHAAC_SECRET: cluster.secret }
  // Agents started here on the cluster's data folders; killed on teardown (the cluster's teardown removes the folders).
  const mine: RunningAgent[] = []
  t.teardown(async () => { for (const agent of mine) await cleanupAgent(agent, false) })
  const again = async (agent: RunningAgent, n: number, role: string[]): Promise<RunningAgent> => {
    const started = await startAgent({ data: agent.data, args: [...role, '--listen', `127.0.0.${n}:0`, '--http', `127.0.0.${n}:0`, ...FLAGS], env })
    mine.push(started)
    return started
  }

  // Files of every kind, written on both agents.
  await writeFile(join(tmp, 'big'), randomBytes(10 * 1024 * 1024))
  await shOk([
    `echo hello > '${a.mount}/small'`,
    `cp '${join(tmp, 'big')}' '${a.mount}/big'`,
    `mkdir -p '${a.mount}/d1/d2/d3' && head -c 100000 /dev/urandom > '${a.mount}/d1/d2/d3/nested'`,
    `ln -s ../big '${a.mount}/d1/link'`,
    `ln '${a.mount}/big' '${a.mount}/d1/hard'`,
    'sync'
  ].join(' && '))
  // Small overwrites after an fsync: slices over the file's balls.
  await py(`
import os
fd = os.open('${b.mount}/sliced', os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, os.urandom(1 << 20))
os.fsync(fd)
for i in range(5):
    os.pwrite(fd, os.urandom(100), i * 4096 + 7)
    os.fsync(fd)
os.close(fd)
`)
  await shOk(`echo from-b > '${b.mount}/d1/d2/from-b' && sync`)
  const before = await fingerprint(a)
  t.equal(await fingerprint(b), before, 'both agents see the same files')
  t.match(before, /file \.\/big 2 /, 'the hard link counts')
  t.match(before, /link \.\/d1\/link -> \.\.\/big/)

  await t.test('settings - a joined agent with a contradicting flag is refused', async (t) => {
    const joined = startAgent({ data: join(tmp, 'refused', 'data'), args: ['--join', cluster.poolUrl, '--listen', '127.0.0.4:0', '--http', '127.0.0.4:0', '--cloud', 'none', '--replicas', '3'], env })
    await t.rejects(joined, { message: /--replicas 3 contradicts the cluster's settings \(replicas 2, set by agent [0-9a-f-]+\): drop the flag or pass 2/ })
  })

  await t.test('meta dump - a running LevelDB pool is dumped through its agent, not through its locked folder', async (t) => {
    const locked = await chaac(`meta dump --data '${a.data}'`)
    t.not(locked.code, 0)
    t.match(locked.out, /in use by a running agent: dump through it with --http/)
    const dumped = join(tmp, 'live.jsonl')
    await chaacOk(`meta dump --http ${a.http}`, { stdout: dumped })
    t.ok(parseDump(await readFile(dumped, 'utf8')).records.some(([k]) => k === 'm!settings'), 'a whole dump, the settings in it')
    const joined = await chaac(`meta dump --http ${b.http}`)
    t.match(joined.out, /joined a data pool .*chaac meta dump --http/, 'a joined agent sends to the pool agent')
  })

  await b.stop()
  await a.stop()
  const fromLevel = join(tmp, 'leveldb.jsonl')
  await chaacOk(`meta dump --data '${a.data}'`, { stdout: fromLevel })
  const kinds = new Set(parseDump(await readFile(fromLevel, 'utf8')).records.map(([k]) => k.slice(0, 2)))
  t.ok(['i!', 'd!', 's!', 'x!', 'y!', 'b!', 'a!', 'm!'].every((k) => kinds.has(k)), `every kind of record is in the dump (${[...kinds].join(' ')})`)

  await t.test('meta load - bad dumps and used targets are refused, and nothing is written', async (t) => {
    const text = await readFile(fromLevel, 'utf8')
    const truncated = join(tmp, 'truncated.jsonl')
    await writeFile(truncated, text.slice(0, text.lastIndexOf('{"end"')))
    const r = await chaac(`meta load --meta ${etcdUrl('bad')}`, { stdin: truncated })
    t.not(r.code, 0)
    t.match(r.out, /the dump is truncated: no end line/)
    const newer = join(tmp, 'newer.jsonl')
    await writeFile(newer, text.replace('"version":1', '"version":9'))
    t.match((await chaac(`meta load --meta ${etcdUrl('bad')}`, { stdin: newer })).out, /version 9, written by a newer chaac/)
    const empty = parseDump(await chaacOk(`meta dump --meta ${etcdUrl('bad')}`))
    t.equal(empty.records.length, 0, 'nothing under the prefix')
    const used = await chaac(`meta load --data '${a.data}'`, { stdin: fromLevel })
    t.not(used.code, 0)
    t.match(used.out, /meta is not empty \(it holds/, 'a data pool in use is no target')
  })

  // To etcd: the same agents, the same data folders and bins.
  await chaacOk(`meta load --meta ${etcdUrl('moved')}`, { stdin: fromLevel })
  const ea = await again(a, 2, ['--meta', etcdUrl('moved')])
  const eb = await again(b, 3, ['--meta', etcdUrl('moved')])
  await waitReachable([ea, eb])
  t.equal(await fingerprint(ea), before, 'on etcd, the first agent reads every file')
  t.equal(await fingerprint(eb), before, 'on etcd, the second agent reads every file')
  await shOk(`echo on-etcd > '${eb.mount}/d1/on-etcd' && sync`)
  const onEtcd = await fingerprint(eb)

  await t.test('settings - an agent on etcd with a contradicting flag is refused', async (t) => {
    const args = ['--listen', '127.0.0.4:0', '--http', '127.0.0.4:0', '--cloud', 'none']
    await t.rejects(startAgent({ data: join(tmp, 'refused', 'data'), args: ['--meta', etcdUrl('moved'), ...args, '--policy', 'random'], env }),
      { message: /--policy random contradicts the cluster's settings \(policy context, set by agent [0-9a-f-]+\): drop the flag or pass context/ })
    t.match(await chaacOk(`format --meta ${etcdUrl('formatted')} --replicas 2 --cloud none`), /formatted .*replicas 2, policy context, chunk size 4MiB, cloud tier none/)
    const refused = await chaac(`format --meta ${etcdUrl('formatted')} --replicas 3 --cloud none`)
    t.not(refused.code, 0)
    t.match(refused.out, /formatted already with other settings: replicas 2 \(asked: 3\)/)
    await t.rejects(startAgent({ data: join(tmp, 'refused', 'data'), args: ['--meta', etcdUrl('formatted'), ...args, '--replicas', '3'], env }),
      { message: /--replicas 3 contradicts the cluster's settings \(replicas 2, set by chaac format\): drop the flag or pass 2/ })
  })

  await t.test('meta dump - etcd is dumped while agents run, through a member or an agent', async (t) => {
    const viaAgent = parseDump(await chaacOk(`meta dump --http ${ea.http}`))
    t.equal(viaAgent.header.engine, 'etcd')
    t.ok(viaAgent.records.some(([k]) => k.startsWith('d!') && k.endsWith('!on-etcd')), 'the new file is in it')
    t.notOk(viaAgent.records.some(([k]) => k.startsWith('o!') || k.startsWith('l!') || k === 'm!last'), 'no bookkeeping, no leased keys')
    const loadedTwice = await chaac(`meta load --meta ${etcdUrl('moved')}`, { stdin: fromLevel })
    t.match(loadedTwice.out, /is not empty \(\d+ keys under \/moved\/\)/)
  })

  // And back to LevelDB: the pool agent's data pool moved aside, the dump of etcd loaded in its place.
  const fromEtcd = join(tmp, 'etcd.jsonl')
  await chaacOk(`meta dump --meta ${etcdUrl('moved')}`, { stdout: fromEtcd })
  await eb.stop()
  await ea.stop()
  await rename(join(a.data, 'meta'), join(a.data, 'meta.before'))
  await chaacOk(`meta load --data '${a.data}'`, { stdin: fromEtcd })
  const la = await again(a, 2, ['--pool'])
  const lb = await again(b, 3, ['--join', peerUrl(la)])
  await waitReachable([la, lb])
  t.equal(await fingerprint(la), onEtcd, 'back on LevelDB, the pool agent reads every file')
  t.equal(await fingerprint(lb), onEtcd, 'back on LevelDB, the joined agent reads every file')
  t.match(onEtcd, /file \.\/d1\/on-etcd 1 /)
})
