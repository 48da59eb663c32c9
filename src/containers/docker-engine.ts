// The Docker engine as the bins see it, through dockerode: the containers
// labelled as bins, the engine's event stream about them, and what the
// launcher creates and removes (an image, volumes, containers). Nothing here
// touches an object without `chaac.*` labels.
import Docker from 'dockerode'
import { ChaacError } from '../errors.ts'
import { LABELS, type ContainerFacts } from './bin-labels.ts'

/** A container event about a labelled container: it started, or it stopped (died) or went (destroy). */
export interface BinEvent { action: 'start' | 'die' | 'destroy', id: string }

export interface LaunchSpec {
  name: string
  image: string
  labels: Record<string, string>
  /** The bin's directory inside the container. */
  path: string
  /** A named volume mounted at `path`; none: a tmpfs of `tmpfsBytes`. */
  volume?: string
  tmpfsBytes?: number
}

/** How long a change may take the engine (it answers in milliseconds when well). */
const CHANGE_TIMEOUT_MS = 60_000

// A change without an answer in time is an error (the engine may still complete it; every object carries labels, so it can be found).
async function withDeadline<T> (what: string, promise: Promise<T>, ms = CHANGE_TIMEOUT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new ChaacError('CHAAC_TIMEOUT', `the Docker engine did not ${what} within ${ms / 1000} s`)), ms)
  })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}

export function dockerSocket (): string {
  return process.env.DOCKER_HOST?.replace(/^unix:\/\//, '') ?? '/var/run/docker.sock'
}

export class DockerEngine {
  // Questions, with a deadline.
  private readonly docker: Docker
  // Changes and the event stream: docker-modem 5's `timeout` hangs up requests
  // that carry a body (measured: createVolume fails with "socket hang up"),
  // and would cut the event stream every `timeout`.
  private readonly changes: Docker

  constructor (readonly socketPath = dockerSocket(), timeoutMs = 10_000) {
    this.docker = new Docker({ socketPath, timeout: timeoutMs })
    this.changes = new Docker({ socketPath })
  }

  /** The running containers labelled `chaac.bin`. */
  async runningBins (): Promise<ContainerFacts[]> {
    const list = await this.docker.listContainers({ filters: { label: [LABELS.bin] } })
    const facts = await Promise.all(list.map(async (c) => await this.inspect(c.Id)))
    return facts.filter((f): f is ContainerFacts => f !== undefined && f.running)
  }

  /** What a container is now; undefined once it is gone. */
  async inspect (id: string): Promise<ContainerFacts | undefined> {
    let info: Docker.ContainerInspectInfo
    try {
      info = await this.docker.getContainer(id).inspect()
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return undefined
      throw err
    }
    const mounts = (info.Mounts ?? []).map((m) => m.Destination)
    const tmpfs = Object.keys((info.HostConfig as { Tmpfs?: Record<string, string> }).Tmpfs ?? {})
    return {
      id: info.Id,
      name: info.Name.replace(/^\//, ''),
      labels: info.Config.Labels ?? {},
      mounts: [...mounts, ...tmpfs],
      running: info.State.Running,
      pid: info.State.Pid
    }
  }

  /**
   * Follows the engine's events about labelled containers until the stream
   * ends or fails (then `onEnd`); returns what stops it.
   */
  async events (onEvent: (e: BinEvent) => void, onEnd: (err?: Error) => void): Promise<() => void> {
    const stream = await this.changes.getEvents({
      filters: { type: ['container'], label: [LABELS.bin], event: ['start', 'die', 'destroy'] }
    }) as NodeJS.ReadableStream & { destroy: () => void }
    let rest = ''
    let ended = false
    const end = (err?: Error): void => {
      if (ended) return
      ended = true
      onEnd(err)
    }
    stream.on('data', (chunk: Buffer) => {
      rest += chunk.toString('utf8')
      const lines = rest.split('\n')
      rest = lines.pop() ?? ''
      for (const line of lines) {
        if (line.trim() === '') continue
        try {
          const e = JSON.parse(line) as { Action?: string, status?: string, id?: string, Actor?: { ID?: string } }
          const action = e.Action ?? e.status
          const id = e.Actor?.ID ?? e.id
          if ((action === 'start' || action === 'die' || action === 'destroy') && id !== undefined) onEvent({ action, id })
        } catch {}
      }
    })
    stream.on('error', (err: Error) => end(err))
    stream.on('end', () => end())
    stream.on('close', () => end())
    return () => {
      ended = true
      stream.destroy()
    }
  }

  async version (): Promise<string> {
    return (await this.docker.version()).Version
  }

  async hasImage (name: string): Promise<boolean> {
    try {
      await this.docker.getImage(name).inspect()
      return true
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return false
      throw err
    }
  }

  /** Imports a root filesystem (a tar stream) as an image, as `docker import` does. */
  async importImage (tar: NodeJS.ReadableStream, repo: string, tag: string, changes: string[]): Promise<void> {
    const progress = await withDeadline('take the image', this.changes.importImage(tar, { repo, tag, changes }))
    await withDeadline('import the image', new Promise<void>((resolve, reject) => {
      let failure: string | undefined
      progress.on('data', (chunk: Buffer) => {
        const m = /"error"\s*:\s*"([^"]*)"/.exec(chunk.toString('utf8'))
        if (m) failure = m[1]
      })
      progress.on('error', reject)
      progress.on('end', () => failure === undefined ? resolve() : reject(new ChaacError('CHAAC_IO', `docker import: ${failure}`)))
    }))
  }

  async createVolume (name: string, labels: Record<string, string>): Promise<void> {
    // The local driver, named: without a driver the engine asks every volume plugin whether it knows the name.
    await withDeadline(`create the volume ${name}`, this.changes.createVolume({ Name: name, Driver: 'local', Labels: labels }))
  }

  /** Creates and starts a data container (no network, `sleep` as its process); its id. */
  async launch (spec: LaunchSpec): Promise<string> {
    const container = await withDeadline(`create the container ${spec.name}`, this.changes.createContainer({
      name: spec.name,
      Image: spec.image,
      Cmd: ['/bin/busybox', 'sleep', '2147483647'],
      Labels: spec.labels,
      // Nothing runs in it but sleep: SIGKILL stops it at once.
      StopSignal: 'SIGKILL',
      HostConfig: {
        NetworkMode: 'none',
        RestartPolicy: { Name: 'unless-stopped' },
        ...(spec.volume !== undefined
          ? { Mounts: [{ Type: 'volume', Source: spec.volume, Target: spec.path, VolumeOptions: { NoCopy: false, Labels: spec.labels, DriverConfig: { Name: 'local', Options: {} } } }] }
          : { Tmpfs: { [spec.path]: `size=${spec.tmpfsBytes ?? 0},mode=0700` } })
      }
    }))
    await withDeadline(`start the container ${spec.name}`, container.start())
    return container.id
  }

  /**
   * Removes a container labelled `chaac.bin` (stopping it), and the named
   * volume mounted at `path` in it when that volume is labelled too.
   */
  async remove (id: string, path: string): Promise<void> {
    const container = this.changes.getContainer(id)
    const info = await this.docker.getContainer(id).inspect().catch(() => undefined)
    if (info === undefined) return
    if (info.Config.Labels?.[LABELS.bin] === undefined) throw new TypeError(`container ${info.Name} is not labelled ${LABELS.bin}`)
    const volume = (info.Mounts ?? []).find((m) => m.Type === 'volume' && m.Destination === path)?.Name
    await withDeadline(`remove the container ${info.Name}`, container.remove({ force: true, v: false }))
    if (volume !== undefined) await this.removeVolume(volume)
  }

  /** Removes a named volume if it is labelled `chaac.bin`. */
  async removeVolume (name: string): Promise<void> {
    const labels = (await this.docker.getVolume(name).inspect().catch(() => undefined))?.Labels
    if (labels?.[LABELS.bin] !== undefined) await withDeadline(`remove the volume ${name}`, this.changes.getVolume(name).remove())
  }
}
