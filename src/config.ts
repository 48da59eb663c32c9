// The agent's settings: their defaults (the embedded default: everything
// under the project) and the checks on what users pass in.
import { createHash } from 'node:crypto'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BinSpec, EvictionPolicy, Level } from './store/bin.ts'
import { LEVELS } from './store/bin.ts'
import type { WritePolicy } from './balls/types.ts'
import type { S3Spec } from './cloud/s3-cloud.ts'
import type { Policy } from './placement/types.ts'
import type { EtcdSpec } from './meta/etcd-client.ts'
import type { GivenSettings } from './meta/settings.ts'
import { isLoopback } from './net/peer-server.ts'
import { parseSize } from './units.ts'

export const PROJECT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..')

export interface AgentConfig {
  data: string
  mount: string
  http: { host: string, port: number }
  bins: BinSpec[]
  chunkSize: number
  writePolicy: WritePolicy
  /** The cloud tier; none when absent. */
  cloud?: CloudSpec
  /** How long a ball no file references keeps its cloud copy (ms). */
  cloudGcGraceMs: number
  cacheSkipOver: number
  /** Files up to this size are kept inline in the data pool, not in balls (0: never). */
  inlineMax: number
  eviction: EvictionPolicy
  attrTimeout: number
  /** Microseconds the FUSE loop keeps reading for the next request before it sleeps (0: never). */
  busyPollUs: number
  contextIntervalMs: number
  cluster: ClusterConfig
  /** How often the cluster's history is sampled (ms). */
  historyIntervalMs: number
  /** --auto-bins: launch a disk bin of `capacity` when the disk bins are fuller than `fill` together. */
  autoBins?: { fill: number, capacity: number }
  /** The bearer token that allows changes through the HTTP API (PUT /api/v1/scheme); none: read-only. */
  adminToken?: string
  /** The name Docker knows this agent's volume driver by (docker volume create -d NAME); none: no driver. */
  volumeDriver?: string
  /** Whether the agent makes the folder that holds the chaac path a shared mount when it is private (default true). */
  shareFolder?: boolean
  /**
   * Which of the cluster's settings the user gave (the others come from the
   * settings stored in the engine, when it has some), and the cloud tier a
   * stored cloud setting stands for on this agent.
   */
  settings?: { given: GivenSettings, cloudFor: (setting: string) => CloudSpec | undefined }
}

/**
 * `single`: one agent alone, no peer port. `pool`: runs the data pool for the
 * cluster. `join`: keeps a replica of the data pool of the agent at `pool`.
 * `etcd`: the metadata lives in etcd (`meta`), every agent equal.
 */
export interface ClusterConfig {
  role: 'single' | 'pool' | 'join' | 'etcd'
  /** ws://HOST:PORT of the pool agent (role `join`). */
  pool?: string
  /** The etcd cluster that keeps the metadata (role `etcd`). */
  meta?: EtcdSpec
  /** Where this agent listens for peers (roles `pool` and `join`). */
  listen: { host: string, port: number }
  secret?: string
  /** Copies of each new ball, on distinct hosts (fewer while fewer hosts are alive). */
  replicas: number
  /** The allocator policy that places new balls. */
  policy: Policy
  /** How long an agent may be gone before the pool copies its balls again elsewhere (ms). */
  rereplicateAfterMs: number
  /** Deadline of a request to a peer (ms); a streamed ball gets more by its size. */
  peerTimeoutMs: number
}

export type CloudSpec = { kind: 'dir', dir: string } | ({ kind: 's3' } & S3Spec)

export const WRITE_POLICIES: readonly WritePolicy[] = ['through', 'async', 'none']
export const EVICTION_POLICIES: readonly EvictionPolicy[] = ['lru', 'lfu']

export const DEFAULTS = {
  data: join(PROJECT_DIR, 'data'),
  mount: join(PROJECT_DIR, 'mount'),
  http: '127.0.0.1:7070',
  listen: '127.0.0.1:7071',
  chunkSize: '4MiB',
  write: 'async',
  cacheSkipOver: '1TiB',
  inlineMax: '4KiB',
  busyPoll: '150',
  eviction: 'lru',
  memBin: '256MiB',
  diskBin: '16GiB',
  cloudTimeout: '10',
  cloudGcGrace: '3600',
  replicas: '2',
  policy: 'context',
  rereplicateAfter: '60',
  peerTimeout: '5',
  autoBinsCapacity: '1GiB',
  volumeDriver: 'chaac'
} as const

/** Where the S3 settings come from when no flag gives them: the usual AWS variables. */
export interface S3Settings {
  endpoint?: string
  region?: string
  accessKey?: string
  secretKey?: string
  /** 'on', 'off', or absent: on for a self-hosted store (an endpoint is set), off for AWS. */
  pathStyle?: string
  createBucket?: string
}

/**
 * `--cloud`: a directory, `none`, or `s3://BUCKET[/PREFIX]`. A bucket takes
 * its endpoint, region and credentials from `s3` (flags, CHAAC_S3_*), then
 * from the usual AWS variables in `env`.
 */
export function parseCloud (text: string, s3: S3Settings, timeoutMs: number, env: NodeJS.ProcessEnv = {}): CloudSpec | undefined {
  if (text === 'none') return undefined
  if (!/^[a-z0-9]+:\/\//i.test(text)) return { kind: 'dir', dir: resolve(text) }
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(text)
  if (!m) throw new RangeError(`not a cloud tier: '${text}' (expected a directory, none, or s3://BUCKET[/PREFIX])`)
  const bucket = m[1]
  // S3's bucket naming rules: 3-63 of a-z, 0-9, '.', '-', starting and ending with a letter or digit.
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new RangeError(`'${bucket}' is not a valid bucket name (3-63 characters: lowercase letters, digits, '.' and '-')`)
  }
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '')
  const endpoint = s3.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL
  if (endpoint !== undefined) {
    let url: URL | undefined
    try { url = new URL(endpoint) } catch {}
    if (!url || !['http:', 'https:'].includes(url.protocol)) throw new RangeError(`S3 endpoint must be an http(s) URL; got '${endpoint}'`)
  }
  const accessKeyId = s3.accessKey
  const secretAccessKey = s3.secretKey
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new RangeError('give both the S3 access key and the secret key, or neither (then the usual AWS sources are used)')
  }
  return {
    kind: 's3',
    bucket,
    prefix: prefix === '' ? '' : prefix + '/',
    endpoint,
    region: s3.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    credentials: accessKeyId !== undefined && secretAccessKey !== undefined ? { accessKeyId, secretAccessKey } : undefined,
    pathStyle: s3.pathStyle === undefined ? endpoint !== undefined : onOff('path style', s3.pathStyle),
    createBucket: s3.createBucket === undefined ? true : onOff('create bucket', s3.createBucket),
    timeoutMs
  }
}

function onOff (what: string, text: string): boolean {
  if (/^(on|yes|true|1)$/i.test(text)) return true
  if (/^(off|no|false|0)$/i.test(text)) return false
  throw new RangeError(`${what} must be on or off; got '${text}'`)
}

/** --auto-bins: a fill ratio above 0 and below 1, e.g. 0.8. */
export function parseFill (text: string): number {
  const fill = Number(text)
  if (text.trim() === '' || !Number.isFinite(fill) || fill <= 0 || fill >= 1) throw new RangeError(`not a fill ratio: '${text}' (a number between 0 and 1, e.g. 0.8)`)
  return fill
}

/** A number of seconds as people write it (`10`, `0.5`), in milliseconds. */
export function parseSeconds (text: string): number {
  const s = Number(text)
  if (text.trim() === '' || !Number.isFinite(s) || s < 0) throw new RangeError(`not a number of seconds: '${text}'`)
  return Math.round(s * 1000)
}

/** `LEVEL:DIR:CAPACITY`, e.g. `disk:/var/lib/chaac/bin0:100GiB`. */
export function parseBin (text: string): BinSpec {
  const m = /^([a-z]+):(.+):([^:]+)$/.exec(text)
  if (!m || !LEVELS.includes(m[1] as Level)) {
    throw new RangeError(`not a bin: '${text}' (expected LEVEL:DIR:CAPACITY with LEVEL mem or disk, e.g. disk:/srv/chaac/bin0:100GiB)`)
  }
  const capacity = parseSize(m[3])
  if (capacity <= 0) throw new RangeError(`bin '${text}': capacity must be above zero`)
  return { level: m[1] as Level, dir: resolve(m[2]), capacity }
}

export function parseHostPort (text: string): { host: string, port: number } {
  const m = /^(.*):(\d+)$/.exec(text)
  const port = m ? Number(m[2]) : NaN
  if (!m || m[1] === '' || port > 65535) throw new RangeError(`not HOST:PORT: '${text}' (e.g. 127.0.0.1:7070)`)
  return { host: m[1].replace(/^\[(.*)\]$/, '$1'), port }
}

/** `--join`: the pool agent's peer address, ws://HOST:PORT. */
export function parsePoolUrl (text: string): string {
  let url: URL | undefined
  try { url = new URL(text) } catch {}
  if (!url || url.protocol !== 'ws:' || url.hostname === '' || url.port === '' || !['', '/'].includes(url.pathname)) {
    throw new RangeError(`not a pool address: '${text}' (expected ws://HOST:PORT, the --listen address of the agent started with --pool)`)
  }
  return `ws://${url.host}`
}

/**
 * Peers and the HTTP API bind to loopback unless told otherwise; beyond
 * loopback an agent listens only with a cluster secret, so that reaching a
 * port is not enough to join or read it.
 */
export function checkExposure (flag: string, host: string, secret: string | undefined): void {
  if (isLoopback(host) || (secret ?? '') !== '') return
  throw new RangeError(`${flag}: refusing to listen on ${host}, beyond loopback, without a cluster secret (--secret or CHAAC_SECRET)`)
}

export function oneOf<T extends string> (what: string, allowed: readonly T[], text: string): T {
  if (!allowed.includes(text as T)) throw new RangeError(`${what} must be one of ${allowed.join(', ')}; got '${text}'`)
  return text as T
}

/** `--volume-driver`: a plugin name Docker accepts (it names the socket file), or `none`. */
export function parseVolumeDriver (text: string): string | undefined {
  if (text === 'none') return undefined
  if (!/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/.test(text)) {
    throw new RangeError(`not a volume driver name: '${text}' (letters, digits, '_', '.' and '-', starting with a letter or digit; or none)`)
  }
  return text
}

/** The bins of the embedded default: a memory level on tmpfs in front of a disk level under the data folder. */
export function defaultBins (data: string): BinSpec[] {
  const tag = createHash('sha256').update(resolve(data)).digest('hex').slice(0, 12)
  return [
    { level: 'mem', dir: `/dev/shm/chaac-${tag}`, capacity: parseSize(DEFAULTS.memBin) },
    { level: 'disk', dir: join(resolve(data), 'bins', 'disk0'), capacity: parseSize(DEFAULTS.diskBin) }
  ]
}
