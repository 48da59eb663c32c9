// The hash workers: the same header and id as encodeBall at every size and
// wherever the bytes live, many encodes in flight at once, a worker that
// dies, and workers that never keep the process alive when idle.
import { execFile } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { resolve } from 'node:path'
import t from 'tap'
import { isChaacError } from '../../src/errors.ts'
import { BLOCK_SIZE, encodeBall } from '../../src/store/ball-codec.ts'
import { Hasher, INLINE_BELOW } from '../../src/store/hasher.ts'

const KiB = 1024
const MiB = 1024 * KiB
const ROOT = resolve(import.meta.dirname, '..', '..')

function sharedCopy (data: Buffer, at = 0): Buffer {
  const buf = Buffer.from(new SharedArrayBuffer(at + data.length)).subarray(at)
  data.copy(buf)
  return buf
}

t.test('Hasher - the header and id of encodeBall, at every size, inline or on a worker', async (t) => {
  const hasher = new Hasher()
  t.teardown(async () => await hasher.close())
  const sizes = [
    0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 17,
    INLINE_BELOW - 1, INLINE_BELOW, INLINE_BELOW + 1, 1_000_003, 4 * MiB - 1, 4 * MiB
  ]
  for (const size of sizes) {
    const data = randomBytes(size)
    const want = encodeBall(data)
    for (const [where, bytes] of [['a plain buffer', data], ['shared memory', sharedCopy(data)], ['shared memory at an offset', sharedCopy(data, 4097)]] as const) {
      const got = await hasher.encode(bytes)
      t.equal(got.id, want.id, `${size} bytes in ${where}: id`)
      t.ok(got.header.equals(want.header), `${size} bytes in ${where}: header`)
    }
  }
})

t.test('Hasher - 20 encodes in flight on two workers each get their own answer', async (t) => {
  const hasher = new Hasher({ workers: 2 })
  t.teardown(async () => await hasher.close())
  const balls = Array.from({ length: 20 }, (_, i) => sharedCopy(randomBytes(INLINE_BELOW + i * 200 * KiB + i)))
  const got = await Promise.all(balls.map(async (b) => await hasher.encode(b)))
  t.same(got.map((g) => g.id), balls.map((b) => encodeBall(b).id))
})

t.test('Hasher - a worker that dies fails the encodes waiting on it; another takes its place', async (t) => {
  const hasher = new Hasher({ workers: 1, script: new URL('../helpers/crashing-hash-worker.mjs', import.meta.url) })
  t.teardown(async () => await hasher.close())
  const fatal = Buffer.alloc(INLINE_BELOW, 0xff)
  const behind = randomBytes(INLINE_BELOW)
  const [a, b] = await Promise.allSettled([hasher.encode(fatal), hasher.encode(behind)])
  for (const r of [a, b]) {
    t.equal(r.status, 'rejected')
    const err = (r as PromiseRejectedResult).reason
    t.ok(isChaacError(err, 'CHAAC_IO'), 'a ChaacError with an errno (EIO)')
    t.match(err.message, /could not hash a new ball: a hash worker exited with code 70/)
  }
  t.equal((await hasher.encode(behind)).id, encodeBall(behind).id, 'the next encode runs on a new worker')
})

t.test('Hasher - after close, encodes hash inline', async (t) => {
  const hasher = new Hasher()
  const data = randomBytes(INLINE_BELOW)
  t.equal((await hasher.encode(data)).id, encodeBall(data).id)
  await hasher.close()
  t.equal((await hasher.encode(data)).id, encodeBall(data).id)
})

// As bin/chaac.mjs runs the agent: plain node, TypeScript through the tsx API
// in the main thread only. The answer arrives though nothing else keeps the
// process alive, and the idle worker does not keep it from exiting.
t.test('Hasher - loads under plain node with the tsx API; an idle worker lets the process exit', async (t) => {
  const script = `
    import { register } from 'tsx/esm/api'
    register()
    const { Hasher } = await import('./src/store/hasher.ts')
    const { id } = await new Hasher().encode(Buffer.alloc(4 * 1024 * 1024, 7))
    console.log(id)
  `
  const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { cwd: ROOT, timeout: 30_000, env: { ...process.env, NODE_OPTIONS: '' } },
      (err, stdout) => { if (err) reject(err); else resolve({ stdout }) })
  })
  t.equal(stdout.trim(), encodeBall(Buffer.alloc(4 * MiB, 7)).id)
})
