// Agents whose cloud tier is a real Ceph RADOS Gateway: every write policy,
// the upload queue across kill -9, a cold agent served from S3 alone, the
// store going down and coming back, garbage collection, start-up errors.
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { cleanupAgent, sh, shOk, startAgent, type RunningAgent } from '../helpers/agent.ts'
import { startCeph, type CephGateway } from '../helpers/ceph.ts'
import { startS3Proxy } from '../helpers/s3-proxy.ts'
import { waitFor } from '../helpers/wait.ts'

let ceph: CephGateway
let s3: S3Client
t.before(async () => {
  ceph = await startCeph()
  s3 = new S3Client({
    endpoint: ceph.endpoint, region: ceph.region, forcePathStyle: true, credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey }
  })
})
t.teardown(async () => {
  s3?.destroy()
  await ceph?.stop()
})

let bucketSeq = 0
const newBucket = (): string => `agent-${process.pid}-${++bucketSeq}`

function s3Args (bucket: string, endpoint = ceph.endpoint, extra: string[] = []): { args: string[], env: NodeJS.ProcessEnv } {
  return {
    args: ['--cloud', `s3://${bucket}/chaac`, '--s3-endpoint', endpoint, ...extra],
    env: { CHAAC_S3_ACCESS_KEY: ceph.accessKeyId, CHAAC_S3_SECRET_KEY: ceph.secretAccessKey, CHAAC_S3_REGION: ceph.region }
  }
}

async function agentOn (t: Test, bucket: string, extra: string[] = [], opts: { data?: string, endpoint?: string } = {}): Promise<RunningAgent> {
  const agent = await startAgent({ ...s3Args(bucket, opts.endpoint, extra), data: opts.data })
  t.teardown(async () => await cleanupAgent(agent, opts.data === undefined))
  return agent
}

/** Stops the agent and empties its bins, so that only LevelDB and the cloud tier remain. */
async function stopAndEmptyBins (agent: RunningAgent): Promise<void> {
  await agent.stop()
  await rm(join(agent.root, 'shm'), { recursive: true, force: true })
  await rm(join(agent.data, 'bins'), { recursive: true, force: true })
}

async function objects (bucket: string): Promise<Set<string>> {
  const keys = new Set<string>()
  let token: string | undefined
  do {
    const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket, ContinuationToken: token }))
    for (const o of page.Contents ?? []) keys.add((o.Key ?? '').replace(/^chaac\//, ''))
    token = page.NextContinuationToken
  } while (token !== undefined)
  return keys
}

async function ballsOf (agent: RunningAgent, path: string): Promise<string[]> {
  const loc = await agent.json(`/api/v1/location?path=${encodeURIComponent(path)}`)
  return loc.balls.map((b: { id: string | null }) => b.id).filter((id: string | null) => id !== null)
}

const sums = async (mount: string): Promise<string> => await shOk('find . -type f | sort | xargs -d "\\n" sha256sum', { cwd: mount })

t.test('through: close returns once the balls are objects; a cold agent serves every file from S3 alone', async (t) => {
  const bucket = newBucket()
  const a = await agentOn(t, bucket, ['--write', 'through'])
  await shOk('head -c 20000000 /dev/urandom > big && echo hello > small && mkdir d && cp big d/copy && head -c 5000 /dev/urandom > d/odd', { cwd: a.mount })
  const stored = await objects(bucket)
  for (const f of ['/big', '/d/copy', '/d/odd']) {
    const balls = await ballsOf(a, f)
    t.ok(balls.length > 0 && balls.every((id) => stored.has(id)), `every ball of ${f} is an object when close returned`)
  }
  // A tiny file lives in the data pool with its inode (as the namespace does), not in the bucket.
  t.equal((await a.json('/api/v1/location?path=/small')).inline, true, '/small is kept inline')
  t.equal((await ballsOf(a, '/big')).length, 5, 'a 20 MB file is 5 balls')
  const before = await sums(a.mount)

  await stopAndEmptyBins(a)
  const cold = await agentOn(t, bucket, [], { data: a.data })
  t.equal(await sums(cold.mount), before, 'byte for byte, from the cloud tier alone')
  const status = await cold.json('/status')
  t.ok(status.reads.miss >= 6, `reads were cache misses (${status.reads.miss})`)
  t.match(status.cloud.location, `s3://${bucket}/chaac/`)
})

t.test('async: the upload queue is in /status and /metrics, survives kill -9 and resumes; nothing acknowledged is lost', async (t) => {
  const bucket = newBucket()
  const proxy = await startS3Proxy(ceph.endpoint)
  t.teardown(proxy.close)
  const a = await startAgent({ ...s3Args(bucket, proxy.endpoint, ['--write', 'async']) })
  t.teardown(async () => await cleanupAgent(a, false))
  t.teardown(async () => await rm(a.root, { recursive: true, force: true }))
  // The store takes the uploads and never answers: they stay queued.
  proxy.hang(true)
  await shOk('for i in 1 2 3 4 5 6; do head -c 3000000 /dev/urandom > f$i; done', { cwd: a.mount })
  const queued = (await a.json('/status')).cloud.uploadQueue
  t.equal(queued, 6, 'six balls wait for upload')
  const metrics = await (await fetch(a.url + '/metrics')).text()
  t.match(metrics, /^chaac_upload_queue_depth\{agent="[^"]+"\} 6$/m)
  const before = await sums(a.mount)
  await a.kill9()

  proxy.hang(false)
  const b = await agentOn(t, bucket, ['--write', 'async'], { data: a.data, endpoint: proxy.endpoint })
  await waitFor(async () => (await b.json('/status')).cloud.uploadQueue === 0, { timeoutMs: 60_000, what: 'the upload queue to drain after the restart' })
  const stored = await objects(bucket)
  for (let i = 1; i <= 6; i++) t.ok((await ballsOf(b, `/f${i}`)).every((id) => stored.has(id)), `f${i} reached the store`)
  await stopAndEmptyBins(b)
  const cold = await agentOn(t, bucket, [], { data: a.data })
  t.equal(await sums(cold.mount), before, 'every closed file, byte for byte, from S3')
})

t.test('the store down: misses fail with EIO within the deadline, local hits and async writes go on, and all recovers without a restart', async (t) => {
  const bucket = newBucket()
  const a = await agentOn(t, bucket, ['--write', 'through'])
  await shOk('head -c 3000000 /dev/urandom > cached && head -c 3000000 /dev/urandom > remote', { cwd: a.mount })
  const want = await sums(a.mount)
  await stopAndEmptyBins(a)
  const b = await agentOn(t, bucket, ['--write', 'async', '--cloud-timeout', '2'], { data: a.data })
  await shOk('cat cached > /dev/null', { cwd: b.mount })

  await ceph.stopGateway()
  const started = Date.now()
  const miss = await sh('cat remote > /dev/null', { cwd: b.mount, timeoutMs: 60_000 })
  const took = Date.now() - started
  t.not(miss.code, 0, 'a cache miss fails')
  t.match(miss.stderr, /Input\/output error/, 'with EIO')
  t.ok(took < 20_000, `within the deadline, no hang (${took} ms)`)
  await shOk('cat cached > /dev/null', { cwd: b.mount })
  t.pass('a local cache hit is served')
  await shOk('head -c 100000 /dev/urandom > during', { cwd: b.mount })
  t.ok((await b.json('/status')).cloud.uploadQueue > 0, 'an async write is acknowledged and queued')

  await ceph.startGateway()
  t.equal(await shOk('sha256sum ./remote', { cwd: b.mount }), want.split('\n').find((l) => l.endsWith('remote')) + '\n', 'the miss works again')
  await waitFor(async () => (await b.json('/status')).cloud.uploadQueue === 0, { timeoutMs: 90_000, what: 'the queued upload to go through (with backoff)' })
  t.pass('the queue drained')
})

t.test('garbage: a ball no file references is deleted from S3 after the grace period; referenced ones never', async (t) => {
  const bucket = newBucket()
  const a = await agentOn(t, bucket, ['--write', 'through', '--cloud-gc-grace', '2'])
  await shOk('head -c 6000000 /dev/urandom > doomed && head -c 100 /dev/urandom > kept', { cwd: a.mount })
  const doomed = await ballsOf(a, '/doomed')
  const kept = await ballsOf(a, '/kept')
  await shOk('rm doomed', { cwd: a.mount })
  const right = await objects(bucket)
  t.ok(doomed.every((id) => right.has(id)), 'still there during the grace period')
  await waitFor(async () => { const now = await objects(bucket); return doomed.every((id) => !now.has(id)) }, { timeoutMs: 30_000, what: 'the garbage to go' })
  const after = await objects(bucket)
  t.ok(kept.every((id) => right.has(id) && after.has(id)), 'the referenced ball stays')
})

t.test('garbage under concurrent writes: the same content written, deleted and written again never loses a referenced ball', async (t) => {
  const bucket = newBucket()
  const a = await agentOn(t, bucket, ['--write', 'through', '--cloud-gc-grace', '0.2'])
  await shOk('for i in 0 1 2; do head -c 300000 /dev/urandom > seed$i; done', { cwd: a.mount })
  // Writers copy the seeds over and over while others delete the copies: the
  // same three balls lose their last reference and gain a new one all the time.
  await shOk(`
    end=$((SECONDS + 8))
    for w in 1 2 3; do
      ( while [ $SECONDS -lt $end ]; do
          for i in 0 1 2; do cp seed$i w$w-$i; done
          rm -f w$w-*
        done
        for i in 0 1 2; do cp seed$i w$w-$i; done ) &
    done
    wait`, { cwd: a.mount, timeoutMs: 60_000 })
  const want = await sums(a.mount)
  // Let every grace period end and the collector run.
  await waitFor(async () => (await a.json('/status')).cloud.garbage === 0, { timeoutMs: 30_000, what: 'the collector to finish' })
  const stored = await objects(bucket)
  const referenced = new Set<string>()
  for (const f of want.trim().split('\n').map((l) => l.slice(66).replace(/^\./, ''))) for (const id of await ballsOf(a, f)) referenced.add(id)
  t.equal(referenced.size, 3, 'three distinct balls are referenced')
  t.ok([...referenced].every((id) => stored.has(id)), 'every referenced ball is in the store')
  await stopAndEmptyBins(a)
  const cold = await agentOn(t, bucket, [], { data: a.data })
  t.equal(await sums(cold.mount), want, 'and reads back from S3 alone')
})

t.test('start-up: a wrong endpoint, bad credentials or a missing bucket stop the agent with a clear message', async (t) => {
  const fails = async (extra: { args: string[], env: NodeJS.ProcessEnv }, message: RegExp, what: string): Promise<void> => {
    const err = await startAgent(extra).then(async (a) => { await cleanupAgent(a); return undefined }, (e: Error) => e)
    t.match(err?.message, message, what)
  }
  await fails(s3Args(newBucket(), 'http://127.0.0.1:9', ['--cloud-timeout', '2']), /cannot reach the store/, 'wrong endpoint')
  const bad = s3Args(newBucket())
  await fails({ ...bad, env: { ...bad.env, CHAAC_S3_SECRET_KEY: 'not-the-secret' } }, /refused the credentials/, 'bad credentials')
  await fails(s3Args(newBucket(), ceph.endpoint, ['--s3-create-bucket', 'off']), /bucket does not exist/, 'missing bucket, creation off')
  await fails(s3Args('Not_A_Bucket'), /not a valid bucket name/, 'a bad bucket name')
})
