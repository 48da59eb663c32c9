// The containers' share of a host's context, from the Docker engine through
// dockerode where one answers: how many run, the CPU they use (in cores,
// from the change of each container's CPU time since the last sample) and
// their memory. No engine, no figures: the context then has none, and
// `engine` says why (GET /status shows it).
import Docker from 'dockerode'
import type { ContainerIo } from './container-io.ts'

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

/** A container as the last sample saw it, with what the membership reports leave out. */
export interface ContainerDetail {
  /** The full id. */
  id: string
  name: string
  image: string
  /** Its bind mounts and volumes: where from (a host path, or a volume's name and driver) and where to. */
  mounts: Array<{ type: string, source: string, destination: string, driver?: string }>
  /** The share of the host's CPU it used since the last sample (0..1). */
  cpu: number
  memoryBytes: number
  /** Its memory limit (the host's memory without one). */
  memoryLimit: number
  /** Bytes per second since the last sample (0 at its first): network received and sent, block I/O read and written. */
  netRx: number
  netTx: number
  blkRead: number
  blkWrite: number
}

// Per container: the counters the rates come from.
interface IoMark { at: number, netRx: number, netTx: number, blkRead: number, blkWrite: number }

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
  private ioMarks = new Map<string, IoMark>()
  /** The engine as the last sample found it; undefined before the first. */
  engine?: DockerEngine
  /** The running containers of the last sample whose stats answered. */
  details: ContainerDetail[] = []

  /** `io`: the bytes containers read and wrote through the mount, sampled with the rest. */
  constructor (readonly io?: ContainerIo, private readonly socketPath = process.env.DOCKER_HOST?.replace(/^unix:\/\//, '') ?? '/var/run/docker.sock', timeoutMs = 3000) {
    this.docker = new Docker({ socketPath, timeout: timeoutMs })
  }

  async sample (): Promise<ContainerUse | undefined> {
    this.io?.sample()
    let list: Docker.ContainerInfo[]
    try {
      list = await this.docker.listContainers()
    } catch (err) {
      this.engine = { available: false, socket: this.socketPath, reason: (err as Error).message }
      this.details = []
      return undefined
    }
    // The version is asked once per time the engine comes (back).
    if (this.engine?.available !== true) {
      const version = await this.docker.version().then((v) => v.Version, () => undefined)
      this.engine = { available: true, socket: this.socketPath, version }
    }
    const marks = new Map<string, CpuMark>()
    const ioMarks = new Map<string, IoMark>()
    const details: ContainerDetail[] = []
    const infos = new Map(list.map((c) => [c.Id, c]))
    const now = Date.now()
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
      const io = ioCounters(s, now)
      ioMarks.set(id, io)
      const was = this.ioMarks.get(id)
      const rate = (k: Exclude<keyof IoMark, 'at'>): number => was !== undefined && io.at > was.at ? Math.max(0, (io[k] - was[k]) * 1000 / (io.at - was.at)) : 0
      const info = infos.get(id)
      details.push({
        id,
        name: names.get(id) ?? id,
        image: info?.Image ?? '',
        mounts: (info?.Mounts ?? []).map((m) => ({
          type: m.Type, source: m.Type === 'volume' ? m.Name ?? m.Source : m.Source, destination: m.Destination, ...(m.Driver ? { driver: m.Driver } : {})
        })),
        cpu: Math.min(1, share),
        memoryBytes: memory,
        memoryLimit: limit,
        netRx: rate('netRx'),
        netTx: rate('netTx'),
        blkRead: rate('blkRead'),
        blkWrite: rate('blkWrite')
      })
    }
    this.marks = marks
    this.ioMarks = ioMarks
    this.details = details
    return { running: list.length, cpuCores: Math.max(0, cpuCores), memoryBytes, list: samples }
  }
}

// A container's network and block I/O byte counters from its stats (none without a network, or on a cgroup without io accounting).
function ioCounters (s: Docker.ContainerStats, at: number): IoMark {
  const nets = Object.values(s.networks ?? {})
  const blk = (s.blkio_stats?.io_service_bytes_recursive ?? []) as Array<{ op: string, value: number }>
  const sum = (op: string): number => blk.filter((e) => e.op.toLowerCase() === op).reduce((n, e) => n + e.value, 0)
  return {
    at,
    netRx: nets.reduce((n, x) => n + x.rx_bytes, 0),
    netTx: nets.reduce((n, x) => n + x.tx_bytes, 0),
    blkRead: sum('read'),
    blkWrite: sum('write')
  }
}
