// Mixed writers of one file: mmap, O_DIRECT, AIO (libaio, POSIX) and splice
// writers of the same two files at once, as fio runs them. Before aa727a5 a
// commit that raced a write waiting for its chunk marked that write committed,
// the next fsync dropped the write's new ball, and the file lost it (EIO on
// read, SIGBUS in an mmap writer). Then each path alone, small: mmap + msync,
// an O_DIRECT write beside another handle's cached pages, splice, and a write
// seen through a handle opened (with its cache kept) before it.
// One agent for the whole file (restarted on the same data folder where a test
// says so); file I/O on the mount only from child processes.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, py, sh, shOk, startAgent, unmountLazily, type RunningAgent } from '../helpers/agent.ts'

const KiB = 1024
const TRIES = 4
// fio splits --size=1m of each job over its two files.
const FILE_SIZE = 512 * KiB
const OPTS = { timeout: 300_000 }

let agent = await startAgent()
const agents = [agent]
const scratch = await mkdtemp(join(tmpdir(), 'chaac-mixed-'))
t.teardown(async () => {
  for (const a of agents) await a.kill9()
  await cleanupAgent(agents[agents.length - 1])
  await rm(scratch, { recursive: true, force: true })
})

// Runs a command with a deadline and leaves none of its processes behind. fio
// may hang (or abort) once its mmap jobs died of SIGBUS, and its jobs are
// processes in sessions of their own, out of reach of a kill of its group:
// as a subreaper this runner inherits them, and kills them at the end.
const BOUNDED = join(scratch, 'bounded.py')
await writeFile(BOUNDED, `
import ctypes, os, subprocess, sys
PR_SET_CHILD_SUBREAPER = 36
ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)
def descendants():
    kids = {}
    for d in filter(str.isdigit, os.listdir('/proc')):
        try:
            with open('/proc/%s/stat' % d) as f:
                kids.setdefault(int(f.read().rsplit(')', 1)[1].split()[1]), []).append(int(d))
        except OSError:
            pass
    out, todo = [], [os.getpid()]
    while todo:
        for kid in kids.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out
p = subprocess.Popen(sys.argv[2:])
try:
    code = p.wait(timeout=float(sys.argv[1]))
except subprocess.TimeoutExpired:
    print('fatal: still running after %s s' % sys.argv[1], file=sys.stderr)
    code = 124
left = descendants()
for pid in left:
    os.kill(pid, 9)
if left and code == 0:
    print('fatal: processes left behind: %s' % left, file=sys.stderr)
    code = 1
sys.exit(code)
`)

/** kill -9 of the agent, then a new one on the same data folder and chaac path. */
async function restart (): Promise<void> {
  await agent.kill9()
  await unmountLazily(agent.mount)
  agent = await startAgent({ data: agent.data })
  agents.push(agent)
}

const fio = (dir: string): string => [
  `fio --bs=8k --iodepth=16 --iodepth_batch=8 --randrepeat=1 --size=1m --directory=${dir} --numjobs=5 --ignore_error=,EIO`,
  '--name=job2 --ioengine=libaio --rw=randwrite --direct=1 --filename=file1:file2',
  '--name=job3 --bs=4096 --ioengine=posixaio --rw=randwrite --direct=1 --filename=file1:file2',
  '--name=job4 --ioengine=splice --direct=1 --rw=randwrite --filename=file1:file2',
  '--name=job6 --ioengine=posixaio --rw=randwrite --filename=file1:file2',
  '--name=job7 --ioengine=splice --rw=randwrite --filename=file1:file2',
  '--name=job8 --ioengine=mmap --rw=randwrite --bs=1k --filename=file1:file2',
  '--name=job9 --ioengine=mmap --rw=randwrite --direct=1 --bs=4096 --filename=file1:file2'
].join(' ')

/** What in fio's output says a job failed: an error code, an error it was told to ignore (EIO), a signal, a fatal error. */
function fioFailures (out: string): string[] {
  return out.split('\n').filter((l) =>
    /\berr=\s*[1-9]/.test(l) || /errors\s*:\s*total=[1-9]/.test(l) || /got signal|SIGBUS|bus error/i.test(l) || /fatal/i.test(l) || /^fio: .*error/i.test(l))
}

/** sha256 of each file as the agent serves it (O_DIRECT: not from the kernel's page cache), and as cat reads it. */
async function shas (dir: string): Promise<{ direct: string[], cat: string[], sizes: number[] }> {
  const sha = async (cmd: string): Promise<string> => (await shOk(`set -o pipefail; ${cmd} | sha256sum`, { cwd: dir })).split(' ')[0]
  const direct = await Promise.all(['file1', 'file2'].map(async (f) => await sha(`dd if=${f} iflag=direct bs=64k status=none`)))
  const cat = await Promise.all(['file1', 'file2'].map(async (f) => await sha(`cat ${f}`)))
  const sizes = (await shOk('stat -c %s file1 file2', { cwd: dir })).trim().split('\n').map(Number)
  return { direct, cat, sizes }
}

const dirs = Array.from({ length: TRIES }, (_, i) => `try${i + 1}`)
const before = new Map<string, string[]>()

t.test('mixed writers - fio with mmap, O_DIRECT, AIO and splice writers of two files: no error, no signal, both files whole', OPTS, async (t) => {
  await shOk(`mkdir ${dirs.join(' ')}`, { cwd: agent.mount })
  // The tries run at once, each on its own two files: one try takes 20-40 s, most of it msync of job9.
  const runs = await Promise.all(dirs.map(async (d) => await sh(`python3 ${BOUNDED} 200 ${fio(d)}`, { cwd: agent.mount, timeoutMs: 240_000 })))
  for (const [i, r] of runs.entries()) {
    const d = dirs[i]
    t.equal(r.code, 0, `${d}: fio exits 0`)
    t.same(fioFailures(r.stdout + r.stderr), [], `${d}: no job failed, ignored an EIO or died of a signal`)
    const cat = await sh('cat file1 file2 > /dev/null', { cwd: join(agent.mount, d) })
    t.equal(cat.code, 0, `${d}: both files read whole ${cat.stderr}`)
    const s = await shas(join(agent.mount, d))
    t.same(s.sizes, [FILE_SIZE, FILE_SIZE], `${d}: each file has its ${FILE_SIZE} bytes`)
    t.same(s.cat, s.direct, `${d}: the kernel's cached pages hold what the agent stored`)
    before.set(d, s.direct)
  }
  t.notMatch(agent.log(), /file operation failed/, 'the agent answered no request with EIO (fio ignores EIO on writes)')
})

t.test('mixed writers - after fsync, kill -9 and a restart the files read back the same', OPTS, async (t) => {
  if (before.size < TRIES) return t.fail('the fio runs did not finish')
  const files = dirs.flatMap((d) => ['file1', 'file2'].map((f) => join(agent.mount, d, f)))
  await py(`
import os
for p in ${JSON.stringify(files)}:
    fd = os.open(p, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
`)
  await restart()
  for (const d of dirs) {
    const cat = await sh('cat file1 file2 > /dev/null', { cwd: join(agent.mount, d) })
    t.equal(cat.code, 0, `${d}: both files read whole ${cat.stderr}`)
    const s = await shas(join(agent.mount, d))
    t.same(s.sizes, [FILE_SIZE, FILE_SIZE], `${d}: sizes`)
    t.same(s.direct, before.get(d), `${d}: the same sha256 as before the kill`)
    t.same(s.cat, s.direct, `${d}: through the page cache too`)
  }
})

// O_DIRECT reads need an aligned buffer: an anonymous mmap is page-aligned.
const PY_LIB = `
import hashlib, json, mmap, os
def direct_read(p):
    fd = os.open(p, os.O_RDONLY | os.O_DIRECT)
    try:
        size = os.fstat(fd).st_size
        buf = mmap.mmap(-1, max(4096, (size + 4095) // 4096 * 4096))
        n = os.preadv(fd, [buf], 0)
        return bytes(buf[:n])
    finally:
        os.close(fd)
def read_all(fd):
    return os.pread(fd, os.fstat(fd).st_size + 1, 0)
def sha(b):
    return hashlib.sha256(b).hexdigest()
`

t.test('mmap - MAP_SHARED stores, msync, munmap and close: another handle reads them, and so does the agent after a restart', OPTS, async (t) => {
  const path = join(agent.mount, 'mapped')
  const out = JSON.parse(await py(`${PY_LIB}
import random
p = ${JSON.stringify(path)}
size = 3 * 65536 + 1000
rng = random.Random(7)
expect = bytearray(size)
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
os.ftruncate(fd, size)
m = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
# Stores across pages and balls, the last one up to the end of the file (not a whole page).
for off, n in [(0, 100), (4000, 200), (65530, 20), (70000, 9000), (size - 500, 500)] + [(rng.randrange(size - 64), 64) for _ in range(50)]:
    data = rng.randbytes(n)
    m[off:off + n] = data
    expect[off:off + n] = data
m.flush()
m.close()
os.close(fd)
fd = os.open(p, os.O_RDONLY)
cached = read_all(fd)
os.close(fd)
print(json.dumps({'expect': sha(expect), 'cached': sha(cached), 'direct': sha(direct_read(p)), 'size': os.stat(p).st_size}))
`))
  t.equal(out.size, 3 * 65536 + 1000)
  t.equal(out.cached, out.expect, 'a read through another handle sees the stores')
  t.equal(out.direct, out.expect, 'the agent has them (O_DIRECT read)')
  // msync is an fsync of the range: what it wrote survives a crash of the agent.
  await restart()
  const again = JSON.parse(await py(`${PY_LIB}
p = ${JSON.stringify(path)}
fd = os.open(p, os.O_RDONLY)
print(json.dumps({'cached': sha(read_all(fd)), 'direct': sha(direct_read(p))}))
os.close(fd)
`))
  t.same(again, { cached: out.expect, direct: out.expect }, 'after kill -9 and a restart too')
})

t.test('O_DIRECT - a direct write beside another handle\'s cached pages: that handle reads the new bytes', OPTS, async (t) => {
  const path = join(agent.mount, 'direct')
  const out = JSON.parse(await py(`${PY_LIB}
p = ${JSON.stringify(path)}
old = os.urandom(256 * 1024)
with open(p, 'wb') as f:
    f.write(old)
b = os.open(p, os.O_RDONLY)
assert read_all(b) == old
a = os.open(p, os.O_WRONLY | os.O_DIRECT)
new = mmap.mmap(-1, 64 * 1024)
new.write(os.urandom(64 * 1024))
assert os.pwrite(a, new, 64 * 1024) == 64 * 1024
expect = old[:65536] + bytes(new) + old[131072:]
seen_open = read_all(b)
os.close(a)
seen_closed = read_all(b)
os.close(b)
print(json.dumps({'expect': sha(expect), 'open': sha(seen_open), 'closed': sha(seen_closed), 'direct': sha(direct_read(p))}))
`))
  t.equal(out.open, out.expect, 'the other handle reads the new bytes while the writer is open')
  t.equal(out.closed, out.expect, 'and after it closed')
  t.equal(out.direct, out.expect, 'the agent stored them')
})

t.test('splice - bytes spliced from a pipe into the file read back right', OPTS, async (t) => {
  const path = join(agent.mount, 'spliced')
  const out = JSON.parse(await py(`${PY_LIB}
p = ${JSON.stringify(path)}
data = os.urandom(1024 * 1024 + 3000)
r, w = os.pipe()
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
off = 0
while off < len(data):
    n = os.write(w, data[off:off + 65536])
    while n > 0:
        m = os.splice(r, fd, n, offset_dst=off)
        off += m
        n -= m
os.close(fd)
fd = os.open(p, os.O_RDONLY)
cached = read_all(fd)
os.close(fd)
print(json.dumps({'expect': sha(data), 'cached': sha(cached), 'direct': sha(direct_read(p))}))
`))
  t.equal(out.cached, out.expect, 'a read sees the spliced bytes')
  t.equal(out.direct, out.expect, 'the agent stored them')
  // fio's own splice engine, with its verification of what it wrote.
  const r = await sh(`python3 ${BOUNDED} 100 fio --name=splice --ioengine=splice --rw=randwrite --bs=8k --size=1m --filename=${join(agent.mount, 'fio-spliced')} --verify=crc32c --do_verify=1`, { timeoutMs: 120_000 })
  t.equal(r.code, 0, 'fio splice writes verify')
  t.same(fioFailures(r.stdout + r.stderr).concat(r.stdout.match(/verify: bad/g) ?? []), [])
})

t.test('keep cache - a write through one handle is seen by a handle opened (cache kept) before it', OPTS, async (t) => {
  const path = join(agent.mount, 'kept')
  const out = JSON.parse(await py(`${PY_LIB}
p = ${JSON.stringify(path)}
old = os.urandom(200 * 1024)
with open(p, 'wb') as f:
    f.write(old)
# Read once and closed: the next open keeps the cached pages (same content).
fd = os.open(p, os.O_RDONLY)
read_all(fd)
os.close(fd)
b = os.open(p, os.O_RDONLY)
assert read_all(b) == old
a = os.open(p, os.O_WRONLY)
new = os.urandom(5000)
os.pwrite(a, new, 70000)
expect = old[:70000] + new + old[75000:]
seen_open = read_all(b)
os.close(a)
seen_closed = read_all(b)
os.close(b)
fd = os.open(p, os.O_RDONLY)
seen_new = read_all(fd)
os.close(fd)
print(json.dumps({'expect': sha(expect), 'open': sha(seen_open), 'closed': sha(seen_closed), 'reopened': sha(seen_new), 'direct': sha(direct_read(p))}))
`))
  t.equal(out.open, out.expect, 'handle B sees the write while A is open')
  t.equal(out.closed, out.expect, 'and after A closed')
  t.equal(out.reopened, out.expect, 'a new handle sees it')
  t.equal(out.direct, out.expect, 'the agent stored it')
})
