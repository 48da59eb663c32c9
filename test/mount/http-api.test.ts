// The HTTP API and the CLI against a real agent: every endpoint, pagination,
// bad parameters, unknown paths, and `chaac status | locate | agent` as users
// run them. File I/O on the mount happens in child processes.
import { connect } from 'node:net'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { PROJECT, cleanupAgent, sh, shOk, startAgent, unmountLazily } from '../helpers/agent.ts'
import { waitFor, withDeadline } from '../helpers/wait.ts'

const MiB = 1024 * 1024
const CHUNK = 4 * MiB
const OPTS = { timeout: 120_000 }
const CLI = `node ${join(PROJECT, 'bin', 'chaac.mjs')}`

const agent = await startAgent({ args: ['--write', 'through'] })
t.teardown(async () => await cleanupAgent(agent))
const mnt = agent.mount

// A small file (kept inline: no ball), a 9 MiB file (balls of 4 + 4 + 1 MiB) and a sparse file whose first two chunks are holes.
await shOk(`echo hello > small.txt && mkdir d && head -c ${9 * MiB} /dev/urandom > d/big.bin && python3 -c "
f = open('sparse', 'wb'); f.truncate(${2 * CHUNK}); f.seek(${2 * CHUNK}); f.write(b'x' * 1000); f.close()"`, { cwd: mnt })

interface Reply { status: number, type: string, body: string, json: any }

async function get (path: string, init?: RequestInit): Promise<Reply> {
  const res = await fetch(agent.url + path, { ...init, signal: AbortSignal.timeout(10_000) })
  const body = await res.text()
  const type = res.headers.get('content-type') ?? ''
  return { status: res.status, type, body, json: type.startsWith('application/json') ? JSON.parse(body) : undefined }
}

t.test('GET /status - agent, version, uptime, chaac path, bins, read outcomes, cloud tier, host context', OPTS, async (t) => {
  const pkg = JSON.parse(await readFile(join(PROJECT, 'package.json'), 'utf8'))
  const s = await waitFor(async () => {
    const r = await get('/status')
    return r.json?.context ? r : undefined
  }, { timeoutMs: 30_000, what: 'the first host context sample' })
  t.equal(s.status, 200)
  t.match(s.type, /^application\/json/)
  const j = s.json
  t.equal(j.agent.id, (await readFile(join(agent.data, 'agent-id'), 'utf8')).trim())
  t.match(j.agent.id, /^[0-9a-f-]{36}$/)
  t.equal(j.agent.version, pkg.version)
  t.equal(j.agent.pid, agent.pid)
  t.type(j.agent.uptimeSeconds, 'number')
  t.ok(j.agent.uptimeSeconds >= 0)
  t.equal(j.mount.path, mnt)
  t.equal(j.http, agent.http)
  t.equal(j.chunkSize, CHUNK)
  t.same(j.bins.map((b: any) => [b.level, b.capacity]), [['mem', 64 * MiB], ['disk', 4096 * MiB]])
  for (const b of j.bins) {
    t.type(b.used, 'number')
    t.type(b.balls, 'number')
    t.ok(b.used <= b.capacity)
  }
  t.equal(j.bins[1].balls, 4, 'disk: 3 balls of big.bin, 1 of sparse (small.txt is inline)')
  t.same(Object.keys(j.reads).sort(), ['localHit', 'miss', 'remoteHit', 'skip'])
  t.equal(j.reads.remoteHit, 0, 'one host: no remote cache hits')
  t.same(j.cloud, { location: join(agent.data, 'cloud'), writePolicy: 'through', uploadQueue: 0, garbage: 0 })
  t.equal(j.files, 5, 'root, d, small.txt, big.bin, sparse')
  for (const k of ['ufCPU', 'ufMemory', 'ufFileSystem', 'ufNet']) t.ok(j.context[k] >= 0 && j.context[k] <= 1, `context.${k} in 0..1`)
})

t.test('GET /status - a read through the mount is counted as local cache hits', OPTS, async (t) => {
  const before = (await get('/status')).json.reads
  // O_DIRECT: the read reaches the agent whatever the kernel's page cache holds.
  await shOk('dd if=d/big.bin of=/dev/null bs=1M iflag=direct status=none', { cwd: mnt })
  // The binding's read threads report the reads they served a moment later (and a file only read is closed without a round trip).
  const after = await waitFor(async () => {
    const reads = (await get('/status')).json.reads
    return reads.localHit >= before.localHit + 9 ? reads : undefined
  }, { timeoutMs: 10_000, intervalMs: 20, what: 'the reads counted' })
  t.ok(after.localHit >= before.localHit + 9, `local hits ${before.localHit} -> ${after.localHit}`)
  t.equal(after.miss, before.miss)
  t.equal(after.skip, before.skip)
  t.equal(after.remoteHit, 0)
})

t.test('GET /metrics - Prometheus text with the read outcomes, bins, queue, process metrics', OPTS, async (t) => {
  const r = await get('/metrics')
  t.equal(r.status, 200)
  t.match(r.type, /^text\/plain/)
  const local = (await get('/status')).json.reads.localHit
  t.match(r.body, /# TYPE chaac_ball_reads_total counter/)
  t.match(r.body, new RegExp(`chaac_ball_reads_total\\{outcome="local_hit",agent="[0-9a-f-]+"\\} ${local}\\n`))
  for (const outcome of ['remote_hit', 'miss', 'skip']) t.match(r.body, new RegExp(`chaac_ball_reads_total\\{outcome="${outcome}"`))
  t.match(r.body, /chaac_bin_capacity_bytes\{bin="[0-9a-f-]+",level="disk",agent="[0-9a-f-]+"\} 4294967296\n/)
  t.match(r.body, /chaac_bin_used_bytes\{/)
  t.match(r.body, /chaac_bin_balls\{/)
  t.match(r.body, /chaac_upload_queue_depth\{agent="[0-9a-f-]+"\} 0\n/)
  t.match(r.body, /chaac_inodes\{agent="[0-9a-f-]+"\} 5\n/)
  t.match(r.body, /chaac_process_cpu_seconds_total/)
})

t.test('GET /api/v1/bins - every bin with usage and context', OPTS, async (t) => {
  const r = await get('/api/v1/bins')
  t.equal(r.status, 200)
  const status = (await get('/status')).json
  t.equal(r.json.bins.length, 2)
  for (const b of r.json.bins) {
    t.match(b.id, /^[0-9a-f-]{36}$/)
    t.equal(b.agent, status.agent.id)
    t.ok(b.used <= b.capacity, `${b.level}: used ${b.used} <= capacity ${b.capacity}`)
    t.equal(b.free, b.capacity - b.used)
    t.ok('context' in b)
    t.equal((await readFile(join(b.dir, '.chaac-bin'), 'utf8')).trim(), b.id, 'the id is the one in the bin directory')
  }
  t.equal(r.json.bins[1].dir, join(agent.data, 'bins', 'disk0'))
})

t.test('GET /api/v1/balls - pages through the map of balls with limit/after/next', OPTS, async (t) => {
  const all = (await get('/api/v1/balls')).json
  t.equal(all.total, 4)
  t.equal(all.balls.length, 4)
  t.equal(all.next, null)
  const diskBin = (await get('/api/v1/bins')).json.bins[1].id
  for (const b of all.balls) {
    t.match(b.id, /^[0-9a-f]{64}$/)
    t.ok(b.bytes > 0, 'size known')
    t.ok(b.refs >= 1)
    t.equal(b.cloud, true, 'write through: in the cloud tier')
    t.ok(b.bins.includes(diskBin))
  }
  const ids: string[] = []
  let after = ''
  let pages = 0
  for (;;) {
    const page = (await get(`/api/v1/balls?limit=2${after ? `&after=${after}` : ''}`)).json
    pages++
    t.ok(page.balls.length <= 2)
    ids.push(...page.balls.map((b: any) => b.id))
    if (page.next === null) break
    t.equal(page.next, page.balls[page.balls.length - 1].id, 'next is the last id of the page')
    after = page.next
  }
  t.equal(pages, 2)
  t.same(ids, all.balls.map((b: any) => b.id), 'pages add up to the whole map, in order, without repeats')
  t.same([...ids].sort(), ids, 'sorted by id')
  const last = (await get(`/api/v1/balls?after=${ids[3]}`)).json
  t.same(last.balls, [])
  t.equal(last.next, null)
  t.equal((await get('/api/v1/balls?limit=1000')).status, 200)
})

t.test('GET /api/v1/location - the balls of a file and the bins holding them', OPTS, async (t) => {
  const r = await get('/api/v1/location?path=/d/big.bin')
  t.equal(r.status, 200)
  const loc = r.json
  t.equal(loc.path, '/d/big.bin')
  t.equal(loc.size, 9 * MiB)
  t.equal(loc.chunkSize, CHUNK)
  t.same(loc.balls.map((b: any) => [b.index, b.offset, b.length, b.hole, b.cloud]),
    [[0, 0, CHUNK, false, true], [1, CHUNK, CHUNK, false, true], [2, 2 * CHUNK, MiB, false, true]])
  for (const b of loc.balls) {
    const disk = b.bins.find((x: any) => x.level === 'disk')
    t.ok(disk, 'a disk bin holds it')
    const file = join(disk.dir, b.id.slice(0, 2), b.id)
    t.ok((await stat(file)).size > b.length, `the ball file ${file} exists (header + data)`)
    t.ok((await stat(join(agent.data, 'cloud', b.id.slice(0, 2), b.id))).isFile(), 'and the cloud tier has it')
  }
  const sparse = (await get(`/api/v1/location?path=${encodeURIComponent('/sparse')}`)).json
  t.same(sparse.balls.map((b: any) => [b.hole, b.id === null, b.bins.length]), [[true, true, 0], [true, true, 0], [false, false, 1]])
  t.equal(sparse.balls[2].length, 1000)
  t.equal(loc.inline, false)
  const relative = (await get('/api/v1/location?path=small.txt')).json
  t.equal(relative.size, 6, 'a path without a leading slash is from the root')
  t.equal(relative.inline, true, 'a small file is kept inline in the data pool')
  t.same(relative.balls, [])
})

t.test('bad parameters get 400 with a JSON error; unknown paths 404', OPTS, async (t) => {
  const cases: Array<[string, number, RegExp]> = [
    ['/api/v1/balls?limit=0', 400, /limit must be between 1 and 1000/],
    ['/api/v1/balls?limit=1001', 400, /limit must be between 1 and 1000/],
    ['/api/v1/balls?limit=abc', 400, /limit must be a whole number/],
    ['/api/v1/balls?limit=-1', 400, /limit must be a whole number/],
    ['/api/v1/balls?limit=', 400, /limit must be a whole number/],
    ['/api/v1/balls?after=xyz', 400, /after must be a ball id/],
    ['/api/v1/balls?after=' + 'A'.repeat(64), 400, /after must be a ball id/],
    ['/api/v1/location', 400, /path is required/],
    ['/api/v1/location?path=', 400, /path is required/],
    ['/api/v1/location?path=/d', 400, /not a regular file/],
    ['/api/v1/location?path=/small.txt/x', 400, /not a directory/],
    ['/api/v1/location?path=/' + 'n'.repeat(300), 400, /name too long/],
    ['/api/v1/location?path=/nope', 404, /no such file/],
    ['/nope', 404, /no such endpoint: \/nope/],
    ['/api/v1', 404, /no such endpoint/],
    ['/api/v1/bins/extra', 404, /no such endpoint/]
  ]
  for (const [path, status, error] of cases) {
    const r = await get(path)
    t.equal(r.status, status, `${path}: ${status}`)
    t.match(r.type, /^application\/json/, `${path}: JSON`)
    t.match(r.json?.error, error, `${path}: error says why`)
  }
  const post = await get('/status', { method: 'POST' })
  t.equal(post.status, 405)
  t.match(post.json.error, /method POST not allowed/)
})

t.test('POST /api/v1/allocation - the bins a new ball would go to; bad bodies are 400', OPTS, async (t) => {
  const ok = await get('/api/v1/allocation', { method: 'POST', body: JSON.stringify({ size: CHUNK }) })
  t.equal(ok.status, 200)
  t.same(ok.json.bins.map((b: any) => b.level), ['disk'], 'new balls go to the durable level')
  for (const body of ['{"size": 0}', '{"size": "4MiB"}', '{"size": 1.5}', 'not json', '[]', 'null']) {
    const r = await get('/api/v1/allocation', { method: 'POST', body })
    t.equal(r.status, 400, `body ${body}`)
    t.type(r.json.error, 'string')
  }
})

t.test('a request URL the parser rejects gets 400, and the agent keeps serving', OPTS, async (t) => {
  const [host, port] = agent.http.split(':')
  const reply = await withDeadline(new Promise<string>((resolve, reject) => {
    let text = ''
    const socket = connect(Number(port), host, () => socket.end('GET //[ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'))
    socket.on('data', (d) => { text += String(d) })
    socket.on('end', () => resolve(text))
    socket.on('error', reject)
  }), 10_000, 'a reply to a malformed URL')
  t.match(reply, /^HTTP\/1\.1 400 /)
  t.match(reply, /"error":/)
  t.equal((await get('/status')).status, 200, 'still serving')
})

t.test('chaac status - a readable summary', OPTS, async (t) => {
  const s = (await get('/status')).json
  const out = await shOk(`${CLI} status --http ${agent.http}`)
  t.match(out, `agent ${s.agent.id} (chaac ${s.agent.version}), up `)
  t.match(out, `chaac path: ${mnt}`)
  t.match(out, /bins:\n\s+mem\s+.* of 64\.0 MiB\s+\d+ balls\s+\S+\n\s+disk\s+.* of 4\.0 GiB\s+4 balls/)
  t.match(out, /ball reads: \d+ local cache hits, 0 remote cache hits, \d+ cache misses, \d+ cache skips/)
  t.match(out, `cloud tier: ${join(agent.data, 'cloud')} (write through, 0 balls queued for upload, 0 in their grace period before deletion)`)
  const json = JSON.parse(await shOk(`${CLI} status --json --http ${agent.http}`))
  t.equal(json.agent.id, s.agent.id)
  const env = await sh(`${CLI} status`, { env: { CHAAC_HTTP: agent.http } })
  t.equal(env.code, 0, 'CHAAC_HTTP is read')
  const none = await sh(`${CLI} status --http 127.0.0.1:1`)
  t.not(none.code, 0)
  t.match(none.stderr, /no agent answers at 127\.0\.0\.1:1/)
})

t.test('chaac locate - the balls of a file and the bins holding them', OPTS, async (t) => {
  const loc = (await get('/api/v1/location?path=/d/big.bin')).json
  const out = await shOk(`${CLI} locate ${join(mnt, 'd', 'big.bin')} --http ${agent.http}`)
  const lines = out.trim().split('\n')
  t.equal(lines[0], '/d/big.bin: 9.0 MiB in 3 balls of up to 4.0 MiB')
  t.equal(lines.length, 4)
  loc.balls.forEach((b: any, i: number) => {
    t.match(lines[i + 1], `#${i} @${b.offset} +${b.length} ${b.id}`)
    t.match(lines[i + 1], `disk:${join(agent.data, 'bins', 'disk0')}`)
    t.match(lines[i + 1], 'cloud tier')
  })
  t.equal(await shOk(`${CLI} locate d/big.bin --http ${agent.http}`, { cwd: mnt }), out, 'a relative path under the chaac path')
  t.equal(await shOk(`${CLI} locate /d/big.bin --http ${agent.http}`), out, 'a path inside the namespace')
  t.match(await shOk(`${CLI} locate /sparse --http ${agent.http}`), /#0 @0 \+4194304 -\s+hole/)
  t.equal(await shOk(`${CLI} locate /small.txt --http ${agent.http}`), '/small.txt: 6 B kept inline in the data pool (no balls)\n')
  const json = JSON.parse(await shOk(`${CLI} locate /d/big.bin --json --http ${agent.http}`))
  t.same(json, loc)
  const missing = await sh(`${CLI} locate ${join(mnt, 'nope')} --http ${agent.http}`)
  t.not(missing.code, 0)
  t.match(missing.stderr, /chaac: \/nope: no such file or directory/)
  const dir = await sh(`${CLI} locate /d --http ${agent.http}`)
  t.not(dir.code, 0)
  t.match(dir.stderr, /not a regular file/)
})

t.test('chaac agent --help - lists every flag with its env variable', OPTS, async (t) => {
  const out = await shOk(`${CLI} agent --help`)
  for (const [flag, env] of [
    ['--data', 'CHAAC_DATA'], ['--mount', 'CHAAC_MOUNT'], ['--http', 'CHAAC_HTTP'], ['--bin', 'CHAAC_BIN'],
    ['--chunk-size', 'CHAAC_CHUNK_SIZE'], ['--write', 'CHAAC_WRITE'], ['--cloud', 'CHAAC_CLOUD'],
    ['--cache-skip-over', 'CHAAC_CACHE_SKIP_OVER'], ['--eviction', 'CHAAC_EVICTION'], ['--attr-timeout', 'CHAAC_ATTR_TIMEOUT'],
    ['--busy-poll', 'CHAAC_BUSY_POLL'], ['--log-level', 'CHAAC_LOG_LEVEL']
  ]) {
    t.match(out, flag, `${flag} is listed`)
    t.match(out, env, `${env} is listed`)
  }
  t.match(await shOk(`${CLI} --help`), /agent .*\n.*status .*\n.*locate/)
})

t.test('chaac agent - a bad flag stops it at start with a message naming the flag', OPTS, async (t) => {
  const root = join(agent.root, 'bad-flags')
  const base = `${CLI} agent --data ${join(root, 'data')} --mount ${join(root, 'mnt')} --http 127.0.0.1:0 --cloud none`
  // Were a bad flag accepted, the agent would mount: clean that up too.
  t.teardown(async () => await unmountLazily(join(root, 'mnt')))
  const cases: Array<[string, NodeJS.ProcessEnv, RegExp]> = [
    ['--bin bogus', {}, /--bin: not a bin: 'bogus' \(expected LEVEL:DIR:CAPACITY/],
    ['--bin tape:/tmp/x:1G', {}, /--bin: not a bin/],
    ['--bin disk:/tmp/x:0', {}, /--bin: .*capacity must be above zero/],
    [`--bin disk:${root}/b:1G --bin mem:${root}/b:1G`, {}, /--bin: two bins use the directory/],
    ['--chunk-size 1x', {}, /--chunk-size: not a size: '1x'/],
    ['--chunk-size 1KiB', {}, /--chunk-size must be between 64KiB and 64MiB/],
    ['--cache-skip-over lots', {}, /--cache-skip-over: not a size: 'lots'/],
    ['--http nowhere', {}, /--http: not HOST:PORT: 'nowhere'/],
    ['--write sometimes', {}, /option '--write <policy>' argument 'sometimes' is invalid.*through, async, none/],
    ['--eviction random', {}, /option '--eviction <policy>' argument 'random' is invalid/],
    ['--attr-timeout soon', {}, /--attr-timeout must be a number of seconds/],
    ['--busy-poll 1.5', {}, /--busy-poll must be a whole number of microseconds from 0 to 10000/],
    ['--busy-poll 20000', {}, /--busy-poll must be a whole number of microseconds/],
    ['', { CHAAC_BUSY_POLL: 'often' }, /--busy-poll must be a whole number of microseconds/],
    ['--log-level loud', {}, /option '--log-level <level>' argument 'loud' is invalid/],
    ['--bogus', {}, /unknown option '--bogus'/],
    ['', { CHAAC_BIN: 'bogus' }, /--bin: not a bin: 'bogus'/],
    ['', { CHAAC_CHUNK_SIZE: '1x' }, /--chunk-size: not a size/]
  ]
  for (const [flags, env, message] of cases) {
    const r = await sh(`${base} ${flags}`, { env, timeoutMs: 30_000 })
    t.not(r.code, 0, `${flags || JSON.stringify(env)}: exits non-zero`)
    t.match(r.stderr, message, `${flags || JSON.stringify(env)}: says what is wrong`)
    t.notMatch(r.stdout, /is running/, 'did not start')
  }
  t.notMatch(await readFile('/proc/self/mountinfo', 'utf8'), join(root, 'mnt'), 'nothing was mounted')
})

t.test('GET /api/v1/location - a small overwrite with fsync is a slice over the chunk\'s ball, its bytes in the data pool', OPTS, async (t) => {
  await shOk(`head -c ${CHUNK + MiB} /dev/urandom > sliced.bin && python3 -c "import os; fd = os.open('sliced.bin', os.O_RDWR); os.pwrite(fd, b'z' * 8192, ${CHUNK + 4096}); os.fsync(fd)"`, { cwd: mnt })
  const sliced = (await get('/api/v1/location?path=/sliced.bin')).json
  t.same(sliced.balls.map((b: any) => b.slices.map((s: any) => [s.at, s.length, s.pooled])), [[], [[4096, 8192, true]]])
  t.match(await shOk(`${CLI} locate ${join(mnt, 'sliced.bin')} --http ${agent.http}`), /slice @4198400 \+8192 [0-9a-f]{64} {2}data pool/)
})
