// The cloud tier on S3-compatible object storage (Ceph RADOS Gateway, MinIO,
// AWS S3). A ball is one object named by its id under the prefix; objects are
// immutable, so a retried or repeated upload is harmless and a ball already
// there is not sent again.
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateBucketCommand, CreateMultipartUploadCommand,
  DeleteObjectCommand, GetObjectCommand, HeadBucketCommand, HeadObjectCommand, PutObjectCommand, S3Client, UploadPartCommand
} from '@aws-sdk/client-s3'
import type { Readable } from 'node:stream'
import { ChaacError } from '../errors.ts'
import type { CloudTier } from './cloud-tier.ts'

export interface S3Spec {
  bucket: string
  /** Empty, or ending in '/'. */
  prefix: string
  /** A self-hosted store's URL; AWS when absent. */
  endpoint?: string
  region: string
  /** Taken from the usual AWS sources (environment, profile) when absent. */
  credentials?: { accessKeyId: string, secretAccessKey: string }
  pathStyle: boolean
  /** Create the bucket at start when it does not exist. */
  createBucket: boolean
  /** Deadline of a read or check, retries included (ms); an upload gets several times this. */
  timeoutMs: number
  /** Balls larger than this go up in parts (default 16 MiB; S3 parts are at least 5 MiB). */
  multipartOver?: number
  partSize?: number
}

// Chaac runs on Node.js 20 and package-lock.json pins an SDK release that
// supports it; the SDK's notice about later releases would only clutter the log.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

const MIB = 1024 * 1024
const UPLOAD_TIMEOUT_FACTOR = 6
const PART_CONCURRENCY = 4

export class S3Cloud implements CloudTier {
  readonly location: string
  private readonly client: S3Client
  private readonly multipartOver: number
  private readonly partSize: number

  constructor (private readonly spec: S3Spec) {
    this.location = `s3://${spec.bucket}/${spec.prefix}` + (spec.endpoint ? ` at ${spec.endpoint}` : '')
    this.multipartOver = spec.multipartOver ?? 16 * MIB
    this.partSize = Math.max(5 * MIB, spec.partSize ?? 8 * MIB)
    this.client = new S3Client({
      region: spec.region,
      endpoint: spec.endpoint,
      forcePathStyle: spec.pathStyle,
      credentials: spec.credentials,
      // Throttling (503 SlowDown) and transient failures are retried with
      // backoff by the SDK's standard mode, within each call's deadline.
      maxAttempts: 5,
      retryMode: 'standard',
      // Every ball carries its own hash tree, checked on read; extra checksums
      // would also make self-hosted stores refuse streamed bodies (411).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: Math.min(5000, spec.timeoutMs), requestTimeout: spec.timeoutMs }
    })
  }

  async open (): Promise<void> {
    const Bucket = this.spec.bucket
    try {
      await this.client.send(new HeadBucketCommand({ Bucket }), this.deadline())
      return
    } catch (err) {
      if (statusOf(err) !== 404) throw this.startError(err)
    }
    if (!this.spec.createBucket) {
      throw new ChaacError('CHAAC_CLOUD_FAILED', `cloud tier ${this.location}: the bucket does not exist (and creating it is turned off)`)
    }
    try {
      // AWS wants the region named for buckets outside us-east-1; self-hosted stores take their default.
      const named = this.spec.endpoint === undefined && this.spec.region !== 'us-east-1'
      await this.client.send(new CreateBucketCommand({
        Bucket, CreateBucketConfiguration: named ? { LocationConstraint: this.spec.region as never } : undefined
      }), this.deadline())
    } catch (err) {
      if (nameOf(err) !== 'BucketAlreadyOwnedByYou') throw this.startError(err, 'cannot create the bucket')
    }
  }

  async has (id: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.spec.bucket, Key: this.key(id) }), this.deadline())
      return true
    } catch (err) {
      if (statusOf(err) === 404) return false
      throw this.failure(err, `cannot check ball ${id}`)
    }
  }

  async put (id: string, header: Buffer, data: Buffer): Promise<void> {
    if (await this.has(id)) return
    const size = header.length + data.length
    try {
      if (size > this.multipartOver) await this.putInParts(id, Buffer.concat([header, data], size))
      else {
        await this.client.send(new PutObjectCommand({
          Bucket: this.spec.bucket, Key: this.key(id), Body: Buffer.concat([header, data], size), ContentLength: size
        }), this.deadline(UPLOAD_TIMEOUT_FACTOR))
      }
    } catch (err) {
      throw this.failure(err, `cannot store ball ${id}`, id)
    }
  }

  async readBall (id: string): Promise<Buffer> {
    return await this.get(id, undefined)
  }

  async readRaw (id: string, start: number, length: number, into?: Buffer): Promise<Buffer> {
    if (length <= 0) return Buffer.alloc(0)
    return await this.get(id, { start, length, into })
  }

  async delete (id: string): Promise<void> {
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.spec.bucket, Key: this.key(id) }), this.deadline())
    } catch (err) {
      throw this.failure(err, `cannot delete ball ${id}`, id)
    }
  }

  async close (): Promise<void> {
    this.client.destroy()
  }

  private async get (id: string, range: { start: number, length: number, into?: Buffer } | undefined): Promise<Buffer> {
    const opts = this.deadline()
    try {
      const res = await this.client.send(new GetObjectCommand({
        Bucket: this.spec.bucket,
        Key: this.key(id),
        Range: range && `bytes=${range.start}-${range.start + range.length - 1}`
      }), opts)
      const body = res.Body as Readable
      const expected = res.ContentLength ?? range?.length ?? 0
      const into = range?.into !== undefined && range.into.length >= expected ? range.into : Buffer.allocUnsafe(expected)
      return await readInto(body, into, opts.abortSignal)
    } catch (err) {
      // A range wholly past the end: nothing there, as a short read.
      if (range && statusOf(err) === 416) return Buffer.alloc(0)
      if (statusOf(err) === 404) throw new ChaacError('CHAAC_BALL_MISSING', `cloud tier ${this.location}: no ball ${id}`, { cause: err, ball: id })
      throw this.failure(err, `cannot read ball ${id}`, id)
    }
  }

  private async putInParts (id: string, body: Buffer): Promise<void> {
    const Bucket = this.spec.bucket
    const Key = this.key(id)
    const opts = this.deadline(UPLOAD_TIMEOUT_FACTOR)
    const { UploadId } = await this.client.send(new CreateMultipartUploadCommand({ Bucket, Key }), opts)
    try {
      const count = Math.ceil(body.length / this.partSize)
      const etags: string[] = new Array(count)
      let next = 0
      const worker = async (): Promise<void> => {
        while (next < count) {
          const n = next++
          const part = body.subarray(n * this.partSize, (n + 1) * this.partSize)
          const res = await this.client.send(new UploadPartCommand({
            Bucket, Key, UploadId, PartNumber: n + 1, Body: part, ContentLength: part.length
          }), opts)
          etags[n] = res.ETag ?? ''
        }
      }
      await Promise.all(Array.from({ length: Math.min(PART_CONCURRENCY, count) }, worker))
      await this.client.send(new CompleteMultipartUploadCommand({
        Bucket, Key, UploadId, MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) }
      }), opts)
    } catch (err) {
      await this.client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId }), this.deadline()).catch(() => {})
      throw err
    }
    // Some stores (radosgw 16) answer the completion without an ETag: check the object itself.
    const head = await this.client.send(new HeadObjectCommand({ Bucket, Key }), this.deadline())
    if (head.ContentLength !== body.length) {
      throw new ChaacError('CHAAC_CLOUD_FAILED', `cloud tier ${this.location}: ball ${id} stored with ${head.ContentLength} bytes, not ${body.length}`, { ball: id })
    }
  }

  private key (id: string): string {
    return this.spec.prefix + id
  }

  private deadline (factor = 1): { abortSignal: AbortSignal } {
    return { abortSignal: AbortSignal.timeout(this.spec.timeoutMs * factor) }
  }

  private failure (err: unknown, what: string, ball?: string): ChaacError {
    if (err instanceof ChaacError) return err.ball !== undefined || ball === undefined ? err : new ChaacError(err.code, err.message, { cause: err, ball })
    const timedOut = nameOf(err) === 'TimeoutError' || nameOf(err) === 'AbortError'
    return new ChaacError(timedOut ? 'CHAAC_TIMEOUT' : 'CHAAC_CLOUD_FAILED',
      `cloud tier ${this.location}: ${what}: ${timedOut ? `no answer within ${this.spec.timeoutMs} ms` : describe(err)}`, { cause: err, ball })
  }

  private startError (err: unknown, what = 'cannot use the bucket'): ChaacError {
    const status = statusOf(err)
    const why = status === 403 || nameOf(err) === 'InvalidAccessKeyId' || nameOf(err) === 'SignatureDoesNotMatch'
      ? 'the store refused the credentials (check CHAAC_S3_ACCESS_KEY/CHAAC_S3_SECRET_KEY or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)'
      : status === undefined
        ? `cannot reach the store: ${nameOf(err) === 'TimeoutError' || nameOf(err) === 'AbortError' ? `no answer within ${this.spec.timeoutMs} ms` : describe(err)}`
        : describe(err)
    return new ChaacError('CHAAC_CLOUD_FAILED', `cloud tier ${this.location}: ${what}: ${why}`, { cause: err })
  }
}

// Reads a response body into `into`; the deadline also covers the body.
async function readInto (body: Readable, into: Buffer, signal: AbortSignal): Promise<Buffer> {
  let at = 0
  const onAbort = (): void => { body.destroy(new ChaacError('CHAAC_TIMEOUT', 'the body did not arrive in time')) }
  signal.addEventListener('abort', onAbort, { once: true })
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      if (at + chunk.length > into.length) {
        throw new ChaacError('CHAAC_CLOUD_FAILED', `the store sent more than the ${into.length} bytes it announced`)
      }
      chunk.copy(into, at)
      at += chunk.length
    }
  } finally {
    signal.removeEventListener('abort', onAbort)
  }
  return into.subarray(0, at)
}

function statusOf (err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode
}

function nameOf (err: unknown): string | undefined {
  return (err as { name?: string })?.name
}

function describe (err: unknown): string {
  const e = err as { name?: string, message?: string, code?: string }
  const status = statusOf(err)
  const text = e.message !== undefined && e.message !== '' && e.message !== 'UnknownError' ? e.message : e.name ?? String(err)
  return [status !== undefined ? `HTTP ${status}` : e.code, text].filter((x) => x !== undefined).join(' ')
}
