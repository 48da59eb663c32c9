// Plain file I/O on a real mount behaves as on a local disk: every check runs
// in a child process (shell tools, or python3 for exact syscalls and errno).
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, py, sh, shOk, startAgent, testMeta } from '../helpers/agent.ts'
import { waitFor } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const CHUNK = 4 * MiB

const agent = await startAgent()
t.teardown(async () => await cleanupAgent(agent))
const mnt = agent.mount
// The unprivileged user of the permission tests must be able to reach the chaac path.
await chmod(agent.root, 0o755)

// Helpers available to every python snippet: E(fn, ...) answers 'OK' or the errno name.
const PRELUDE = `
import errno, hashlib, json, os, random, stat, sys
def E(fn, *args, **kw):
    try:
        fn(*args, **kw)
        return 'OK'
    except OSError as e:
        return errno.errorcode[e.errno]
def read_all(p):
    with open(p, 'rb') as f:
        return f.read()
def write_all(p, data):
    with open(p, 'wb') as f:
        f.write(data)
def out(v):
    print(json.dumps(v))
`

/** Runs a python snippet with `M` (the chaac path) and `D` (this test's directory on it); parses its JSON output. */
async function pyj (dir: string, code: string): Promise<any> {
  return JSON.parse(await py(`${PRELUDE}\nM = ${JSON.stringify(mnt)}\nD = ${JSON.stringify(join(mnt, dir))}\n${code}`))
}

/** A fresh directory on the mount for one subtest. */
async function dir (name: string): Promise<string> {
  await shOk(`mkdir ${name}`, { cwd: mnt })
  return name
}

const OPTS = { timeout: 60_000 }

/** Whether the data pool's map of balls holds `id` (paging through /api/v1/balls). */
/** Whether a file or a bin still holds the ball (a released one keeps only its cloud copy, for the grace period). */
async function hasBall (id: string): Promise<boolean> {
  for (let after = ''; ;) {
    const page = await agent.json(`/api/v1/balls?limit=1000${after ? `&after=${after}` : ''}`)
    const b = page.balls.find((b: { id: string }) => b.id === id)
    if (b) return b.refs > 0 || b.bins.length > 0 || b.garbageSince === null
    if (!page.next) return false
    after = page.next
  }
}

t.test('write - pwrite beyond EOF leaves a gap that reads back as zeros and takes no space', OPTS, async (t) => {
  const d = await dir('sparse')
  const r = await pyj(d, `
p = os.path.join(D, 'f')
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
os.pwrite(fd, b'abc', 0)
os.pwrite(fd, b'xyz', 5 * ${CHUNK} + 7)
os.close(fd)
data = read_all(p)
st = os.stat(p)
far = os.path.join(D, 'far')
fd = os.open(far, os.O_CREAT | os.O_RDWR, 0o644)
os.pwrite(fd, b'past 4 GiB', 5 * 1024 ** 3 + 1)
os.close(fd)
fd = os.open(far, os.O_RDONLY)
far_read = [os.pread(fd, 11, 5 * 1024 ** 3), os.pread(fd, 4, 1024 ** 3) == bytes(4)]
os.close(fd)
out({'size': st.st_size, 'blocks': st.st_blocks, 'head': data[:3].decode(), 'tail': data[-3:].decode(),
     'gapZero': data[3:-3] == bytes(len(data) - 6), 'farSize': os.stat(far).st_size, 'far': far_read[0].decode(), 'farZero': far_read[1],
     'farBlocks': os.stat(far).st_blocks})
`)
  t.equal(r.size, 5 * CHUNK + 10)
  t.equal(r.head, 'abc')
  t.equal(r.tail, 'xyz')
  t.ok(r.gapZero, 'the gap reads as zeros')
  t.ok(r.blocks * 512 < 2 * CHUNK, `sparse: ${r.blocks} blocks for ${r.size} bytes`)
  t.equal(r.farSize, 5 * 1024 * MiB + 11, 'offsets past 4 GiB')
  t.equal(r.far, '\0past 4 GiB')
  t.ok(r.farZero)
  t.ok(r.farBlocks * 512 <= CHUNK, `a 5 GiB sparse file takes ${r.farBlocks} blocks`)
})

t.test('write - a write spanning the chunk boundary reads back exactly', OPTS, async (t) => {
  const d = await dir('boundary')
  const r = await pyj(d, `
p = os.path.join(D, 'f')
rnd = random.Random(1)
a = rnd.randbytes(3 * ${MiB})
b = rnd.randbytes(10)
fd = os.open(p, os.O_CREAT | os.O_RDWR, 0o644)
os.pwrite(fd, a, ${CHUNK} - ${MiB} - 3)
os.pwrite(fd, b, 2 * ${CHUNK} - 5)
same_fd = os.pread(fd, len(a), ${CHUNK} - ${MiB} - 3) == a and os.pread(fd, 10, 2 * ${CHUNK} - 5) == b
os.close(fd)
data = read_all(p)
out({'sameFd': same_fd, 'a': data[${CHUNK} - ${MiB} - 3:][:len(a)] == a, 'b': data[2 * ${CHUNK} - 5:] == b,
     'zeros': data[:${CHUNK} - ${MiB} - 3] == bytes(${CHUNK} - ${MiB} - 3), 'size': len(data)})
`)
  t.ok(r.sameFd, 'read back through the writing handle')
  t.ok(r.a, 'the 3 MiB write across the first boundary')
  t.ok(r.b, 'the 10-byte write across the second boundary')
  t.ok(r.zeros, 'the bytes before the first write are zeros')
  t.equal(r.size, 2 * CHUNK + 5)
})

t.test('write - overwrites, gaps, truncation and appends give the same bytes as a local disk', OPTS, async (t) => {
  const d = await dir('same-as-disk')
  const local = await mkdtemp(join(tmpdir(), 'chaac-local-'))
  t.teardown(async () => await rm(local, { recursive: true, force: true }))
  // The same operations on each directory; the result is the file's sha256 and size.
  const ops = (where: string): string => `
p = os.path.join(${JSON.stringify(where)}, 'big')
rnd = random.Random(42)
with open(p, 'wb') as f:
    for _ in range(13):
        f.write(rnd.randbytes(${MiB}))
fd = os.open(p, os.O_RDWR)
os.pwrite(fd, rnd.randbytes(3 * ${MiB}), 3 * ${MiB} + 123)
os.pwrite(fd, rnd.randbytes(10), 2 * ${CHUNK} - 5)
os.pwrite(fd, rnd.randbytes(1000), 7)
os.pwrite(fd, rnd.randbytes(4096), 20 * ${MiB})
os.ftruncate(fd, 18 * ${MiB} + 7)
os.pwrite(fd, rnd.randbytes(1), 18 * ${MiB} + 10)
os.close(fd)
fd = os.open(p, os.O_WRONLY | os.O_APPEND)
os.write(fd, rnd.randbytes(${MiB} + 1))
os.close(fd)
fd = os.open(p, os.O_RDWR)
os.pwrite(fd, rnd.randbytes(100), 6 * ${MiB})
os.close(fd)
out({'sha': hashlib.sha256(read_all(p)).hexdigest(), 'size': os.stat(p).st_size})
`
  const onDisk = JSON.parse(await py(PRELUDE + ops(local)))
  const onMount = await pyj(d, ops(join(mnt, d)))
  t.same(onMount, onDisk)
  // A fresh process reads the committed file (close-to-open).
  const sum = await shOk(`sha256sum ${d}/big`, { cwd: mnt })
  t.equal(sum.split(' ')[0], onDisk.sha)
})

t.test('append - >> repeatedly and O_APPEND from two handles add at the end', OPTS, async (t) => {
  const d = await dir('append')
  await shOk('for i in $(seq 1 200); do echo "line $i" >> log; done', { cwd: join(mnt, d) })
  const expected = Array.from({ length: 200 }, (_, i) => `line ${i + 1}\n`).join('')
  t.equal(await shOk('cat log', { cwd: join(mnt, d) }), expected)
  const r = await pyj(d, `
p = os.path.join(D, 'two')
write_all(p, b'start\\n')
a = os.open(p, os.O_WRONLY | os.O_APPEND)
b = os.open(p, os.O_WRONLY | os.O_APPEND)
for i in range(50):
    os.write(a, b'a%d\\n' % i)
    os.write(b, b'b%d\\n' % i)
os.lseek(a, 0, os.SEEK_SET)
os.write(a, b'end\\n')
os.close(a)
os.close(b)
big = os.path.join(D, 'big')
with open(big, 'ab') as f:
    for i in range(6):
        f.write(bytes([i]) * ${MiB})
out({'two': read_all(p).decode(), 'big': read_all(big) == b''.join(bytes([i]) * ${MiB} for i in range(6))})
`)
  t.equal(r.two, 'start\n' + Array.from({ length: 50 }, (_, i) => `a${i}\nb${i}\n`).join('') + 'end\n')
  t.ok(r.big, 'appends across the chunk boundary')
  // Two processes appending at once: no line is lost or torn.
  const appender = (tag: string): string => `python3 -c "
import os
fd = os.open('race', os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
for i in range(1000):
    os.write(fd, b'${tag}%04d'.ljust(99, b'.') % i + b'\\n')
os.close(fd)
"`
  await shOk(`${appender('x')} & ${appender('y')} & wait`, { cwd: join(mnt, d) })
  const lines = (await shOk('cat race', { cwd: join(mnt, d) })).split('\n').slice(0, -1)
  t.equal(lines.length, 2000)
  t.ok(lines.every((l) => /^[xy]\d{4}\.+$/.test(l) && l.length === 99), 'every line whole')
  t.equal(new Set(lines).size, 2000, 'no line written over another')
})

t.test('truncate - grow and shrink by path and by handle; the tail reads zeros after growing again', OPTS, async (t) => {
  const d = await dir('truncate')
  const r = await pyj(d, `
p = os.path.join(D, 'f')
data = random.Random(7).randbytes(9 * ${MiB})
write_all(p, data)
res = {}
os.truncate(p, 5 * ${MiB} + 3)
res['shrunk'] = os.stat(p).st_size
res['shrunkData'] = read_all(p) == data[:5 * ${MiB} + 3]
os.truncate(p, 10 * ${MiB})
d2 = read_all(p)
res['grown'] = len(d2)
res['grownData'] = d2 == data[:5 * ${MiB} + 3] + bytes(10 * ${MiB} - 5 * ${MiB} - 3)
fd = os.open(p, os.O_RDWR)
os.ftruncate(fd, 100)
os.ftruncate(fd, ${CHUNK} + 50)
res['fstat'] = os.fstat(fd).st_size
res['fdData'] = os.pread(fd, ${CHUNK} + 100, 0) == data[:100] + bytes(${CHUNK} - 50)
os.pwrite(fd, b'Z', ${CHUNK} + 60)
os.close(fd)
d3 = read_all(p)
res['final'] = d3 == data[:100] + bytes(${CHUNK} - 50) + bytes(10) + b'Z'
fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
res['otrunc'] = os.fstat(fd).st_size
os.close(fd)
res['empty'] = read_all(p) == b''
out(res)
`)
  t.equal(r.shrunk, 5 * MiB + 3)
  t.ok(r.shrunkData, 'shrunk to mid-chunk keeps the head')
  t.equal(r.grown, 10 * MiB)
  t.ok(r.grownData, 'grown again: the tail reads zeros')
  t.equal(r.fstat, CHUNK + 50)
  t.ok(r.fdData, 'ftruncate shrink then grow: zeros through the same handle')
  t.ok(r.final, 'a write past the regrown end')
  t.equal(r.otrunc, 0, 'O_TRUNC empties the file')
  t.ok(r.empty)
})

t.test('rename - replaces a file atomically: readers never miss the name or see a partial file', OPTS, async (t) => {
  const d = await dir('atomic')
  await shOk(`printf 'v0\\n%.0s' $(seq 1 1000) > ${d}/target`, { cwd: mnt })
  const writer = py(`${PRELUDE}
D = ${JSON.stringify(join(mnt, d))}
for i in range(1, 301):
    tmp = os.path.join(D, 'tmp%d' % i)
    write_all(tmp, (b'v%d\\n' % i) * 1000)
    os.rename(tmp, os.path.join(D, 'target'))
write_all(os.path.join(D, 'done'), b'')
`)
  const reader = pyj(d, `
bad = []
reads = 0
seen = set()
while True:
    finished = os.path.exists(os.path.join(D, 'done'))
    try:
        data = read_all(os.path.join(D, 'target'))
        lines = data.split(b'\\n')[:-1]
        if len(lines) != 1000 or len(set(lines)) != 1:
            bad.append('partial: %d bytes' % len(data))
        else:
            seen.add(lines[0])
    except OSError as e:
        bad.append(errno.errorcode[e.errno])
    reads += 1
    if finished:
        break
out({'bad': bad[:10], 'reads': reads, 'versions': len(seen), 'last': read_all(os.path.join(D, 'target'))[:5].decode()})
`)
  const [, r] = await Promise.all([writer, reader])
  t.same(r.bad, [], `${r.reads} reads saw ${r.versions} versions`)
  t.equal(r.last, 'v300\n')
  t.equal((await shOk('ls', { cwd: join(mnt, d) })).trim().split('\n').sort().join(' '), 'done target', 'no temporary file left')
  const r2 = await pyj(d, `
t = os.path.join(D, 'target')
w = os.open(t, os.O_WRONLY | os.O_TRUNC)
os.write(w, b'old inode ')
write_all(os.path.join(D, 'new'), b'new content')
os.rename(os.path.join(D, 'new'), t)
os.write(w, b'still writable')
os.fsync(w)
st = os.fstat(w)
os.close(w)
out({'name': read_all(t).decode(), 'oldNlink': st.st_nlink, 'oldSize': st.st_size})
`)
  t.same(r2, { name: 'new content', oldNlink: 0, oldSize: 24 }, 'a writer of the replaced file keeps writing to it, apart from the name')
})

t.test('rename - files across directories, over a target, and directories with their content', OPTS, async (t) => {
  const d = await dir('rename')
  const r = await pyj(d, `
j = lambda *p: os.path.join(D, *p)
os.makedirs(j('a/sub'))
os.makedirs(j('b'))
write_all(j('a/f'), b'one')
write_all(j('b/g'), b'two')
res = {}
ino = os.stat(j('a/f')).st_ino
os.rename(j('a/f'), j('b/f'))
res['moved'] = [os.path.exists(j('a/f')), read_all(j('b/f')).decode(), os.stat(j('b/f')).st_ino == ino]
held = os.open(j('b/g'), os.O_RDONLY)
os.rename(j('b/f'), j('b/g'))
res['replaced'] = [sorted(os.listdir(j('b'))), read_all(j('b/g')).decode(), os.pread(held, 10, 0).decode()]
os.close(held)
write_all(j('a/sub/deep'), b'deep')
nlink_a = os.stat(j('a')).st_nlink
os.rename(j('a/sub'), j('b/sub'))
res['dir'] = [read_all(j('b/sub/deep')).decode(), os.path.exists(j('a/sub')), os.stat(j('a')).st_nlink == nlink_a - 1,
              os.stat(j('b')).st_nlink]
os.mkdir(j('empty'))
os.rename(j('b/sub'), j('empty'))
res['ontoEmpty'] = [read_all(j('empty/deep')).decode(), os.path.exists(j('b/sub'))]
os.makedirs(j('full/x'))
os.mkdir(j('c'))
res['ontoFull'] = E(os.rename, j('c'), j('full'))
res['intoSelf'] = E(os.rename, j('full'), j('full/x/y'))
res['fileOntoDir'] = E(os.rename, j('b/g'), j('c'))
res['dirOntoFile'] = E(os.rename, j('c'), j('b/g'))
res['missing'] = E(os.rename, j('nope'), j('c2'))
res['toMissingDir'] = E(os.rename, j('b/g'), j('nope/g'))
res['sameName'] = E(os.rename, j('b/g'), j('b/g'))
os.link(j('b/g'), j('b/h'))
res['hardlinkPair'] = [E(os.rename, j('b/g'), j('b/h')), sorted(os.listdir(j('b')))]
out(res)
`)
  t.same(r.moved, [false, 'one', true], 'a file moves across directories and keeps its inode')
  t.same(r.replaced, [['g'], 'one', 'two'], 'the target is replaced; a handle open on it still reads the old content')
  t.same(r.dir, ['deep', false, true, 3], 'a directory moves with its content; the parents\' link counts follow')
  t.same(r.ontoEmpty, ['deep', false], 'a directory replaces an empty directory')
  t.equal(r.ontoFull, 'ENOTEMPTY')
  t.equal(r.intoSelf, 'EINVAL')
  t.equal(r.fileOntoDir, 'EISDIR')
  t.equal(r.dirOntoFile, 'ENOTDIR')
  t.equal(r.missing, 'ENOENT')
  t.equal(r.toMissingDir, 'ENOENT')
  t.equal(r.sameName, 'OK')
  t.same(r.hardlinkPair, ['OK', ['g', 'h']], 'renaming onto another link of the same file does nothing')
})

t.test('unlink - a file still open stays readable and writable through its handle until closed', OPTS, async (t) => {
  const d = await dir('unlink-open')
  await pyj(d, `write_all(os.path.join(D, 'f'), random.Random(3).randbytes(6 * ${MiB}))\nout(0)`)
  const first: string = (await agent.json(`/api/v1/location?path=/${d}/f`)).balls[0].id
  const r = await pyj(d, `
p = os.path.join(D, 'f')
data = random.Random(3).randbytes(6 * ${MiB})
fd = os.open(p, os.O_RDWR)
os.unlink(p)
res = {'gone': os.path.exists(p), 'listed': os.listdir(D), 'nlink': os.fstat(fd).st_nlink}
res['read'] = os.pread(fd, len(data), 0) == data
os.pwrite(fd, b'more', len(data))
os.fsync(fd)
res['size'] = os.fstat(fd).st_size
res['readMore'] = os.pread(fd, 4, len(data)).decode()
write_all(p, b'new file')
res['newFile'] = read_all(p).decode()
res['stillOld'] = os.pread(fd, 16, 0) == data[:16]
os.close(fd)
out(res)
`)
  t.same(r, { gone: false, listed: [], nlink: 0, read: true, size: 6 * MiB + 4, readMore: 'more', newFile: 'new file', stillOld: true })
  // Closed, the nameless file goes, and its data with it.
  await waitFor(async () => !(await hasBall(first)), { timeoutMs: 10_000, what: 'the unlinked file\'s balls to be released' })
})

t.test('mkdir and rmdir - create, refuse non-empty, remove, link counts', OPTS, async (t) => {
  const d = await dir('dirs')
  const r = await pyj(d, `
j = lambda *p: os.path.join(D, *p)
res = {}
os.mkdir(j('x'), 0o750)
st = os.stat(j('x'))
res['mode'] = oct(stat.S_IMODE(st.st_mode))
res['isdir'] = stat.S_ISDIR(st.st_mode)
res['nlink'] = st.st_nlink
os.mkdir(j('x/y'))
res['parentNlink'] = os.stat(j('x')).st_nlink
write_all(j('x/y/f'), b'')
res['notEmpty'] = E(os.rmdir, j('x'))
res['notEmptyY'] = E(os.rmdir, j('x/y'))
os.unlink(j('x/y/f'))
res['rmY'] = E(os.rmdir, j('x/y'))
res['nlinkAfter'] = os.stat(j('x')).st_nlink
res['rmX'] = E(os.rmdir, j('x'))
res['listed'] = os.listdir(D)
res['makedirs'] = E(os.makedirs, j('p/q/r/s'))
out(res)
`)
  t.same(r, {
    mode: '0o750', isdir: true, nlink: 2, parentNlink: 3, notEmpty: 'ENOTEMPTY', notEmptyY: 'ENOTEMPTY',
    rmY: 'OK', nlinkAfter: 2, rmX: 'OK', listed: [], makedirs: 'OK'
  })
})

// On etcd each of the 20,000 creates and unlinks is a transaction on a quorum's disks.
t.test('readdir - a directory of 10,000 entries lists every one', { timeout: testMeta() === undefined ? 180_000 : 500_000 }, async (t) => {
  const timeoutMs = testMeta() === undefined ? 120_000 : 200_000
  const d = await dir('many')
  await py(`
import os
D = ${JSON.stringify(join(mnt, d))}
for i in range(10000):
    os.close(os.open(os.path.join(D, 'entry-%05d' % i), os.O_CREAT | os.O_WRONLY, 0o644))
`, { timeoutMs })
  const cwd = join(mnt, d)
  t.equal((await shOk('ls | wc -l', { cwd })).trim(), '10000')
  t.equal((await shOk('ls -f | wc -l', { cwd })).trim(), '10002', 'ls -f adds . and ..')
  t.equal((await shOk('find . -type f | wc -l', { cwd })).trim(), '10000')
  const names = (await shOk('ls', { cwd })).trim().split('\n')
  t.equal(names[0], 'entry-00000')
  t.equal(names[9999], 'entry-09999')
  t.equal(new Set(names).size, 10000, 'no duplicates')
  await shOk(`rm -r ${d}`, { cwd: mnt, timeoutMs })
  t.equal((await sh(`ls ${d}`, { cwd: mnt })).code, 2, 'removed')
})

t.test('symlink - readlink, dangling links, links to directories', OPTS, async (t) => {
  const d = await dir('symlinks')
  const cwd = join(mnt, d)
  await shOk('echo hi > file && mkdir sub && echo inner > sub/x && ln -s file link && ln -s missing dangling && ln -s sub dirlink && ln -s ../symlinks/sub/x rel', { cwd })
  t.equal(await shOk('readlink link', { cwd }), 'file\n')
  t.equal(await shOk('cat link', { cwd }), 'hi\n')
  t.equal(await shOk('cat rel', { cwd }), 'inner\n')
  t.equal(await shOk('ls dirlink/', { cwd }), 'x\n')
  t.equal(await shOk('cat dirlink/x', { cwd }), 'inner\n')
  const r = await pyj(d, `
j = lambda *p: os.path.join(D, *p)
st = os.lstat(j('dangling'))
out({'readlink': os.readlink(j('dangling')), 'islink': stat.S_ISLNK(st.st_mode), 'size': st.st_size,
     'stat': E(os.stat, j('dangling')), 'open': E(open, j('dangling')), 'exists': E(os.symlink, 'x', j('link')),
     'mode': oct(stat.S_IMODE(st.st_mode)), 'readlinkFile': E(os.readlink, j('file'))})
`)
  t.same(r, { readlink: 'missing', islink: true, size: 7, stat: 'ENOENT', open: 'ENOENT', exists: 'EEXIST', mode: '0o777', readlinkFile: 'EINVAL' })
  await shOk('echo later > missing', { cwd })
  t.equal(await shOk('cat dangling', { cwd }), 'later\n', 'a dangling link works once its target exists')
  await shOk('rm link dirlink', { cwd })
  t.equal(await shOk('cat file && ls sub', { cwd }), 'hi\nx\n', 'removing links leaves the targets')
})

t.test('link - hard links share inode and content; unlinking one keeps the other', OPTS, async (t) => {
  const d = await dir('hardlinks')
  const r = await pyj(d, `
j = lambda *p: os.path.join(D, *p)
write_all(j('a'), b'first')
os.link(j('a'), j('b'))
sa, sb = os.stat(j('a')), os.stat(j('b'))
res = {'sameIno': sa.st_ino == sb.st_ino, 'nlink': [sa.st_nlink, sb.st_nlink]}
with open(j('b'), 'ab') as f:
    f.write(b' second')
res['viaA'] = read_all(j('a')).decode()
held = os.open(j('a'), os.O_RDONLY)
os.pread(held, 100, 0)
with open(j('b'), 'r+b') as f:
    f.write(b'FIRST')
res['heldSees'] = os.pread(held, 100, 0).decode()
os.close(held)
with open(j('b'), 'r+b') as f:
    f.write(b'first')
res['sizeA'] = os.stat(j('a')).st_size
os.unlink(j('a'))
res['afterUnlink'] = [read_all(j('b')).decode(), os.stat(j('b')).st_nlink, os.listdir(D)]
res['exists'] = E(os.link, j('b'), j('b'))
os.mkdir(j('dir'))
res['dir'] = E(os.link, j('dir'), j('dir2'))
res['missing'] = E(os.link, j('nope'), j('c'))
out(res)
`)
  t.same(r, {
    sameIno: true,
    nlink: [2, 2],
    viaA: 'first second',
    heldSees: 'FIRST second',
    sizeA: 12,
    afterUnlink: ['first second', 1, ['b']],
    exists: 'EEXIST',
    dir: 'EPERM',
    missing: 'ENOENT'
  })
})

t.test('attributes - chmod, chown and utimens show in stat', OPTS, async (t) => {
  const d = await dir('attrs')
  const cwd = join(mnt, d)
  await shOk('echo x > f && chmod 0640 f && chown 1000:1000 f && mkdir sub && chmod 2775 sub', { cwd })
  t.equal(await shOk('stat -c "%a %u %g" f', { cwd }), '640 1000 1000\n')
  t.equal(await shOk('stat -c "%a %F" sub', { cwd }), '2775 directory\n')
  await shOk('chown :0 f && chmod u+x f', { cwd })
  t.equal(await shOk('stat -c "%a %u %g" f', { cwd }), '740 1000 0\n', 'chown of the group only keeps the owner')
  await shOk('touch -d "2001-02-03 04:05:06 UTC" f', { cwd })
  t.equal(await shOk('stat -c "%X %Y" f', { cwd }), '981173106 981173106\n', 'touch -d sets both times exactly')
  await shOk('touch -a -d "2010-01-01 00:00:00 UTC" f', { cwd })
  t.equal(await shOk('stat -c "%X %Y" f', { cwd }), '1262304000 981173106\n', 'touch -a keeps mtime')
  await shOk('touch -m -d "2020-01-01 00:00:00 UTC" f', { cwd })
  t.equal(await shOk('stat -c "%X %Y" f', { cwd }), '1262304000 1577836800\n', 'touch -m keeps atime')
  const r = await pyj(d, `
p = os.path.join(D, 'f')
os.utime(p, ns=(1_000_000_123_000_000, 1_100_000_456_000_000))
st = os.stat(p)
before = st.st_ctime_ns
os.chmod(p, 0o600)
res = {'atime': st.st_atime_ns, 'mtime': st.st_mtime_ns, 'ctimeMoves': os.stat(p).st_ctime_ns >= before}
os.utime(p)
res['now'] = abs(os.stat(p).st_mtime - __import__('time').time()) < 5
with open(p, 'ab') as f:
    f.write(b'y')
res['writeMovesMtime'] = os.stat(p).st_mtime_ns > 1_100_000_456_000_000
os.utime(os.path.join(D, 'sub'), (5, 6))
res['dir'] = [os.stat(os.path.join(D, 'sub')).st_atime, os.stat(os.path.join(D, 'sub')).st_mtime]
os.symlink('f', os.path.join(D, 'l'))
os.utime(os.path.join(D, 'l'), (7, 8), follow_symlinks=False)
res['link'] = os.lstat(os.path.join(D, 'l')).st_mtime
res['mode'] = oct(stat.S_IMODE(os.stat(p).st_mode))
out(res)
`)
  t.equal(r.atime, 1_000_000_123_000_000, 'atime to the millisecond')
  t.equal(r.mtime, 1_100_000_456_000_000, 'mtime to the millisecond')
  t.ok(r.ctimeMoves, 'chmod updates ctime')
  t.ok(r.now, 'utime with no times sets now')
  t.ok(r.writeMovesMtime, 'a write updates mtime')
  t.same(r.dir, [5, 6], 'directory times')
  t.equal(r.link, 8, 'the times of a symlink itself')
  t.equal(r.mode, '0o600')
})

t.test('statfs - df and statvfs report the capacity of the disk bins', OPTS, async (t) => {
  const r = await pyj('', `
s = os.statvfs(M)
out({'total': s.f_blocks * s.f_frsize, 'free': s.f_bavail * s.f_frsize, 'namemax': s.f_namemax})
`)
  t.equal(r.total, 4 * 1024 * MiB, 'the 4 GiB disk bin')
  t.ok(r.free > 0 && r.free <= r.total)
  t.equal(r.namemax, 255)
  const df = (await shOk(`df -B1 --output=size,fstype ${mnt} | tail -1`)).trim().split(/\s+/)
  t.same(df, [String(4 * 1024 * MiB), 'fuse.chaac'])
})

t.test('fsync - fsync and fdatasync succeed and the data is there', OPTS, async (t) => {
  const d = await dir('fsync')
  const r = await pyj(d, `
p = os.path.join(D, 'f')
data = random.Random(9).randbytes(5 * ${MiB} + 17)
fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, data)
res = {'fsync': E(os.fsync, fd)}
os.write(fd, b'tail')
res['fdatasync'] = E(os.fdatasync, fd)
res['again'] = E(os.fsync, fd)
res['readOther'] = read_all(p) == data + b'tail'
os.close(fd)
dfd = os.open(D, os.O_RDONLY)
res['dir'] = E(os.fsync, dfd)
os.close(dfd)
out(res)
`)
  t.same(r, { fsync: 'OK', fdatasync: 'OK', again: 'OK', readOther: true, dir: 'OK' })
})

t.test('errors - each failure has the errno a local disk gives', OPTS, async (t) => {
  const d = await dir('errno')
  const r = await pyj(d, `
j = lambda *p: os.path.join(D, *p)
write_all(j('file'), b'x')
os.mkdir(j('dir'))
write_all(j('dir/inner'), b'')
long = 'n' * 256
ok = 'n' * 255
res = {
  'ENOENT': [E(os.open, j('missing'), os.O_RDONLY), E(os.stat, j('missing')), E(os.unlink, j('missing')),
             E(os.rmdir, j('missing')), E(os.open, j('nodir/f'), os.O_CREAT | os.O_WRONLY), E(os.mkdir, j('a/b'))],
  'EEXIST': [E(os.open, j('file'), os.O_CREAT | os.O_EXCL | os.O_WRONLY), E(os.mkdir, j('dir')), E(os.mkdir, j('file')),
             E(os.symlink, 'x', j('dir')), E(os.link, j('file'), j('dir'))],
  'ENOTDIR': [E(os.stat, j('file/x')), E(os.open, j('file/x'), os.O_CREAT | os.O_WRONLY), E(os.mkdir, j('file/x')),
              E(os.rmdir, j('file')), E(os.listdir, j('file'))],
  'EISDIR': [E(os.open, j('dir'), os.O_WRONLY), E(os.open, j('dir'), os.O_RDWR), E(os.unlink, j('dir'))],
  'ENOTEMPTY': [E(os.rmdir, j('dir'))],
  'ENAMETOOLONG': [E(os.open, j(long), os.O_CREAT | os.O_WRONLY), E(os.mkdir, j(long)), E(os.stat, j(long)),
                   E(os.rename, j('file'), j(long)), E(os.symlink, 'x', j(long)), E(os.link, j('file'), j(long))],
  'longest': [E(write_all, j(ok), b'ok'), E(os.stat, j(ok)), E(os.unlink, j(ok))],
}
out(res)
`)
  t.same(r.ENOENT, Array(6).fill('ENOENT'), 'ENOENT')
  t.same(r.EEXIST, Array(5).fill('EEXIST'), 'EEXIST')
  t.same(r.ENOTDIR, Array(5).fill('ENOTDIR'), 'ENOTDIR')
  t.same(r.EISDIR, Array(3).fill('EISDIR'), 'EISDIR')
  t.same(r.ENOTEMPTY, ['ENOTEMPTY'], 'ENOTEMPTY')
  t.same(r.ENAMETOOLONG, Array(6).fill('ENAMETOOLONG'), 'ENAMETOOLONG for a 256-byte name')
  t.same(r.longest, ['OK', 'OK', 'OK'], 'a 255-byte name works')
})

t.test('permissions - a non-root user owns what it creates and is refused in root\'s directories', OPTS, async (t) => {
  const d = await dir('perm')
  const cwd = join(mnt, d)
  await shOk('mkdir user && chown 1000:1000 user && mkdir rootonly && chmod 0755 rootonly && echo secret > rootonly/f && chmod 0600 rootonly/f', { cwd })
  // As uid/gid 1000 with no supplementary groups; the system python3 (root's may sit under /root).
  const drop = (await sh('command -v setpriv')).code === 0
    ? 'setpriv --reuid=1000 --regid=1000 --clear-groups'
    : 'runuser -u "$(getent passwd 1000 | cut -d: -f1)" --'
  const as1000 = async (script: string): Promise<{ code: number, stdout: string, stderr: string }> =>
    await sh(`${drop} bash <<'EOF'\n${script}\nEOF`, { cwd })
  const made = await as1000('echo a > user/f && echo b >> user/f && cat user/f && mkdir user/sub && ln -s f user/l')
  t.equal(made.code, 0, made.stderr)
  t.equal(made.stdout, 'a\nb\n')
  t.equal(await shOk('stat -c "%u:%g" user/f user/sub user/l', { cwd }), '1000:1000\n1000:1000\n1000:1000\n')
  const denied = await as1000(`/usr/bin/python3 - <<'PY'
import errno, os
def E(fn, *a):
    try:
        fn(*a)
        return 'OK'
    except OSError as e:
        return errno.errorcode[e.errno]
print(E(os.open, 'rootonly/new', os.O_CREAT | os.O_WRONLY), E(os.mkdir, 'rootonly/d'), E(os.open, 'rootonly/f', os.O_RDONLY),
      E(os.unlink, 'rootonly/f'), E(os.chmod, 'rootonly/f', 0o777), E(os.chown, 'user/f', 0, 0), E(os.rename, 'user/f', 'rootonly/g'),
      E(os.open, 'f-in-root', os.O_CREAT | os.O_WRONLY))
PY`)
  t.equal(denied.code, 0, denied.stderr)
  t.equal(denied.stdout, 'EACCES EACCES EACCES EACCES EPERM EPERM EACCES EACCES\n')
  t.equal(await shOk('cat rootonly/f && ls rootonly', { cwd }), 'secret\nf\n', 'nothing changed')
  await shOk('mkdir shared && chown 0:1000 shared && chmod 2775 shared && touch shared/f && mkdir shared/sub', { cwd })
  t.equal(await shOk('stat -c "%g %a" shared/f shared/sub', { cwd }), '1000 644\n1000 2755\n', 'a set-group-ID directory passes on its group')
})
