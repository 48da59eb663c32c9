// Data containers as bins: what a container's `chaac.*` labels and mounts say
// about the bin it holds. Pure: a container's facts in, a bin's spec (or why
// not) out.
import { LEVELS, type Level } from '../store/bin.ts'
import { parseSize } from '../units.ts'

/** The labels Chaac reads on containers and puts on what it creates. */
export const LABELS = {
  /** The bin's level: `disk` or `mem`. A container without it is no bin. */
  bin: 'chaac.bin',
  /** The bin's capacity, a size (`2GiB`). */
  capacity: 'chaac.capacity',
  /** The bin's directory inside the container; default: its single volume or tmpfs mount. */
  path: 'chaac.path',
  /** The agent whose bin it is; without it, any agent on the host takes it. */
  agent: 'chaac.agent',
  /** Made by the launcher (`chaac bin create`): the launcher may remove it, with its volume. */
  launcher: 'chaac.launcher'
} as const

/** What the Docker engine says of a container, as far as bins go. */
export interface ContainerFacts {
  id: string
  name: string
  labels: Record<string, string>
  /** Destinations of its volume, bind and tmpfs mounts (Mounts and HostConfig.Tmpfs). */
  mounts: string[]
  running: boolean
  /** Its init process on the host (0 when not running). */
  pid: number
}

export interface ContainerBinSpec {
  container: { id: string, name: string }
  level: Level
  capacity: number
  /** The bin's directory inside the container. */
  path: string
  /** Made by the launcher. */
  launched: boolean
}

/**
 * The bin a container holds for agent `agentId`; undefined when it holds
 * none for it (no `chaac.bin` label, or another agent's); a RangeError when
 * its labels are wrong (the agent logs it and leaves the container alone).
 */
export function containerBinSpec (facts: ContainerFacts, agentId: string): ContainerBinSpec | undefined {
  const { labels } = facts
  const level = labels[LABELS.bin]
  if (level === undefined) return undefined
  const owner = labels[LABELS.agent]
  if (owner !== undefined && owner !== '' && owner !== agentId) return undefined
  const what = `container ${facts.name}`
  if (!LEVELS.includes(level as Level)) throw new RangeError(`${what}: label ${LABELS.bin}=${level} is not a level (mem or disk)`)
  const capacityText = labels[LABELS.capacity]
  if (capacityText === undefined) throw new RangeError(`${what}: label ${LABELS.capacity} is missing (the bin's capacity, e.g. 2GiB)`)
  let capacity: number
  try {
    capacity = parseSize(capacityText)
  } catch (err) {
    throw new RangeError(`${what}: label ${LABELS.capacity}: ${(err as Error).message}`)
  }
  if (capacity <= 0) throw new RangeError(`${what}: label ${LABELS.capacity} must be above zero`)
  return {
    container: { id: facts.id, name: facts.name },
    level: level as Level,
    capacity,
    path: binPath(facts, what),
    launched: labels[LABELS.launcher] !== undefined
  }
}

function binPath (facts: ContainerFacts, what: string): string {
  const given = facts.labels[LABELS.path]
  if (given !== undefined) {
    const path = given.replace(/\/+$/, '')
    if (!path.startsWith('/') || path === '' || path.split('/').includes('..')) {
      throw new RangeError(`${what}: label ${LABELS.path}=${given} must be an absolute path inside the container, not /`)
    }
    return path
  }
  const mounts = [...new Set(facts.mounts)]
  if (mounts.length === 1) return mounts[0]
  throw new RangeError(mounts.length === 0
    ? `${what}: no volume or tmpfs to keep balls in (mount one, or name the directory with the label ${LABELS.path})`
    : `${what}: mounts ${mounts.join(', ')}: say which holds the balls with the label ${LABELS.path}`)
}

/** Where the agent (root on the host) reaches a directory of a running container: through its init process's root. */
export function hostDir (pid: number, path: string): string {
  return `/proc/${pid}/root${path}`
}
