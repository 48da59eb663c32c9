// The cluster's settings, stored once in the metadata engine (the m!settings
// record): how many replicas each ball gets, the allocator policy, the chunk
// size and the kind of cloud tier. `chaac format` writes them, or the first
// agent of a cluster does; every agent reads them at start. This module is
// pure: it says which of an agent's flags contradict them, and in what words.
import type { AgentConfig, CloudSpec } from '../config.ts'
import { isPolicy } from '../placement/types.ts'

export const SETTINGS_VERSION = 1

export interface ClusterSettings {
  version: number
  replicas: number
  policy: string
  chunkSize: number
  /**
   * `directory` (each agent's own folder: paths differ from host to host),
   * `none`, or `s3://BUCKET[/PREFIX]`.
   */
  cloud: string
  /** Who wrote them: `chaac format`, or the first agent (`agent <id>`). */
  setBy?: string
  /** Set when the stored record cannot be read: what is wrong with it. */
  problem?: string
}

export type SettingName = 'replicas' | 'policy' | 'chunkSize' | 'cloud'
export const SETTING_NAMES: readonly SettingName[] = ['replicas', 'policy', 'chunkSize', 'cloud']

/** Where the user gave a setting: a flag, or its environment variable. */
export type GivenSettings = Partial<Record<SettingName, 'cli' | 'env'>>

const FLAG: Record<SettingName, string> = { replicas: '--replicas', policy: '--policy', chunkSize: '--chunk-size', cloud: '--cloud' }
const ENV: Record<SettingName, string> = { replicas: 'CHAAC_REPLICAS', policy: 'CHAAC_POLICY', chunkSize: 'CHAAC_CHUNK_SIZE', cloud: 'CHAAC_CLOUD' }
const WORDS: Record<SettingName, string> = { replicas: 'replicas', policy: 'policy', chunkSize: 'chunk size', cloud: 'cloud tier' }

/** The setting a cloud tier stands for: directories are each host's own, so only their kind is shared. */
export function cloudSetting (spec: CloudSpec | undefined): string {
  if (spec === undefined) return 'none'
  if (spec.kind === 'dir') return 'directory'
  return `s3://${spec.bucket}${spec.prefix === '' ? '' : '/' + spec.prefix.replace(/\/$/, '')}`
}

/** A size as the flags take it, exactly: 4MiB, 512KiB, 70000. */
export function sizeText (bytes: number): string {
  if (bytes > 0 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)}MiB`
  if (bytes > 0 && bytes % 1024 === 0) return `${bytes / 1024}KiB`
  return String(bytes)
}

export function settingText (name: SettingName, s: ClusterSettings): string {
  if (name === 'chunkSize') return sizeText(s.chunkSize)
  if (name === 'cloud' && s.cloud === 'directory') return 'a directory'
  return String(s[name])
}

export function encodeSettings (s: ClusterSettings): Buffer {
  const { problem, ...record } = s
  return Buffer.from(JSON.stringify(record))
}

/** The stored record; one that cannot be read comes back with `problem` set, never as an exception. */
export function decodeSettings (value: Uint8Array): ClusterSettings {
  let s: Partial<ClusterSettings>
  try {
    s = JSON.parse(Buffer.from(value).toString())
  } catch {
    return unreadable('it is not JSON')
  }
  if (typeof s !== 'object' || s === null) return unreadable('it is not a JSON object')
  if (s.version !== SETTINGS_VERSION) {
    return unreadable(typeof s.version === 'number' && s.version > SETTINGS_VERSION
      ? `version ${s.version}, written by a newer chaac (this one reads version ${SETTINGS_VERSION})`
      : `version ${String(s.version)} is not one this chaac knows`)
  }
  if (!Number.isInteger(s.replicas) || !isPolicy(s.policy) || !Number.isInteger(s.chunkSize) || typeof s.cloud !== 'string') {
    return unreadable('a field is missing or malformed')
  }
  return s as ClusterSettings
}

function unreadable (why: string): ClusterSettings {
  return { version: -1, replicas: 0, policy: '', chunkSize: 0, cloud: '', problem: `the cluster's settings (m!settings) cannot be used: ${why}` }
}

/** The settings that differ between two sets. */
export function differences (a: ClusterSettings, b: ClusterSettings): SettingName[] {
  return SETTING_NAMES.filter((name) => a[name] !== b[name])
}

function byWhom (s: ClusterSettings): string {
  return s.setBy === undefined ? '' : `, set by ${s.setBy}`
}

/**
 * The message for a setting the user gave that the stored settings
 * contradict, naming both values, e.g. "--replicas 3 contradicts the
 * cluster's settings (replicas 2, set by chaac format): drop the flag or pass 2".
 */
export function contradiction (name: SettingName, source: 'cli' | 'env', mine: ClusterSettings, stored: ClusterSettings): string {
  // A directory's path is each host's own: not part of the setting.
  const value = name === 'cloud' && mine.cloud === 'directory' ? 'DIR' : settingText(name, mine)
  const given = source === 'env' ? `${ENV[name]}=${value}` : `${FLAG[name]} ${value}`
  const what = source === 'env' ? 'the variable' : 'the flag'
  return `${given} contradicts the cluster's settings (${WORDS[name]} ${settingText(name, stored)}${byWhom(stored)}): drop ${what} or pass ${settingText(name, stored)}`
}

/**
 * The settings this agent runs with: the stored ones, where they exist (the
 * agent's own otherwise). Throws a RangeError naming every setting the user
 * gave that contradicts them, or saying why the stored record is unusable.
 */
export function settle (stored: ClusterSettings | undefined, mine: ClusterSettings, given: GivenSettings): ClusterSettings {
  if (stored === undefined) return mine
  if (stored.problem !== undefined) throw new RangeError(stored.problem)
  const wrong = differences(mine, stored).flatMap((name) => {
    const source = given[name]
    return source === undefined ? [] : [contradiction(name, source, mine, stored)]
  })
  if (wrong.length > 0) throw new RangeError(wrong.join('; '))
  return stored
}

/** What `chaac format` says when the engine holds other settings already. */
export function formatRefusal (stored: ClusterSettings, wanted: ClusterSettings): string | undefined {
  if (stored.problem !== undefined) return stored.problem
  const names = differences(wanted, stored)
  if (names.length === 0) return undefined
  const list = names.map((n) => `${WORDS[n]} ${settingText(n, stored)} (asked: ${settingText(n, wanted)})`).join(', ')
  return `the cluster is formatted already with other settings: ${list}${byWhom(stored)}. ` +
    'Settings are kept for the life of a cluster (files keep the chunk size they were cut with, balls their copies): ' +
    'to start afresh, format an empty engine'
}

/** The settings an agent's configuration stands for. */
export function settingsOf (config: Pick<AgentConfig, 'chunkSize' | 'cloud' | 'cluster'>, setBy: string): ClusterSettings {
  const { replicas, policy } = config.cluster
  return { version: SETTINGS_VERSION, replicas, policy, chunkSize: config.chunkSize, cloud: cloudSetting(config.cloud), setBy }
}
