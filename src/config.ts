// The agent's settings: their defaults (the embedded default: everything
// under the project) and the checks on what users pass in.
import { createHash } from 'node:crypto'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BinSpec, EvictionPolicy, Level } from './store/bin.ts'
import { LEVELS } from './store/bin.ts'
import type { WritePolicy } from './store/ball-store.ts'
import { parseSize } from './units.ts'

export const PROJECT_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..')

export interface AgentConfig {
  data: string
  mount: string
  http: { host: string, port: number }
  bins: BinSpec[]
  chunkSize: number
  writePolicy: WritePolicy
  /** Directory of the cloud tier; none when empty. */
  cloud?: string
  cacheSkipOver: number
  eviction: EvictionPolicy
  attrTimeout: number
  contextIntervalMs: number
}

export const WRITE_POLICIES: readonly WritePolicy[] = ['through', 'async', 'none']
export const EVICTION_POLICIES: readonly EvictionPolicy[] = ['lru', 'lfu']

export const DEFAULTS = {
  data: join(PROJECT_DIR, 'data'),
  mount: join(PROJECT_DIR, 'mount'),
  http: '127.0.0.1:7070',
  chunkSize: '4MiB',
  write: 'async',
  cacheSkipOver: '1TiB',
  eviction: 'lru',
  memBin: '256MiB',
  diskBin: '16GiB'
} as const

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

export function oneOf<T extends string> (what: string, allowed: readonly T[], text: string): T {
  if (!allowed.includes(text as T)) throw new RangeError(`${what} must be one of ${allowed.join(', ')}; got '${text}'`)
  return text as T
}

/** The bins of the embedded default: a memory level on tmpfs in front of a disk level under the data folder. */
export function defaultBins (data: string): BinSpec[] {
  const tag = createHash('sha256').update(resolve(data)).digest('hex').slice(0, 12)
  return [
    { level: 'mem', dir: `/dev/shm/chaac-${tag}`, capacity: parseSize(DEFAULTS.memBin) },
    { level: 'disk', dir: join(resolve(data), 'bins', 'disk0'), capacity: parseSize(DEFAULTS.diskBin) }
  ]
}
