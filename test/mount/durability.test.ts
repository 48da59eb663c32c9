// Crash safety: `kill -9` of the agent, then a restart on the same data
// folder. Every file closed or fsync'ed before the kill is there with the
// same bytes; a file being rewritten when the agent died is its old version
// or its new one, never a mix; the stale mount is cleaned up on start, and
// balls written for content never committed are collected.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, py, sh, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { waitFor, withDeadline } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const OPTS = { timeout: 240_000 }

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function shaOf (path: string): Promise<string> {
  return (await shOk(`set -o pipefail; dd if='${path}' iflag=direct bs=1M status=none | sha256sum`)).split(' ')[0]
}

async function mountEntries (dir: string): Promise<number> {
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  return info.split('\n').filter((line) => line.split(' ')[4] === dir).length
}

interface Writer { child: ChildProcess, out: () => string, exited: Promise<number | null> }

/** A long-lived python process working on the mount; it says how far it got on stdout. */
function startWriter (code: string): Writer {
  const child = spawn('python3', ['-c', code], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d) => { out += String(d) })
  child.stderr.on('data', (d) => { out += String(d) })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, out: () => out, exited }
}

async function stopWriter (w: Writer): Promise<void> {
  if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL')
  await withDeadline(w.exited, 10_000, 'a writer to exit')
}

/** Every referenced ball: each file's non-hole balls, by GET /api/v1/location. */
async function referencedBalls (agent: RunningAgent, paths: string[]): Promise<Set<string>> {
  const ids = new Set<string>()
  for (const p of paths) {
    const loc = await agent.json(`/api/v1/location?path=${encodeURIComponent(p)}`)
    for (const b of loc.balls) if (b.id !== null) ids.add(b.id)
  }
  return ids
}

async function allBalls (agent: RunningAgent): Promise<any[]> {
  const out: any[] = []
  let after = ''
  for (;;) {
    const page = await agent.json(`/api/v1/balls?limit=1000${after ? `&after=${after}` : ''}`)
    out.push(...page.balls)
    if (page.next === null) return out
    after = page.next
  }
}

t.test('kill -9 - closed and fsync\'ed files survive, half-written files are old or new, the stale mount is cleaned up', OPTS, async (t) => {
  const src = await mkdtemp(join(tmpdir(), 'chaac-durability-'))
  t.teardown(async () => await rm(src, { recursive: true, force: true }))
  const content: Record<string, Buffer> = {
    a: Buffer.from('hello, durable world\n'),
    b: randomBytes(9 * MiB),
    'd/c': randomBytes(5 * MiB + 123),
    renamed: randomBytes(2 * MiB),
    empty: Buffer.alloc(0),
    trunc: randomBytes(8 * MiB),
    inplace: randomBytes(8 * MiB),
    synced: randomBytes(6 * MiB + 7)
  }
  const fresh = { trunc: randomBytes(8 * MiB), inplace: randomBytes(8 * MiB), synced: randomBytes(3 * MiB) }
  for (const [name, data] of Object.entries({ ...content, 'new-trunc': fresh.trunc, 'new-inplace': fresh.inplace, more: fresh.synced })) {
    await writeFile(join(src, name.replace('/', '-')), data)
  }

  let agent: RunningAgent | undefined = await startAgent()
  const first = agent
  t.teardown(async () => await cleanupAgent(agent))
  const mnt = first.mount
  const writers: Writer[] = []
  t.teardown(async () => { for (const w of writers) await stopWriter(w) })

  // Closed files, and the namespace around them.
  await shOk(`cp ${src}/a a && cp ${src}/b b && mkdir d && cp ${src}/d-c d/c && cp ${src}/renamed tmp && mv tmp renamed &&
    : > empty && cp ${src}/trunc trunc && cp ${src}/inplace inplace && ln -s d/c link && ln b hard && chmod 600 a &&
    echo gone > deleted && rm deleted && mkdir -p e/f && rmdir e/f`, { cwd: mnt })

  // Open at the kill: fsync'ed and then appended to; and two files being overwritten slowly.
  const synced = startWriter(`
import os, sys, time
f = open(${JSON.stringify(join(mnt, 'synced'))}, 'wb')
f.write(open(${JSON.stringify(join(src, 'synced'))}, 'rb').read())
f.flush()
os.fsync(f.fileno())
f.write(open(${JSON.stringify(join(src, 'more'))}, 'rb').read())
f.flush()
print('synced', flush=True)
time.sleep(600)
`)
  writers.push(synced)
  for (const [name, mode] of [['trunc', 'wb'], ['inplace', 'r+b']]) {
    // 5 MiB of the new 8: the first chunk is full (sealed into a ball), the second is half written.
    writers.push(startWriter(`
import time
f = open(${JSON.stringify(join(mnt, name))}, '${mode}')
new = open(${JSON.stringify(join(src, `new-${name}`))}, 'rb').read()
for i in range(0, 5 * ${MiB}, 256 * 1024):
    f.write(new[i:i + 256 * 1024])
    f.flush()
print('written', flush=True)
time.sleep(600)
`))
  }
  for (const w of writers) await waitFor(() => /synced|written/.test(w.out()) || w.child.exitCode !== null, { what: 'a writer to get going' })
  for (const w of writers) t.equal(w.child.exitCode, null, `writer still running: ${w.out()}`)
  // The same host sees the writes at once; a reader's close must not commit them for the writer.
  t.equal(await shaOf(join(mnt, 'synced')), sha(Buffer.concat([content.synced, fresh.synced])), 'before the kill: the appended content reads')
  t.equal(await shaOf(join(mnt, 'inplace')), sha(Buffer.concat([fresh.inplace.subarray(0, 5 * MiB), content.inplace.subarray(5 * MiB)])),
    'before the kill: a reader sees the overwrite in progress')

  await first.kill9()
  t.equal(await mountEntries(mnt), 1, 'the mount is left behind')
  const probe = await sh(`stat ${mnt}`)
  t.not(probe.code, 0)
  t.match(probe.stderr, /Transport endpoint is not connected/, 'and it is stale')
  for (const w of writers) await stopWriter(w)

  agent = await startAgent({ data: first.data })
  const second = agent
  t.equal(await mountEntries(mnt), 1, 'the stale mount was replaced by exactly one live mount')
  for (const [name, data] of Object.entries(content)) {
    if (name === 'trunc' || name === 'inplace' || name === 'synced') continue
    t.equal(await shaOf(join(mnt, name)), sha(data), `${name}: same content after the crash`)
  }
  t.equal(await shaOf(join(mnt, 'synced')), sha(content.synced), 'synced: exactly the fsync\'ed version (the append was never committed)')
  for (const name of ['trunc', 'inplace'] as const) {
    const got = await shaOf(join(mnt, name))
    t.ok(got === sha(content[name]) || got === sha(fresh[name]), `${name}: the old or the new version, not a mix`)
    t.equal(got, sha(content[name]), `${name}: in fact the old one (the new one was never committed)`)
  }
  const meta = JSON.parse(await py(`
import json, os, stat
M = ${JSON.stringify(mnt)}
p = lambda n: os.path.join(M, n)
print(json.dumps({
  'names': sorted(os.listdir(M)), 'sub': sorted(os.listdir(p('d'))), 'e': sorted(os.listdir(p('e'))),
  'link': os.readlink(p('link')), 'hardIno': os.stat(p('hard')).st_ino == os.stat(p('b')).st_ino,
  'nlink': os.stat(p('b')).st_nlink, 'modeA': stat.S_IMODE(os.stat(p('a')).st_mode), 'emptySize': os.stat(p('empty')).st_size
}))
`))
  t.same(meta.names, ['a', 'b', 'd', 'e', 'empty', 'hard', 'inplace', 'link', 'renamed', 'synced', 'trunc'])
  t.same(meta.sub, ['c'])
  t.same(meta.e, [])
  t.equal(meta.link, 'd/c')
  t.ok(meta.hardIno)
  t.equal(meta.nlink, 2)
  t.equal(meta.modeA, 0o600)
  t.equal(meta.emptySize, 0)

  // Balls written for content never committed were collected at start.
  const files = ['a', 'b', 'd/c', 'renamed', 'trunc', 'inplace', 'synced']
  const referenced = await referencedBalls(second, files)
  const balls = await allBalls(second)
  const live = balls.filter((b) => b.refs >= 1)
  t.same(live.map((b) => b.id).sort(), [...referenced].sort(), 'the map of balls holds every referenced ball')
  for (const b of balls.filter((b) => b.refs < 1)) {
    t.ok(b.cloud && b.bins.length === 0 && b.garbageSince !== null, `unreferenced ball ${b.id.slice(0, 8)} keeps only its cloud copy, for the grace period`)
  }
  const disk = (await second.json('/api/v1/bins')).bins.find((b: any) => b.level === 'disk')
  t.equal(disk.balls, referenced.size, 'the disk bin holds one copy of each, and no orphan')

  // A second crash right after new writes: the async upload queue survives it and drains.
  await shOk(`cp ${src}/new-trunc after && cp ${src}/new-inplace trunc`, { cwd: mnt })
  await second.kill9()
  agent = await startAgent({ data: first.data })
  const third = agent
  t.equal(await shaOf(join(mnt, 'after')), sha(fresh.trunc), 'written after the first restart: there')
  t.equal(await shaOf(join(mnt, 'trunc')), sha(fresh.inplace), 'overwritten and closed: the new version')
  await waitFor(async () => (await third.json('/status')).cloud.uploadQueue === 0, { what: 'the upload queue to drain', timeoutMs: 60_000 })
  for (const b of await allBalls(third)) t.ok(b.cloud, `ball ${b.id.slice(0, 8)} reached the cloud tier`)
  t.equal(await third.stop(), 0, 'a clean stop')
  t.equal(await mountEntries(mnt), 0, 'and no mount left')
})
