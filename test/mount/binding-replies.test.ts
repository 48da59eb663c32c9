// The native binding's answers, driven by a dispatcher of the test's own on a
// real mount: a request answered twice, or with something that is not a
// request, is refused with an error (never a crash, never a second answer
// libfuse would take for another request); an answer after the connection
// was aborted is refused by the kernel and the session still ends cleanly.
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { binding, Op, type Req, type SessionHandle } from '../../src/fuse/lowlevel.ts'
import { sh, shOk } from '../helpers/agent.ts'
import { waitFor } from '../helpers/wait.ts'

const dir = await mkdtemp(join(tmpdir(), 'chaac-binding-'))
const mnt = join(dir, 'mnt')
await shOk(`mkdir ${mnt}`)

const root = Float64Array.of(1, 0o40755, 2, 0, 0, 0, 4096, 8, 0, 0, 0, 4096)
let session: SessionHandle | undefined
let stopped = false
const seconds: unknown[] = []
const bogus: unknown[] = []
let held: Req | undefined
// A file of 200 KiB, its READs answered with replyBufLater (the reply made on libuv's pool).
const DATA = Buffer.from(Array.from({ length: 200 * 1024 }, (_, i) => (i * 7) % 251))
const dataAttrs = Float64Array.of(2, 0o100644, 1, 0, 0, 0, DATA.length, Math.ceil(DATA.length / 512), 0, 0, 0, 4096)
const laterSeconds: unknown[] = []
const laterReplies: Array<Promise<number>> = []

function dispatch (op: number, req: Req | null, ino: number, ...args: any[]): void {
  if (op === Op.STOPPED) {
    stopped = true
    return
  }
  if (req === null) return
  if (op === Op.LOOKUP && args[0] === 'data') {
    binding.replyEntry(req, dataAttrs)
    return
  }
  if (op === Op.GETATTR && ino === 2) {
    binding.replyAttr(req, dataAttrs)
    return
  }
  if (op === Op.OPEN && ino === 2) {
    binding.replyOpen(req, 1, false, true)
    return
  }
  if (op === Op.READ && ino === 2) {
    const [, size, offset] = args as [number, number, number]
    const part = DATA.subarray(offset, offset + size)
    laterReplies.push(binding.replyBufLater(req, part, part.length))
    try {
      laterReplies.push(binding.replyBufLater(req, part, part.length))
      laterSeconds.push('answered twice')
    } catch (err) {
      laterSeconds.push((err as NodeJS.ErrnoException).code)
    }
    return
  }
  if (op === Op.GETATTR && ino === 1) {
    binding.replyAttr(req, root)
    try {
      binding.replyAttr(req, root)
      seconds.push('answered twice')
    } catch (err) {
      seconds.push((err as NodeJS.ErrnoException).code)
    }
    return
  }
  if (op === Op.LOOKUP && args[0] === 'held') {
    // Left unanswered until the test aborts the connection.
    held = req
    return
  }
  if (op === Op.LOOKUP && args[0] === 'bogus') {
    for (const notReq of [null, {}, 7, 'req']) {
      try {
        binding.replyErr(notReq as unknown as Req, 0)
        bogus.push('taken')
      } catch (err) {
        bogus.push((err as Error).message)
      }
    }
  }
  binding.replyErr(req, op === Op.LOOKUP ? 2 : 38)
}

t.teardown(async () => {
  await sh(`umount -l ${mnt}`)
  if (session !== undefined && !stopped) {
    await waitFor(() => stopped, { timeoutMs: 10_000, what: 'the session to stop' }).catch(() => {})
  }
  if (session !== undefined) binding.destroy(session)
  await rm(dir, { recursive: true, force: true })
})

session = binding.mount(mnt, 'fsname=chaac-binding-test,subtype=chaac,allow_other', 'max_write=131072', 1, 1, dispatch, 0)

t.test('binding - a request answered twice: the second answer is refused, the first stands', async (t) => {
  const r = await sh(`stat -c %a ${mnt}`, { timeoutMs: 20_000 })
  t.equal(r.stdout.trim(), '755', 'the first answer reached the caller')
  t.ok(seconds.length > 0)
  t.same([...new Set(seconds)], ['ERR_ANSWERED'])
})

t.test('binding - a READ answered on the pool (replyBufLater) reaches the reader whole; a second answer is refused', async (t) => {
  const r = await sh(`dd if=${mnt}/data bs=64k iflag=direct status=none | sha256sum`, { timeoutMs: 20_000 })
  t.equal(r.code, 0, r.stderr)
  t.equal(r.stdout.split(' ')[0], createHash('sha256').update(DATA).digest('hex'), 'the bytes read are the file')
  t.ok(laterSeconds.length > 0)
  t.same([...new Set(laterSeconds)], ['ERR_ANSWERED'])
  t.same([...new Set(await Promise.all(laterReplies))], [0], 'each reply went through')
})

t.test('binding - an answer with something that is not a request is refused', async (t) => {
  const r = await sh(`stat ${mnt}/bogus`, { timeoutMs: 20_000 })
  t.not(r.code, 0)
  t.match(r.stderr, /No such file/, 'the real request got its own answer')
  t.same(bogus, Array(4).fill('not a request'))
})

t.test('binding - an answer after the connection was aborted is refused by the kernel; the session ends cleanly', async (t) => {
  const blocked = sh(`stat ${mnt}/held`, { timeoutMs: 30_000 })
  await waitFor(() => held !== undefined, { timeoutMs: 20_000, what: 'the held lookup' })
  // Abort the connection (as for a dead agent): the blocked caller is released.
  const minor = (await shOk(`stat -c %d ${mnt}`)).trim()
  await shOk(`mountpoint -q /sys/fs/fuse/connections || mount -t fusectl none /sys/fs/fuse/connections; echo 1 > /sys/fs/fuse/connections/$(( ${minor} & 0xff | (${minor} >> 12) & 0xfff00 ))/abort`)
  const r = await blocked
  t.not(r.code, 0, 'the caller got an error')
  t.not(binding.replyErr(held as Req, 0), 0, 'the late answer: an error code, not a crash')
  t.throws(() => binding.replyErr(held as Req, 0), { code: 'ERR_ANSWERED' })
  await waitFor(() => stopped, { timeoutMs: 10_000, what: 'the session to see the end of the connection' })
})
