// Parsers for the kernel's counters in /proc, and utilisation from two
// samples of them. Pure: text in, numbers out.

export interface CpuTimes { busy: number, total: number }

/** The aggregate "cpu" line of /proc/stat: busy and total jiffies. */
export function parseCpuTimes (procStat: string): CpuTimes {
  const line = procStat.split('\n').find((l) => l.startsWith('cpu '))
  if (!line) return { busy: 0, total: 0 }
  // user nice system idle iowait irq softirq steal guest guest_nice; guests are inside user/nice.
  const v = line.trim().split(/\s+/).slice(1, 9).map(Number)
  const total = v.reduce((a, b) => a + b, 0)
  const idle = (v[3] ?? 0) + (v[4] ?? 0)
  return { busy: total - idle, total }
}

/** Bytes received plus sent over every interface, from /proc/net/dev. */
export function parseNetBytes (procNetDev: string): number {
  let sum = 0
  for (const line of procNetDev.split('\n').slice(2)) {
    const [, counters] = line.split(':')
    if (counters === undefined) continue
    const f = counters.trim().split(/\s+/).map(Number)
    sum += (f[0] ?? 0) + (f[8] ?? 0)
  }
  return sum
}

/** The share of `total` time spent busy between two samples (0 when no time passed). */
export function cpuUtilisation (before: CpuTimes, after: CpuTimes): number {
  const total = after.total - before.total
  return total > 0 ? (after.busy - before.busy) / total : 0
}
