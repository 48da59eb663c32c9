// The binding's native read path (native/chaac-fuse/native-reads.c): reads
// of files held in local bins, served by C threads from the ball files. They
// must return exactly what the JS path would: the source's bytes, EIO (never
// wrong bytes) for a corrupt block, new bytes once a write was answered. Reads
// use O_DIRECT, so that each reaches the agent rather than the page cache.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, py, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024

// Python helpers: O_DIRECT reads into an aligned buffer, at any offset and length.
const PRELUDE = `
import hashlib, mmap, os, random, struct, subprocess, sys
BUF = mmap.mmap(-1, 16 << 20)
def dread(fd, off, n):
    k = os.preadv(fd, [memoryview(BUF)[:n]], off)
    return bytes(BUF[:k])
def dopen(p):
    return os.open(p, os.O_RDONLY | os.O_DIRECT)
`

let agent: RunningAgent

t.before(async () => {
  // 1 MiB chunks: many ball boundaries; no cloud tier: a corrupt block has no good copy to fall back on.
  agent = await startAgent({ args: ['--chunk-size', '1MiB', '--cloud', 'none'] })
})
t.teardown(async () => await cleanupAgent(agent))

async function nativeReads (): Promise<{ reads: number, balls: number, handedBack: number }> {
  return (await agent.json('/status')).mount.nativeReads
}

t.test('native reads - random offsets and lengths across blocks and balls return the source bytes', async (t) => {
  const before = await nativeReads()
  const out = await py(`${PRELUDE}
random.seed(7)
src = os.urandom(6 * 1024 * 1024 + 4321)
p = '${agent.mount}/random.bin'
with open(p, 'wb') as f:
    f.write(src)
fd = dopen(p)
for i in range(600):
    # Edges of blocks (64 KiB) and balls (1 MiB), and anywhere.
    edge = random.randrange(0, 7) * (1 << 20) + random.choice([0, 65536, 131072]) + random.randrange(-3, 3)
    off = max(0, random.choice([edge, random.randrange(0, len(src) + 10)]))
    n = random.choice([1, 17, 4096, 65536, 65537, 300000, 1 << 20, random.randrange(1, 2 << 20)])
    got = dread(fd, off, n)
    assert got == src[off:off + n], ('mismatch', off, n, len(got))
os.close(fd)
print('ok')
`)
  t.equal(out.trim(), 'ok')
  const after = await nativeReads()
  t.ok(after.reads - before.reads >= 600, `reads served natively: ${after.reads - before.reads}`)
  t.equal(after.handedBack, before.handedBack, 'none handed back to JS')
  // The read threads report the balls they read a moment later.
  const hits = await waitFor(async () => {
    const n = (await agent.json('/status')).reads.localHit
    return n >= after.balls ? n : undefined
  }, { timeoutMs: 10_000, intervalMs: 20, what: 'the native ball reads counted' })
  t.ok(hits >= after.balls, 'native ball reads count as local cache hits')
  const metrics = await (await fetch(`${agent.url}/metrics`)).text()
  const m = /^chaac_native_reads_total\{[^}]*\} (\d+)$/m.exec(metrics)
  t.ok(m !== null && Number(m[1]) >= after.reads, 'chaac_native_reads_total in /metrics')
})

t.test('native reads - a corrupt block in a ball file gives EIO or the right bytes, never wrong ones', async (t) => {
  const p = `${agent.mount}/corrupt.bin`
  await py(`${PRELUDE}
random.seed(3)
with open('${p}', 'wb') as f:
    f.write(random.randbytes(3 * 1024 * 1024))
fd = dopen('${p}')
assert dread(fd, 0, 3 << 20) == random.Random(3).randbytes(3 << 20)
os.close(fd)
`)
  // The blocks were verified once (the read above); a byte flipped in the
  // ball file afterwards must still be caught.
  const loc = await agent.json(`/api/v1/location?path=/corrupt.bin`)
  const id = loc.balls[1].id as string
  const binDir = join(agent.data, 'bins', 'disk0')
  const file = join(binDir, id.slice(0, 2), id)
  const size = (await stat(file)).size
  // Within the data, in block 3 of the ball (the header is 12 + 32 * 16 bytes).
  const flipAt = size - MiB + 3 * 65536 + 100
  const before = await nativeReads()
  const out = await py(`${PRELUDE}
import errno
with open('${file}', 'r+b') as f:
    f.seek(${flipAt})
    b = f.read(1)
    f.seek(${flipAt})
    f.write(bytes([b[0] ^ 0x5a]))
src = random.Random(3).randbytes(3 << 20)
fd = dopen('${p}')
# A read of the whole ball: the binding reads its blocks with O_DIRECT (large spans), smaller reads through the page cache.
try:
    whole = 'right' if dread(fd, 1 << 20, 1 << 20) == src[1 << 20:2 << 20] else 'wrong'
except OSError as e:
    whole = errno.errorcode[e.errno]
eio = good = 0
for off in range(0, 3 << 20, 16384):
    try:
        got = dread(fd, off, 16384)
    except OSError as e:
        assert e.errno == errno.EIO, e
        eio += 1
        continue
    assert got == src[off:off + 16384], ('wrong bytes', off)
    good += 1
print(whole, eio, good)
`)
  const [whole, eio, good] = out.trim().split(' ')
  t.equal(whole, 'EIO', 'a read of the whole corrupt ball fails')
  t.ok(Number(eio) >= 1, `EIO for the corrupt block (${eio} reads)`)
  t.ok(Number(good) >= 128, `the other balls read right (${good} reads)`)
  const after = await nativeReads()
  t.ok(after.handedBack > before.handedBack, 'the failed check went to the JS path')
})

// Every 4 KiB page says which offset and version it holds and is derived from
// both, so a reader can tell a page mixed from two versions.
const PAGES = `
PAGE = 4096
def page(off, ver):
    head = struct.pack('<QQ', off, ver)
    body = hashlib.sha256(head).digest() * (PAGE // 32)
    return head + body[16:]
def check(data, off):
    for i in range(0, len(data), PAGE):
        o, v = struct.unpack('<QQ', data[i:i + 16])
        assert o == off + i and data[i:i + PAGE] == page(o, v), ('torn or misplaced page', off + i, o, v)
`

t.test('native reads - four readers and a writer of one file: reads after a write see it, the file ends as the model', async (t) => {
  const pages = 2048 // 8 MiB
  const p = `${agent.mount}/shared.bin`
  await py(`${PRELUDE}${PAGES}
with open('${p}', 'wb') as f:
    for i in range(${pages}):
        f.write(page(i * PAGE, 0))
`)
  const before = await nativeReads()
  const reader = (seed: number): string => `${PRELUDE}${PAGES}
random.seed(${seed})
fd = dopen('${p}')
for i in range(1500):
    if i % 20 == 19:
        # A new open gets a fresh plan when the file is stored and simple again.
        os.close(fd)
        fd = dopen('${p}')
    off = random.randrange(0, ${pages}) * PAGE
    n = random.randrange(1, 65) * PAGE
    check(dread(fd, off, n), off)
os.close(fd)
print('ok')
`
  // Each write covers at least a quarter of one chunk, so its chunk is sealed
  // as a whole ball (small writes become slices, which keep a file on the JS
  // path); after each fsync the file is simple again and a new open gets a plan.
  const writer = `${PRELUDE}${PAGES}
random.seed(99)
model = [0] * ${pages}
def want(first, count):
    return b''.join(page((first + i) * PAGE, model[first + i]) for i in range(count))
w = os.open('${p}', os.O_WRONLY)
r = dopen('${p}')
fresh = None
for ver in range(1, 201):
    start = random.randrange(0, 256 - 64 + 1)
    first = random.randrange(0, ${pages} // 256) * 256 + start
    count = random.randrange(64, 256 - start + 1)
    os.pwrite(w, b''.join(page((first + i) * PAGE, ver) for i in range(count)), first * PAGE)
    for i in range(count):
        model[first + i] = ver
    # Once the write returned, handles opened before it read the new bytes.
    assert dread(r, first * PAGE, count * PAGE) == want(first, count), ('old bytes after a write', ver)
    if fresh is not None:
        assert dread(fresh, first * PAGE, count * PAGE) == want(first, count), ('old bytes after a write, planned handle', ver)
    if ver % 5 == 0:
        os.fsync(w)
        if fresh is not None:
            os.close(fresh)
        fresh = dopen('${p}')
        assert dread(fresh, 0, ${pages} * PAGE) == want(0, ${pages}), ('differs from the model after fsync', ver)
os.close(w)
os.close(r)
os.close(fresh)
fd = dopen('${p}')
assert dread(fd, 0, ${pages} * PAGE) == want(0, ${pages}), 'the file differs from the model'
os.close(fd)
print('ok')
`
  const outs = await Promise.all([py(writer), ...[1, 2, 3, 4].map(async (seed) => await py(reader(seed)))])
  t.same(outs.map((o) => o.trim()), ['ok', 'ok', 'ok', 'ok', 'ok'])
  const after = await nativeReads()
  // The writer alone reads the whole file through a fresh handle 40 times, 8 requests of 1 MiB each.
  t.ok(after.reads - before.reads >= 320, `reads served natively meanwhile: ${after.reads - before.reads}`)
})

t.test('native reads - a handle opened before another process overwrote the file reads what a local disk gives', async (t) => {
  const p = `${agent.mount}/overwritten.bin`
  const out = await py(`${PRELUDE}
old = random.Random(1).randbytes(3 << 20)
new = random.Random(2).randbytes(2 << 20) + b'x'
with open('${p}', 'wb') as f:
    f.write(old)
fd = dopen('${p}')
assert dread(fd, 0, 3 << 20) == old
# Truncated and rewritten in place by another process: the same file, new bytes.
subprocess.run([sys.executable, '-c', '''
import random
with open(${JSON.stringify(p)}, "wb") as f:
    f.write(random.Random(2).randbytes(2 << 20) + b"x")
'''], check=True)
assert dread(fd, 0, 3 << 20) == new, 'old bytes after an overwrite in place'
assert dread(fd, (2 << 20) - 5, 100) == new[(2 << 20) - 5:]
os.close(fd)
# Replaced by a rename: a handle opened before keeps the file it opened.
fd = dopen('${p}')
assert dread(fd, 0, 3 << 20) == new
subprocess.run([sys.executable, '-c', '''
import os
with open(${JSON.stringify(p + '.tmp')}, "wb") as f:
    f.write(b"y" * 5000)
os.rename(${JSON.stringify(p + '.tmp')}, ${JSON.stringify(p)})
'''], check=True)
assert dread(fd, 0, 3 << 20) == new, 'the replaced file changed under an open handle'
os.close(fd)
with open('${p}', 'rb') as f:
    assert f.read() == b'y' * 5000
print('ok')
`)
  t.equal(out.trim(), 'ok')
})

t.test('native reads - an agent stopped while readers are at work exits cleanly', async (t) => {
  const own = await startAgent({ args: ['--cloud', 'none'] })
  t.teardown(async () => await cleanupAgent(own))
  const p = `${own.mount}/busy.bin`
  await py(`with open('${p}', 'wb') as f: f.write(bytes(range(256)) * 32768)`)
  // Each reader leaves a mark outside the mount once it has the file open: the agent stops only then.
  const marks = await mkdtemp(join(tmpdir(), 'chaac-readers-'))
  t.teardown(async () => await rm(marks, { recursive: true, force: true }))
  // Four readers that read until the mount goes away (or 30 s pass).
  const reader = `${PRELUDE}
import time
src = bytes(range(256)) * 32768
fd = dopen('${p}')
open(os.path.join('${marks}', str(os.getpid())), 'w').close()
end = time.time() + 30
n = 0
try:
    while time.time() < end:
        off = random.randrange(0, len(src) - 4096)
        assert dread(fd, off, 4096) == src[off:off + 4096], 'wrong bytes'
        n += 1
except OSError as e:
    print('stopped', e.errno, n)
else:
    print('done', n)
`
  const readers = [1, 2, 3, 4].map(async () => await py(reader))
  await waitFor(async () => (await readdir(marks)).length === 4 && (await own.json('/status')).mount.nativeReads.reads > 1000, { timeoutMs: 20_000, what: 'four readers at work' })
  const code = await own.stop()
  const outs = await Promise.all(readers)
  t.comment(outs.map((o) => o.trim()).join('; '))
  t.equal(code, 0, 'the agent exited cleanly')
  t.notMatch(own.log(), /Segmentation|Assertion|core dumped|FATAL/, 'no crash in the log')
})
