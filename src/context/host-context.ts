// A host's context: utilisation factors between 0 and 1 and raw figures.
export interface HostContext {
  ufCPU: number
  ufMemory: number
  ufFileSystem: number
  ufNet: number
  memFree: number
  diskFree: number
  netBytesPerSec: number
  sampledAt: number
}

/** The outside world the monitor reads: systeminformation in the agent, a fake in unit tests. */
export interface HostProbe {
  sample: (dataDir: string) => Promise<HostContext>
}
