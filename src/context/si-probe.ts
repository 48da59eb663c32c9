// Host context from systeminformation, and statfs for the data folder's file
// system (systeminformation's fsSize runs df over every mount, which hangs on
// a dead FUSE mount anywhere on the host).
import { statfs } from 'node:fs/promises'
import si from 'systeminformation'
import type { HostContext, HostProbe } from './host-context.ts'

// The link speed assumed where the interface does not report one (loopback, virtual NICs).
const ASSUMED_LINK_BYTES_PER_SEC = 125_000_000

const clamp = (x: number): number => Math.min(1, Math.max(0, Number.isFinite(x) ? x : 0))

export class SiProbe implements HostProbe {
  async sample (dataDir: string): Promise<HostContext> {
    const [load, mem, disk, nets] = await Promise.all([si.currentLoad(), si.mem(), statfs(dataDir), si.networkStats('*')])
    const netBytesPerSec = nets.reduce((sum, n) => sum + Math.max(0, n.rx_sec ?? 0) + Math.max(0, n.tx_sec ?? 0), 0)
    return {
      ufCPU: clamp(load.currentLoad / 100),
      ufMemory: clamp(mem.active / mem.total),
      ufFileSystem: clamp(1 - disk.bfree / disk.blocks),
      ufNet: clamp(netBytesPerSec / ASSUMED_LINK_BYTES_PER_SEC),
      memFree: mem.available,
      diskFree: disk.bavail * disk.bsize,
      netBytesPerSec,
      sampledAt: Date.now()
    }
  }
}
