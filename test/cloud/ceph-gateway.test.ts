// The object store the cloud tests run against (test/helpers/ceph.ts): a
// one-node Ceph cluster with a RADOS Gateway answers plain S3 calls, goes
// down and comes back with its data on the same port, and leaves no process
// or folder behind.
import {
  CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand, DeleteObjectsCommand,
  GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client, UploadPartCommand
} from '@aws-sdk/client-s3'
import { randomBytes } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import t from 'tap'
import { startCeph } from '../helpers/ceph.ts'

const MiB = 1024 * 1024

t.test('ceph gateway - S3 calls, the gateway going down and coming back, a clean stop', { timeout: 180_000 }, async (t) => {
  const ceph = await startCeph({ memstoreBytes: 256 * MiB })
  t.teardown(ceph.stop)
  t.equal(ceph.pids.length, 3, 'monitor, OSD and gateway run')
  const s3 = new S3Client({
    endpoint: ceph.endpoint,
    region: ceph.region,
    credentials: { accessKeyId: ceph.accessKeyId, secretAccessKey: ceph.secretAccessKey },
    forcePathStyle: true,
    // radosgw 16.2 answers 411 to the SDK's default streamed, checksummed uploads.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // No retries: a GET while the gateway is down fails at once.
    maxAttempts: 1
  })
  t.teardown(() => s3.destroy())
  const Bucket = 'smoke'
  await s3.send(new CreateBucketCommand({ Bucket }))

  const small = randomBytes(100_000)
  await s3.send(new PutObjectCommand({ Bucket, Key: 'small', Body: small }))
  const range = await s3.send(new GetObjectCommand({ Bucket, Key: 'small', Range: 'bytes=1000-1999' }))
  t.same(Buffer.from(await range.Body!.transformToByteArray()), small.subarray(1000, 2000), 'a ranged GET')

  const parts = [randomBytes(5 * MiB), randomBytes(5 * MiB)]
  const { UploadId } = await s3.send(new CreateMultipartUploadCommand({ Bucket, Key: 'big' }))
  const done = await Promise.all(parts.map(async (Body, i) => {
    const { ETag } = await s3.send(new UploadPartCommand({ Bucket, Key: 'big', UploadId, PartNumber: i + 1, Body }))
    return { ETag, PartNumber: i + 1 }
  }))
  await s3.send(new CompleteMultipartUploadCommand({ Bucket, Key: 'big', UploadId, MultipartUpload: { Parts: done } }))
  const head = await s3.send(new HeadObjectCommand({ Bucket, Key: 'big' }))
  t.equal(head.ContentLength, 10 * MiB, 'HeadObject of the multipart upload')
  const tail = await s3.send(new GetObjectCommand({ Bucket, Key: 'big', Range: `bytes=${5 * MiB - 10}-${5 * MiB + 9}` }))
  t.same(Buffer.from(await tail.Body!.transformToByteArray()), Buffer.concat(parts).subarray(5 * MiB - 10, 5 * MiB + 10), 'bytes across the part boundary')

  await s3.send(new PutObjectCommand({ Bucket, Key: 'gone', Body: 'x' }))
  const deleted = await s3.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: [{ Key: 'big' }, { Key: 'gone' }] } }))
  t.equal(deleted.Deleted?.length, 2, 'DeleteObjects')
  const listed = await s3.send(new ListObjectsV2Command({ Bucket }))
  t.same(listed.Contents?.map((o) => o.Key), ['small'], 'only the object not deleted is left')

  await ceph.stopGateway()
  t.equal(ceph.pids.length, 2, 'the gateway alone is down')
  const t0 = performance.now()
  await t.rejects(s3.send(new GetObjectCommand({ Bucket, Key: 'small' })), 'a GET fails while the gateway is down')
  t.ok(performance.now() - t0 < 5000, 'and fails fast')

  await ceph.startGateway()
  const again = await s3.send(new GetObjectCommand({ Bucket, Key: 'small' }))
  t.same(Buffer.from(await again.Body!.transformToByteArray()), small, 'the data is back with the gateway, on the same endpoint')

  const pids = ceph.pids
  await ceph.stop()
  t.same(ceph.pids, [], 'stop leaves no daemon')
  t.same(pids.filter((pid) => alive(pid)), [], 'not one of its processes runs')
  await t.rejects(stat(ceph.dir), { code: 'ENOENT' }, 'its temporary folder is removed')
})

t.test('ceph gateway - a taken port fails the start at once', { timeout: 30_000 }, async (t) => {
  // Another server there would answer the readiness probe in the gateway's place.
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => server.close())
  const port = (server.address() as AddressInfo).port
  await t.rejects(startCeph({ port }), { message: `port ${port} on 127.0.0.1 is taken: listen EADDRINUSE: address already in use 127.0.0.1:${port}` }, 'a clear error, no cluster started')
})

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}
