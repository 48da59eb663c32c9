// A host's context: utilisation factors between 0 and 1 and raw figures.
import type { ContainerUse } from './container-probe.ts'

export interface HostContext {
  ufCPU: number
  ufMemory: number
  ufFileSystem: number
  ufNet: number
  memFree: number
  diskFree: number
  netBytesPerSec: number
  sampledAt: number
  /** The containers on the host, where a Docker engine answers. */
  containers?: ContainerUse
}

/** The outside world the monitor reads: systeminformation in the agent, a fake in unit tests. */
export interface HostProbe {
  sample: (dataDir: string) => Promise<HostContext>
}
