// One namespace shared by three agents (127.0.0.2-4, real mounts, real
// LevelDB): a file closed on one is read byte for byte on the others, and an
// open after it changed reads the new version even where a handle opened
// before still holds it; directory operations on one are seen on the others;
// two agents writing one file at once leave one version or the other, the
// same on every agent.
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { RunningAgent } from '../helpers/agent.ts'
import { py, sh, shOk } from '../helpers/agent.ts'
import { startCluster } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const OPTS = { timeout: 240_000 }

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

async function shaOn (agent: RunningAgent, path: string): Promise<string> {
  return (await shOk(`sha256sum '${join(agent.mount, path)}'`, { timeoutMs: 60_000 })).split(' ')[0]
}

async function ls (agent: RunningAgent, dir: string): Promise<string> {
  return (await shOk(`ls -1 '${join(agent.mount, dir)}'`)).trim().split('\n').filter((x) => x !== '').join(' ')
}

t.test('cluster - one namespace over three agents', OPTS, async (t) => {
  const cluster = await startCluster(t)
  const [a, b, c] = cluster.agents
  const src = await mkdtemp(join(tmpdir(), 'chaac-cluster-src-'))
  t.teardown(async () => await rm(src, { recursive: true, force: true }))

  await t.test('a file written and closed on one agent is read byte for byte on the others', async (t) => {
    const files: Array<[RunningAgent, string, Buffer]> = [
      [a, 'from-pool.txt', Buffer.from('hello from the pool agent\n')],
      [b, 'from-b.bin', randomBytes(9 * MiB + 77)],
      [c, 'from-c.bin', randomBytes(3 * MiB)]
    ]
    for (const [writer, name, data] of files) {
      await writeFile(join(src, name), data)
      await shOk(`cp '${join(src, name)}' '${join(writer.mount, name)}'`)
      for (const reader of cluster.agents) {
        t.equal(await shaOn(reader, name), sha(data), `${name}, written on ${writer.http}, read on ${reader.http}`)
      }
    }
    // Rewritten on another agent: close-to-open, the new version everywhere at once.
    const v2 = randomBytes(5 * MiB + 3)
    await writeFile(join(src, 'v2'), v2)
    await shOk(`cp '${join(src, 'v2')}' '${join(c.mount, 'from-b.bin')}'`)
    for (const reader of cluster.agents) t.equal(await shaOn(reader, 'from-b.bin'), sha(v2), `the new version on ${reader.http}`)
    await shOk(`echo appended >> '${join(a.mount, 'from-pool.txt')}'`)
    t.equal(await shOk(`cat '${join(b.mount, 'from-pool.txt')}'`), 'hello from the pool agent\nappended\n', 'an append, read right after on another agent')
  })

  await t.test('a file rewritten on another agent while a handle holds it open here: a new open reads the new version, the old handle one version whole', async (t) => {
    const v1 = randomBytes(9 * MiB + 5)
    const v2 = randomBytes(6 * MiB + 11)
    await writeFile(join(src, 'held-v1'), v1)
    await writeFile(join(src, 'held-v2'), v2)
    // Written and read on b first: b's reads of it may be served by its read threads from its own bins.
    await shOk(`cp '${join(src, 'held-v1')}' '${join(b.mount, 'held.bin')}'`)
    t.equal(await shaOn(b, 'held.bin'), sha(v1))
    const out = await py(`
import hashlib, os, shutil
def digest(fd):
    h = hashlib.sha256()
    off = 0
    while True:
        chunk = os.pread(fd, 1 << 20, off)
        if not chunk:
            return h.hexdigest()
        h.update(chunk)
        off += len(chunk)
held = os.open(${JSON.stringify(join(b.mount, 'held.bin'))}, os.O_RDONLY)
first = digest(held)
shutil.copyfile(${JSON.stringify(join(src, 'held-v2'))}, ${JSON.stringify(join(c.mount, 'held.bin'))})
fresh = os.open(${JSON.stringify(join(b.mount, 'held.bin'))}, os.O_RDONLY)
print(first, digest(fresh), digest(held))
`, { timeoutMs: 60_000 })
    const [first, fresh, held] = out.trim().split(' ')
    t.equal(first, sha(v1), 'the handle read the first version')
    t.equal(fresh, sha(v2), 'an open after the writer on c closed reads the new version (close-to-open)')
    t.ok(held === sha(v1) || held === sha(v2), 'the handle kept open reads one version whole, never a mix')
  })

  await t.test('mkdir, rename and unlink on one agent are seen on the others', async (t) => {
    await shOk(`mkdir -p '${join(b.mount, 'proj/src')}' && echo one > '${join(b.mount, 'proj/src/one')}'`)
    for (const agent of [a, c]) t.equal(await ls(agent, 'proj/src'), 'one', `mkdir and create seen on ${agent.http}`)
    await shOk(`mv '${join(c.mount, 'proj/src')}' '${join(c.mount, 'proj/lib')}' && mv '${join(c.mount, 'proj/lib/one')}' '${join(c.mount, 'proj/lib/two')}'`)
    for (const agent of [a, b]) {
      await waitFor(async () => await ls(agent, 'proj') === 'lib' && await ls(agent, 'proj/lib') === 'two',
        { timeoutMs: 10_000, what: `the renames to show on ${agent.http}` })
      t.equal(await shOk(`cat '${join(agent.mount, 'proj/lib/two')}'`), 'one\n')
    }
    await shOk(`rm '${join(a.mount, 'proj/lib/two')}' && rmdir '${join(a.mount, 'proj/lib')}'`)
    for (const agent of [b, c]) {
      await waitFor(async () => await ls(agent, 'proj') === '', { timeoutMs: 10_000, what: `the removal to show on ${agent.http}` })
      const gone = await sh(`cat '${join(agent.mount, 'proj/lib/two')}'`)
      t.match(gone.stderr, /No such file or directory/, `unlinked on ${agent.http} too`)
    }
    const taken = await sh(`mkdir '${join(c.mount, 'proj')}'`)
    t.match(taken.stderr, /File exists/, 'a name taken on another agent is taken here')
  })

  await t.test('a listing the kernel cached shows a change made on another agent: at the next open, and through a handle kept open', async (t) => {
    await shOk(`mkdir '${join(a.mount, 'cached')}' && touch '${join(a.mount, 'cached/x')}'`)
    t.equal(await ls(b, 'cached'), 'x')
    const listings = (await b.json('/status')).mount.requests.listings
    t.equal(await ls(b, 'cached'), 'x')
    t.equal((await b.json('/status')).mount.requests.listings, listings, 'the second listing came from the kernel\'s cache')
    // os.listdir(fd) rewinds the handle: the kernel lists from its cache unless the change dropped it.
    const out = await py(`
import os, time
fd = os.open(${JSON.stringify(join(b.mount, 'cached'))}, os.O_RDONLY | os.O_DIRECTORY)
first = sorted(os.listdir(fd))
open(${JSON.stringify(join(c.mount, 'cached/y'))}, 'w').close()
deadline = time.time() + 10
while 'y' not in os.listdir(fd) and time.time() < deadline: time.sleep(0.05)
print(first, sorted(os.listdir(fd)))
`)
    t.equal(out.trim(), "['x'] ['x', 'y']", 'the handle kept open lists the new entry')
    t.equal(await ls(b, 'cached'), 'x y', 'a new open lists it')
    await shOk(`rm '${join(c.mount, 'cached/x')}'`)
    await waitFor(async () => await ls(b, 'cached') === 'y', { timeoutMs: 10_000, what: 'the removal to show on b' })
  })

  await t.test('two agents writing one file at once: the last close wins, never a mix', async (t) => {
    const x = randomBytes(6 * MiB + 11)
    const y = randomBytes(6 * MiB + 11)
    await writeFile(join(src, 'x'), x)
    await writeFile(join(src, 'y'), y)
    const versions = new Set([sha(x), sha(y)])
    for (let round = 0; round < 4; round++) {
      // A redirection, not cp: cp creates a name it did not see with O_EXCL, and the other agent's create may come first.
      await Promise.all([
        shOk(`cat '${join(src, 'x')}' > '${join(a.mount, 'race.bin')}'`),
        shOk(`cat '${join(src, 'y')}' > '${join(b.mount, 'race.bin')}'`)
      ])
      const seen = await Promise.all(cluster.agents.map(async (agent) => await shaOn(agent, 'race.bin')))
      t.ok(versions.has(seen[0]), `round ${round}: one of the two versions`)
      t.same(seen, [seen[0], seen[0], seen[0]], `round ${round}: the same version on every agent`)
    }
  })
})
