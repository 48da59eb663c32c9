// The launcher: creates data containers on this agent's host that become its
// bins (`chaac bin create`, POST /api/v1/bins), and removes them
// (`chaac bin remove`, DELETE /api/v1/bins/:id) once their balls have other
// copies. A `disk` bin is a named volume, a `mem` bin a tmpfs of the
// capacity; the container, the volume and the image carry `chaac.*` labels.
import { randomBytes } from 'node:crypto'
import { ChaacError } from '../errors.ts'
import type { LocalBalls } from '../balls/local.ts'
import type { NewBall } from '../balls/types.ts'
import { LEVELS, type Level } from '../store/bin.ts'
import { formatSize, parseSize } from '../units.ts'
import { VERSION } from '../version.ts'
import { LABELS } from './bin-labels.ts'
import { ensureBinImage } from './bin-image.ts'
import type { ContainerBins, ContainerInfo } from './container-bins.ts'
import type { DockerEngine } from './docker-engine.ts'

export interface BinRequest {
  level: Level
  capacity: number
  /** The agent whose host gets the bin (its id); this agent's when absent. */
  host?: string
}

export const DEFAULT_BIN = { level: 'disk' as Level, capacity: '1GiB' }
/** The smallest bin the launcher makes: room for a few balls. */
export const MIN_CAPACITY = 1024 * 1024
/** Where the balls are inside a launched container. */
export const BIN_PATH = '/balls'

/** A request's body as JSON ({"level": "disk", "capacity": "2GiB", "host": AGENT}), checked. */
export function parseBinRequest (body: unknown): BinRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('body must be JSON like {"level": "disk", "capacity": "2GiB"}')
  const { level = DEFAULT_BIN.level, capacity = DEFAULT_BIN.capacity, host } = body as Record<string, unknown>
  if (typeof level !== 'string' || !LEVELS.includes(level as Level)) throw invalid(`unknown level ${JSON.stringify(level)}: one of ${LEVELS.join(', ')}`)
  let bytes: number
  if (typeof capacity === 'number') {
    bytes = capacity
  } else if (typeof capacity === 'string') {
    try {
      bytes = parseSize(capacity)
    } catch (err) {
      throw invalid(`capacity: ${(err as Error).message}`)
    }
  } else {
    throw invalid('capacity must be a size like "2GiB" or a number of bytes')
  }
  if (!Number.isSafeInteger(bytes) || bytes < MIN_CAPACITY) throw invalid(`capacity must be at least ${formatSize(MIN_CAPACITY)}; got ${JSON.stringify(capacity)}`)
  if (host !== undefined && (typeof host !== 'string' || host === '')) throw invalid('host must be an agent id')
  return { level: level as Level, capacity: bytes, ...(host !== undefined ? { host } : {}) }
}

const invalid = (message: string): ChaacError => new ChaacError('CHAAC_INVALID', message)

/** A bin the launcher made or removed, as the API answers. */
export interface LaunchedBin { id: string, agent: string, level: Level, capacity: number, container: ContainerInfo }

export interface LauncherOptions {
  engine: DockerEngine
  bins: ContainerBins
  local: LocalBalls
  agentId: string
  /** Stores one more copy of a ball on another host (the data plane), in a cluster. */
  elsewhere?: (ball: NewBall) => Promise<void>
  log: { info: (obj: object, msg: string) => void }
}

export class Launcher {
  constructor (private readonly opts: LauncherOptions) {}

  /** Creates and starts a data container on this host; resolves once it is a bin of this agent. */
  async create (req: BinRequest): Promise<LaunchedBin> {
    const { engine, bins, agentId, log } = this.opts
    const name = `chaac-bin-${agentId.slice(0, 8)}-${randomBytes(4).toString('hex')}`
    const labels = {
      [LABELS.bin]: req.level,
      [LABELS.capacity]: String(req.capacity),
      [LABELS.path]: BIN_PATH,
      [LABELS.agent]: agentId,
      [LABELS.launcher]: VERSION
    }
    const containerId = await this.withEngine(async () => {
      const image = await ensureBinImage(engine)
      if (req.level === 'mem') return await engine.launch({ name, image, labels, path: BIN_PATH, tmpfsBytes: req.capacity })
      await engine.createVolume(name, labels)
      try {
        return await engine.launch({ name, image, labels, path: BIN_PATH, volume: name })
      } catch (err) {
        await engine.removeVolume(name).catch(() => {})
        throw err
      }
    })
    const bin = await bins.adopt(containerId)
    const found = bins.containerOf(bin?.id ?? '')
    if (!bin || !found) throw new ChaacError('CHAAC_IO', `the data container ${name} started but did not become a bin: see the agent's log`)
    log.info({ container: name, bin: bin.id, level: req.level, capacity: req.capacity }, `launched a data container as a ${req.level} bin of ${formatSize(req.capacity)}`)
    return { id: bin.id, agent: agentId, level: req.level, capacity: req.capacity, container: found.info }
  }

  /**
   * Removes a data container bin of this agent (named by the bin's id or the
   * container's name or id): its balls get copies elsewhere first, then the
   * container and its volume go.
   */
  async remove (key: string): Promise<LaunchedBin & { moved: number, dropped: number }> {
    const { bins, local, engine, agentId, log } = this.opts
    const found = bins.find(key)
    if (!found) {
      if (local.bins.some((b) => b.id === key)) throw invalid(`bin ${key} is a directory (--bin), not a data container: take it out of the agent's flags instead`)
      throw new ChaacError('CHAAC_NOT_FOUND', `no data container bin ${key} on agent ${agentId}`)
    }
    const { containerId, spec, bin } = found
    if (!bin) throw invalid(`the container ${spec.container.name} of bin ${key} is stopped: start it (docker start ${spec.container.name}) so that its balls can be moved first`)
    const info = bins.containerOf(bin.id)?.info as ContainerInfo
    const { moved, dropped } = await local.drain(bin, this.opts.elsewhere)
    await bins.release(containerId)
    await this.withEngine(async () => await engine.remove(containerId, spec.path))
    log.info({ container: spec.container.name, bin: bin.id, moved, dropped }, 'removed a data container bin after moving its balls')
    return { id: bin.id, agent: agentId, level: spec.level, capacity: spec.capacity, container: info, moved, dropped }
  }

  private async withEngine<T> (fn: () => Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT' || code === 'ECONNREFUSED' || code === 'EACCES') {
        throw new ChaacError('CHAAC_NOT_SUPPORTED', `no Docker engine answers at ${this.opts.engine.socketPath} (${(err as Error).message}): data container bins need one`, { cause: err })
      }
      throw err
    }
  }
}
