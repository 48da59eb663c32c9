// The bytes each container read and wrote through the mount. The FUSE
// binding counts bytes per requesting process (the kernel names the pid of
// every request) and finds the process's container by its cgroup, which
// Docker names after the container (native/chaac-fuse/pid-io.c); here they
// add up per container. Processes outside any container count as the host's.

/** Bytes asked to read and written through the mount by one container (or the host's own processes), in total and per second. */
export interface ContainerTraffic {
  read: number
  written: number
  readRate: number
  writtenRate: number
}

/** The key of the host's own processes. */
export const HOST = 'host'

const MAX_CONTAINERS = 1024

export class ContainerIo {
  private readonly totals = new Map<string, { read: number, written: number }>()
  private rates = new Map<string, { readRate: number, writtenRate: number }>()
  private lastTake = Date.now()

  /** `take` hands over the bytes counted since its last call, per process: [container's full id or "", read, written]. */
  constructor (private readonly take: () => Array<[string, number, number]>) {}

  /** Takes the bytes counted since the last call and adds them to their containers. */
  sample (): void {
    const now = Date.now()
    const seconds = Math.max(0.001, (now - this.lastTake) / 1000)
    this.lastTake = now
    const round = new Map<string, { read: number, written: number }>()
    for (const [id, read, written] of this.take()) {
      const key = id === '' ? HOST : id
      const r = round.get(key) ?? { read: 0, written: 0 }
      r.read += read
      r.written += written
      round.set(key, r)
    }
    for (const [key, r] of round) {
      const total = this.totals.get(key) ?? { read: 0, written: 0 }
      total.read += r.read
      total.written += r.written
      // Most recently active last: the first ones go when there are too many.
      this.totals.delete(key)
      this.totals.set(key, total)
    }
    for (const key of [...this.totals.keys()].slice(0, Math.max(0, this.totals.size - MAX_CONTAINERS))) this.totals.delete(key)
    this.rates = new Map([...round].map(([key, r]) => [key, { readRate: r.read / seconds, writtenRate: r.written / seconds }]))
  }

  /** A container's traffic since the agent started (by full id, or HOST); zeros when it made none. */
  traffic (container: string): ContainerTraffic {
    const total = this.totals.get(container) ?? { read: 0, written: 0 }
    const rate = this.rates.get(container) ?? { readRate: 0, writtenRate: 0 }
    return { ...total, ...rate }
  }

  /** The containers (full ids) that read or wrote through the mount since the agent started. */
  containers (): string[] {
    return [...this.totals.keys()].filter((c) => c !== HOST)
  }
}
