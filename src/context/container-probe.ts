// The containers' share of a host's context, from the Docker engine through
// dockerode where one answers: how many run, the CPU they use (in cores,
// from the change of each container's CPU time since the last sample) and
// their memory. No engine, no figures: the context then has none, and
// `engine` says why (GET /status shows it).
import Docker from 'dockerode'

export interface ContainerUse {
  running: number
  /** Cores' worth of CPU the running containers used since the last sample. */
  cpuCores: number
  memoryBytes: number
  /** Each container (of the first MAX_CONTAINERS) whose stats answered. */
  list?: ContainerSample[]
}

/** One container's share of its host. */
export interface ContainerSample {
  /** The short id (12 hex digits), as `docker ps` shows it. */
  id: string
  name: string
  /** The share of the host's CPU it used since the last sample (0..1; 0 at its first sample). */
  cpu: number
  /** Its memory (page cache aside) over its limit (the host's memory without one), 0..1. */
  memory: number
}

/** Whether a Docker engine answered the last sample: its version, or why not. */
export interface DockerEngine {
  available: boolean
  /** The engine's unix socket. */
  socket: string
  version?: string
  reason?: string
}

// Per container: its CPU time and the host's, both in ns, at the last sample.
interface CpuMark { container: number, system: number }

const MAX_CONTAINERS = 64

export class ContainerProbe {
  private readonly docker: Docker
  private marks = new Map<string, CpuMark>()
  /** The engine as the last sample found it; undefined before the first. */
  engine?: DockerEngine

  constructor (private readonly socketPath = process.env.DOCKER_HOST?.replace(/^unix:\/\//, '') ?? '/var/run/docker.sock', timeoutMs = 3000) {
    this.docker = new Docker({ socketPath, timeout: timeoutMs })
  }

  async sample (): Promise<ContainerUse | undefined> {
    let list: Docker.ContainerInfo[]
    try {
      list = await this.docker.listContainers()
    } catch (err) {
      this.engine = { available: false, socket: this.socketPath, reason: (err as Error).message }
      return undefined
    }
    // The version is asked once per time the engine comes (back).
    if (this.engine?.available !== true) {
      const version = await this.docker.version().then((v) => v.Version, () => undefined)
      this.engine = { available: true, socket: this.socketPath, version }
    }
    const marks = new Map<string, CpuMark>()
    let cpuCores = 0
    let memoryBytes = 0
    const samples: ContainerSample[] = []
    const names = new Map(list.map((c) => [c.Id, (c.Names[0] ?? c.Id).replace(/^\//, '')]))
    // One-shot stats answer at once; the CPU rate comes from our own previous mark.
    const stats = await Promise.all(list.slice(0, MAX_CONTAINERS).map(async (c) =>
      await this.docker.getContainer(c.Id).stats({ stream: false, 'one-shot': true }).then((s) => ({ id: c.Id, s }), () => undefined)))
    for (const entry of stats) {
      if (!entry) continue
      const { id, s } = entry
      const mark = { container: s.cpu_stats.cpu_usage.total_usage, system: s.cpu_stats.system_cpu_usage ?? 0 }
      const before = this.marks.get(id)
      const cores = s.cpu_stats.online_cpus ?? 1
      const share = before && mark.system > before.system ? Math.max(0, (mark.container - before.container) / (mark.system - before.system)) : 0
      cpuCores += share * cores
      marks.set(id, mark)
      const cache = (s.memory_stats.stats as Record<string, number> | undefined)?.inactive_file ?? 0
      const memory = Math.max(0, (s.memory_stats.usage ?? 0) - cache)
      memoryBytes += memory
      const limit = s.memory_stats.limit ?? 0
      samples.push({ id: id.slice(0, 12), name: names.get(id) ?? id, cpu: Math.min(1, share), memory: limit > 0 ? Math.min(1, memory / limit) : 0 })
    }
    this.marks = marks
    return { running: list.length, cpuCores: Math.max(0, cpuCores), memoryBytes, list: samples }
  }
}
