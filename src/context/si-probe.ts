// Host context from systeminformation.
import si from 'systeminformation'
import type { HostContext, HostProbe } from './host-context.ts'

// The link speed assumed where the interface does not report one (loopback, virtual NICs).
const ASSUMED_LINK_BYTES_PER_SEC = 125_000_000

const clamp = (x: number): number => Math.min(1, Math.max(0, Number.isFinite(x) ? x : 0))

export class SiProbe implements HostProbe {
  async sample (dataDir: string): Promise<HostContext> {
    const [load, mem, disks, nets] = await Promise.all([si.currentLoad(), si.mem(), si.fsSize(), si.networkStats('*')])
    // The file system holding the data folder: the longest mount point that prefixes it.
    const disk = disks
      .filter((d) => dataDir === d.mount || dataDir.startsWith(d.mount.endsWith('/') ? d.mount : d.mount + '/'))
      .sort((a, b) => b.mount.length - a.mount.length)[0]
    const netBytesPerSec = nets.reduce((sum, n) => sum + Math.max(0, n.rx_sec ?? 0) + Math.max(0, n.tx_sec ?? 0), 0)
    return {
      ufCPU: clamp(load.currentLoad / 100),
      ufMemory: clamp(mem.active / mem.total),
      ufFileSystem: clamp(disk ? disk.used / disk.size : 0),
      ufNet: clamp(netBytesPerSec / ASSUMED_LINK_BYTES_PER_SEC),
      memFree: mem.available,
      diskFree: disk ? disk.available : 0,
      netBytesPerSec,
      sampledAt: Date.now()
    }
  }
}
