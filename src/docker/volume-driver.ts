// Docker's volume plugin protocol (VolumeDriver), without the socket: each
// request (an endpoint and its JSON body) becomes an answer. The volumes
// themselves live behind a VolumeStore; this module checks what Docker sends
// and keeps, per volume, the mount ids of the containers using it here.
import { ChaacError, isChaacError } from '../errors.ts'

/** A volume as the store keeps it. */
export interface VolumeInfo {
  name: string
  /** Milliseconds since the epoch. */
  createdAt: number
  options: Record<string, string>
}

/** Where the volumes live (the chaac namespace, in the agent). */
export interface VolumeStore {
  /** Makes the volume; one that exists already is kept as it is. */
  create: (name: string, options: Record<string, string>) => Promise<void>
  /** Removes the volume and everything in it; CHAAC_NOT_FOUND when there is none. */
  remove: (name: string) => Promise<void>
  get: (name: string) => Promise<VolumeInfo | undefined>
  list: () => Promise<VolumeInfo[]>
  /** The host path containers get: the volume's folder under the chaac path. */
  mountpoint: (name: string) => string
}

export interface DriverAnswer {
  status: number
  body: object
}

/** What Docker's plugin requests carry and its answers mean. */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json'

// Docker's own rule for volume names (the local driver's): no '/', no leading '.', so a name is one path component.
const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/
const MAX_NAME_BYTES = 255

/** Throws a clear error unless `name` is a volume name Docker's rules allow. */
export function checkVolumeName (name: unknown): string {
  if (typeof name !== 'string' || name === '') throw new ChaacError('CHAAC_INVALID', 'a volume needs a name')
  if (!VOLUME_NAME.test(name) || Buffer.byteLength(name) > MAX_NAME_BYTES) {
    throw new ChaacError('CHAAC_INVALID',
      `'${name}' is not a valid volume name: at least 2 characters of letters, digits, '_', '.' and '-', starting with a letter or digit, at most ${MAX_NAME_BYTES}`)
  }
  return name
}

/**
 * The options of `docker volume create -o KEY=VALUE`. Chaac keeps every
 * ball of the cluster in the same number of copies (`--replicas`), so
 * `replicas` is taken only when it says that number.
 */
export function checkVolumeOptions (opts: unknown, replicas: number): Record<string, string> {
  if (opts === undefined || opts === null) return {}
  if (typeof opts !== 'object' || Array.isArray(opts)) throw new ChaacError('CHAAC_INVALID', 'volume options must be an object of KEY=VALUE')
  const out: Record<string, string> = {}
  for (const [key, value] of Object.entries(opts as Record<string, unknown>)) {
    if (key !== 'replicas') throw new ChaacError('CHAAC_INVALID', `unknown volume option '${key}' (the chaac driver takes: replicas)`)
    const n = Number(value)
    if (typeof value !== 'string' || !/^\d+$/.test(value) || n < 1) {
      throw new ChaacError('CHAAC_INVALID', `replicas must be a whole number of copies, at least 1; got '${String(value)}'`)
    }
    if (n !== replicas) {
      throw new ChaacError('CHAAC_INVALID',
        `replicas=${value}: Chaac keeps every ball here in ${replicas} ${replicas === 1 ? 'copy' : 'copies'} (the cluster's --replicas, one setting for all files; an agent alone: 1); a volume cannot have its own`)
    }
    out[key] = value
  }
  return out
}

/** Answers Docker's volume plugin requests. */
export class VolumeDriver {
  // Per volume, the mount ids of the containers that use it through this agent.
  private readonly mounts = new Map<string, Set<string>>()

  constructor (private readonly store: VolumeStore, private readonly replicas: number) {}

  /** How many containers use the volume through this agent. */
  mountCount (name: string): number {
    return this.mounts.get(name)?.size ?? 0
  }

  /** The answer to a request on `endpoint` (e.g. `/VolumeDriver.Create`) with the JSON body `body`. */
  async handle (endpoint: string, body: unknown): Promise<DriverAnswer> {
    try {
      return { status: 200, body: await this.answer(endpoint, (body ?? {}) as Record<string, unknown>) }
    } catch (err) {
      // Docker shows Err to the user as it is ("VolumeDriver.Create: <Err>"); plugins answer it with a 500, as Docker's plugin helpers do.
      return { status: 500, body: { Err: isChaacError(err) ? err.message : `chaac: ${(err as Error).message}` } }
    }
  }

  private async answer (endpoint: string, req: Record<string, unknown>): Promise<object> {
    if (typeof req !== 'object' || Array.isArray(req)) throw new ChaacError('CHAAC_INVALID', 'the request body must be a JSON object')
    switch (endpoint) {
      case '/Plugin.Activate':
        return { Implements: ['VolumeDriver'] }
      case '/VolumeDriver.Capabilities':
        // The namespace is the cluster's: a volume made on one host is there on every host.
        return { Capabilities: { Scope: 'global' } }
      case '/VolumeDriver.Create': {
        const name = checkVolumeName(req.Name)
        await this.store.create(name, checkVolumeOptions(req.Opts, this.replicas))
        return {}
      }
      case '/VolumeDriver.Remove': {
        const name = checkVolumeName(req.Name)
        const users = this.mountCount(name)
        if (users > 0) throw new ChaacError('CHAAC_INVALID', `volume ${name} is in use by ${users} ${users === 1 ? 'container' : 'containers'} on this host`)
        await this.store.remove(name)
        return {}
      }
      case '/VolumeDriver.Mount': {
        const name = await this.existing(req.Name)
        const id = mountId(req.ID)
        let ids = this.mounts.get(name)
        if (!ids) this.mounts.set(name, ids = new Set())
        ids.add(id)
        return { Mountpoint: this.store.mountpoint(name) }
      }
      case '/VolumeDriver.Unmount': {
        const name = checkVolumeName(req.Name)
        const id = mountId(req.ID)
        const ids = this.mounts.get(name)
        // An id this agent never saw (it was mounted before a restart) has nothing to undo.
        ids?.delete(id)
        if (ids?.size === 0) this.mounts.delete(name)
        return {}
      }
      case '/VolumeDriver.Path':
        return { Mountpoint: this.store.mountpoint(await this.existing(req.Name)) }
      case '/VolumeDriver.Get': {
        const name = checkVolumeName(req.Name)
        const v = await this.store.get(name)
        if (!v) throw new ChaacError('CHAAC_NOT_FOUND', `no volume named ${name}`)
        return { Volume: this.describe(v, true) }
      }
      case '/VolumeDriver.List':
        return { Volumes: (await this.store.list()).map((v) => this.describe(v, false)) }
      default:
        throw new ChaacError('CHAAC_NOT_SUPPORTED', `the chaac volume driver does not answer ${endpoint}`)
    }
  }

  private async existing (name: unknown): Promise<string> {
    const checked = checkVolumeName(name)
    if (!await this.store.get(checked)) throw new ChaacError('CHAAC_NOT_FOUND', `no volume named ${checked}`)
    return checked
  }

  private describe (v: VolumeInfo, status: boolean): object {
    return {
      Name: v.name,
      Mountpoint: this.store.mountpoint(v.name),
      CreatedAt: new Date(v.createdAt).toISOString(),
      ...(status ? { Status: { options: v.options, replicas: this.replicas, mountsHere: this.mountCount(v.name) } } : {})
    }
  }
}

function mountId (id: unknown): string {
  if (typeof id !== 'string' || id === '') throw new ChaacError('CHAAC_INVALID', 'a mount request needs the ID of the container\'s mount')
  return id
}
