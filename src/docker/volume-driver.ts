// Docker's volume plugin protocol (VolumeDriver), without the socket: each
// request (an endpoint and its JSON body) becomes an answer. The volumes
// themselves, and the mount ids of the containers using each, live behind a
// VolumeStore; this module checks what Docker sends and answers one request
// about a volume at a time.
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
  /** The mount ids this agent recorded for the volume, and how many the other agents alive recorded. */
  mounts: (name: string) => Promise<{ here: string[], elsewhere: number }>
  /** Records this agent's mount ids of the volume (none: the record goes). */
  recordMounts: (name: string, ids: string[]) => Promise<void>
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
  // Per volume, the request being answered: the mounts are read, changed and written back one request at a time.
  private readonly busy = new Map<string, Promise<unknown>>()

  constructor (private readonly store: VolumeStore, private readonly replicas: number) {}

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
        const options = checkVolumeOptions(req.Opts, this.replicas)
        await this.one(name, async () => await this.store.create(name, options))
        return {}
      }
      case '/VolumeDriver.Remove': {
        const name = checkVolumeName(req.Name)
        await this.one(name, async () => {
          const { here, elsewhere } = await this.store.mounts(name)
          const users = here.length + elsewhere
          if (users > 0) {
            throw new ChaacError('CHAAC_INVALID',
              `volume ${name} is in use by ${users} ${users === 1 ? 'container' : 'containers'} (${here.length} on this host, ${elsewhere} on other hosts)`)
          }
          await this.store.remove(name)
        })
        return {}
      }
      case '/VolumeDriver.Mount': {
        const name = await this.existing(req.Name)
        const id = mountId(req.ID)
        await this.one(name, async () => {
          const { here } = await this.store.mounts(name)
          if (!here.includes(id)) await this.store.recordMounts(name, [...here, id])
        })
        return { Mountpoint: this.store.mountpoint(name) }
      }
      case '/VolumeDriver.Unmount': {
        const name = checkVolumeName(req.Name)
        const id = mountId(req.ID)
        await this.one(name, async () => {
          const { here } = await this.store.mounts(name)
          // An id never recorded (the volume was removed meanwhile) has nothing to undo.
          if (here.includes(id)) await this.store.recordMounts(name, here.filter((x) => x !== id))
        })
        return {}
      }
      case '/VolumeDriver.Path':
        return { Mountpoint: this.store.mountpoint(await this.existing(req.Name)) }
      case '/VolumeDriver.Get': {
        const name = checkVolumeName(req.Name)
        const v = await this.store.get(name)
        if (!v) throw new ChaacError('CHAAC_NOT_FOUND', `no volume named ${name}`)
        const { here, elsewhere } = await this.store.mounts(name)
        return { Volume: { ...this.describe(v), Status: { options: v.options, replicas: this.replicas, mountsHere: here.length, mountsElsewhere: elsewhere } } }
      }
      case '/VolumeDriver.List':
        return { Volumes: (await this.store.list()).map((v) => this.describe(v)) }
      default:
        throw new ChaacError('CHAAC_NOT_SUPPORTED', `the chaac volume driver does not answer ${endpoint}`)
    }
  }

  /** Runs `fn` once every earlier request about volume `name` is answered. */
  private async one<T> (name: string, fn: () => Promise<T>): Promise<T> {
    const before = this.busy.get(name) ?? Promise.resolve()
    const mine = before.catch(() => {}).then(fn)
    this.busy.set(name, mine)
    try {
      return await mine
    } finally {
      if (this.busy.get(name) === mine) this.busy.delete(name)
    }
  }

  private async existing (name: unknown): Promise<string> {
    const checked = checkVolumeName(name)
    if (!await this.store.get(checked)) throw new ChaacError('CHAAC_NOT_FOUND', `no volume named ${checked}`)
    return checked
  }

  private describe (v: VolumeInfo): { Name: string, Mountpoint: string, CreatedAt: string } {
    return { Name: v.name, Mountpoint: this.store.mountpoint(v.name), CreatedAt: new Date(v.createdAt).toISOString() }
  }
}

function mountId (id: unknown): string {
  if (typeof id !== 'string' || id === '') throw new ChaacError('CHAAC_INVALID', 'a mount request needs the ID of the container\'s mount')
  return id
}
