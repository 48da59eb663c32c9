// The S3 cloud tier adapter against a real Ceph RADOS Gateway: the cloud
// tier contract, multipart, start-up checks, throttling, a hanging store and
// a store that goes down and comes back.
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import { S3Cloud, type S3Spec } from '../../src/cloud/s3-cloud.ts'
import { isChaacError } from '../../src/errors.ts'
import { encodeBall } from '../../src/store/ball-codec.ts'
import { startCeph, type CephGateway } from '../helpers/ceph.ts'
import { cloudTierContract } from '../helpers/cloud-contract.ts'
import { startS3Proxy } from '../helpers/s3-proxy.ts'

const MiB = 1024 * 1024

let ceph: CephGateway
t.before(async () => { ceph = await startCeph() })
t.teardown(async () => await ceph?.stop())

let bucketSeq = 0
function spec (over: Partial<S3Spec> = {}): S3Spec {
  return {
    bucket: `unit-${process.pid}-${++bucketSeq}`,
    prefix: 'balls/',
    endpoint: ceph.endpoint,
    region: ceph.region,
    credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
    pathStyle: true,
    createBucket: true,
    timeoutMs: 5000,
    ...over
  }
}

async function opened (t: Test, over: Partial<S3Spec> = {}): Promise<S3Cloud> {
  const cloud = new S3Cloud(spec(over))
  await cloud.open()
  t.teardown(async () => await cloud.close())
  return cloud
}

t.test('s3 cloud - the cloud tier contract', async (t) => {
  await cloudTierContract(t, await opened(t))
})

t.test('s3 cloud - balls are objects named by id under the prefix; a ball already there is not sent again', async (t) => {
  const proxy = await startS3Proxy(ceph.endpoint)
  t.teardown(proxy.close)
  const s = spec({ endpoint: proxy.endpoint, prefix: 'some/where/' })
  const cloud = new S3Cloud(s)
  await cloud.open()
  t.teardown(async () => await cloud.close())
  const data = randomBytes(100_000)
  const { id, header } = encodeBall(data)
  await cloud.put(id, header, data)
  const before = proxy.stats.requests
  await cloud.put(id, header, data)
  t.equal(proxy.stats.requests - before, 1, 'the second put only asked whether the ball is there')
  const s3 = new S3Client({ endpoint: ceph.endpoint, region: ceph.region, forcePathStyle: true, credentials: s.credentials })
  t.teardown(() => s3.destroy())
  const listed = await s3.send(new ListObjectsV2Command({ Bucket: s.bucket }))
  t.same(listed.Contents?.map((o) => [o.Key, o.Size]), [[`some/where/${id}`, header.length + data.length]])
})

t.test('s3 cloud - a large ball goes up in parts and reads back across part boundaries', async (t) => {
  const cloud = await opened(t, { multipartOver: 6 * MiB, partSize: 5 * MiB })
  const data = randomBytes(12 * MiB)
  const { id, header } = encodeBall(data)
  await cloud.put(id, header, data)
  const whole = await cloud.readBall(id)
  t.ok(whole.equals(Buffer.concat([header, data])), 'the whole ball, byte for byte')
  const at = 5 * MiB - header.length - 100
  t.ok((await cloud.readRaw(id, header.length + at, 300)).equals(data.subarray(at, at + 300)), 'a range across the first part boundary')
})

t.test('s3 cloud - start-up checks fail clearly and in bounded time', async (t) => {
  const created = new S3Cloud(spec())
  await created.open()
  await created.close()
  t.pass('a missing bucket is created')

  const noCreate = new S3Cloud(spec({ createBucket: false }))
  await t.rejects(noCreate.open(), { code: 'CHAAC_CLOUD_FAILED', message: /bucket does not exist/ })
  await noCreate.close()

  const badKey = new S3Cloud(spec({ credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: 'wrong-secret' } }))
  await t.rejects(badKey.open(), { code: 'CHAAC_CLOUD_FAILED', message: /refused the credentials/ })
  await badKey.close()

  const started = Date.now()
  const nowhere = new S3Cloud(spec({ endpoint: 'http://127.0.0.1:9', timeoutMs: 2000 }))
  await t.rejects(nowhere.open(), { code: 'CHAAC_CLOUD_FAILED', message: /cannot reach the store/ })
  await nowhere.close()
  t.ok(Date.now() - started < 15_000, `an unreachable endpoint is reported within the deadline (${Date.now() - started} ms)`)
})

t.test('s3 cloud - throttling (503 SlowDown) is retried', async (t) => {
  const proxy = await startS3Proxy(ceph.endpoint)
  t.teardown(proxy.close)
  const cloud = await opened(t, { endpoint: proxy.endpoint })
  const data = randomBytes(50_000)
  const { id, header } = encodeBall(data)
  proxy.slowDown(2)
  await cloud.put(id, header, data)
  t.equal(proxy.stats.slowedDown, 2, 'two answers were SlowDown')
  proxy.slowDown(2)
  t.ok((await cloud.readBall(id)).subarray(header.length).equals(data), 'the read went through after SlowDown')
  t.equal(proxy.stats.slowedDown, 4)
})

t.test('s3 cloud - a store that takes requests and never answers fails the read with EIO within the deadline', async (t) => {
  const proxy = await startS3Proxy(ceph.endpoint)
  t.teardown(proxy.close)
  const cloud = await opened(t, { endpoint: proxy.endpoint, timeoutMs: 1500 })
  const data = randomBytes(50_000)
  const { id, header } = encodeBall(data)
  await cloud.put(id, header, data)
  proxy.hang(true)
  const started = Date.now()
  const err = await cloud.readRaw(id, 0, 1000).then(() => undefined, (e: unknown) => e)
  const took = Date.now() - started
  t.ok(isChaacError(err) && err.errno === 'EIO', `an EIO error (${String(err)})`)
  t.ok(took < 1500 + 3000, `within the deadline (${took} ms for a 1500 ms deadline)`)
  proxy.hang(false)
  t.ok((await cloud.readRaw(id, header.length, 1000)).equals(data.subarray(0, 1000)), 'answers again once the store does')
})

t.test('s3 cloud - the gateway down: EIO within the deadline; back up: reads work without a restart', async (t) => {
  const cloud = await opened(t, { timeoutMs: 2000 })
  const data = randomBytes(70_000)
  const { id, header } = encodeBall(data)
  await cloud.put(id, header, data)
  await ceph.stopGateway()
  const started = Date.now()
  const err = await cloud.readBall(id).then(() => undefined, (e: unknown) => e)
  t.ok(isChaacError(err) && err.errno === 'EIO', `an EIO error (${String(err)})`)
  t.ok(Date.now() - started < 2000 + 3000, `failed within the deadline (${Date.now() - started} ms)`)
  await ceph.startGateway()
  t.ok((await cloud.readBall(id)).subarray(header.length).equals(data))
})
