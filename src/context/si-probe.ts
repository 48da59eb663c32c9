// Host context: memory from systeminformation, CPU and network from the
// kernel's counters in /proc, and statfs for the data folder's file system.
// Everything is read asynchronously: systeminformation's currentLoad and
// networkStats run execSync on Linux, and its fsSize runs df over every
// mount (which hangs on a dead FUSE mount); either would stall the mount.
import { readFile, statfs } from 'node:fs/promises'
import si from 'systeminformation'
import type { HostContext, HostProbe } from './host-context.ts'
import { cpuUtilisation, parseCpuTimes, parseNetBytes, type CpuTimes } from './proc-stats.ts'

// The link speed assumed where the interface does not report one (loopback, virtual NICs).
const ASSUMED_LINK_BYTES_PER_SEC = 125_000_000

const clamp = (x: number): number => Math.min(1, Math.max(0, Number.isFinite(x) ? x : 0))

export class SiProbe implements HostProbe {
  private last?: { cpu: CpuTimes, net: number, at: number }

  async sample (dataDir: string): Promise<HostContext> {
    const [mem, disk, procStat, procNet] = await Promise.all([
      si.mem(), statfs(dataDir), readFile('/proc/stat', 'utf8'), readFile('/proc/net/dev', 'utf8')
    ])
    const now = { cpu: parseCpuTimes(procStat), net: parseNetBytes(procNet), at: Date.now() }
    const last = this.last ?? now
    this.last = now
    const seconds = (now.at - last.at) / 1000
    const netBytesPerSec = seconds > 0 ? (now.net - last.net) / seconds : 0
    return {
      ufCPU: clamp(cpuUtilisation(last.cpu, now.cpu)),
      ufMemory: clamp(mem.active / mem.total),
      ufFileSystem: clamp(1 - disk.bfree / disk.blocks),
      ufNet: clamp(netBytesPerSec / ASSUMED_LINK_BYTES_PER_SEC),
      memFree: mem.available,
      diskFree: disk.bavail * disk.bsize,
      netBytesPerSec,
      sampledAt: now.at
    }
  }
}
