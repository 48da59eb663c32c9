// The direct-read limit bench/s3.ts holds the chaac mount against: the objects
// of one file read with the AWS SDK, one GET after the other in file order,
// each body streamed to nowhere. A process of its own, as the agent is.
//
//   node --import tsx bench/lib/s3-read.ts ENDPOINT BUCKET KEYS.json
//
// Keys come from CHAAC_S3_ACCESS_KEY, CHAAC_S3_SECRET_KEY and CHAAC_S3_REGION,
// as for the agent. Prints {"objects", "bytes", "ms", "cpuMs"} as JSON: the
// GETs alone; the client is set up and connected (HeadBucket) before the
// clock starts, as the agent's is by its start-up check.
import { GetObjectCommand, HeadBucketCommand, S3Client } from '@aws-sdk/client-s3'
import { readFile } from 'node:fs/promises'
import type { Readable } from 'node:stream'

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true'

const [endpoint, bucket, keysFile] = process.argv.slice(2)
if (keysFile === undefined) throw new Error('usage: s3-read.ts ENDPOINT BUCKET KEYS.json')
const keys = JSON.parse(await readFile(keysFile, 'utf8')) as string[]

// The agent's client settings (src/cloud/s3-cloud.ts): path-style requests,
// checksums only where the API requires them.
const client = new S3Client({
  endpoint,
  region: process.env.CHAAC_S3_REGION ?? 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: process.env.CHAAC_S3_ACCESS_KEY ?? '', secretAccessKey: process.env.CHAAC_S3_SECRET_KEY ?? '' },
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED'
})
await client.send(new HeadBucketCommand({ Bucket: bucket }))

const cpu0 = process.cpuUsage()
const t0 = performance.now()
let bytes = 0
for (const Key of keys) {
  const res = await client.send(new GetObjectCommand({ Bucket: bucket, Key }))
  for await (const chunk of res.Body as Readable) bytes += (chunk as Buffer).length
}
const ms = performance.now() - t0
const cpu = process.cpuUsage(cpu0)
client.destroy()
console.log(JSON.stringify({ objects: keys.length, bytes, ms, cpuMs: (cpu.user + cpu.system) / 1000 }))
