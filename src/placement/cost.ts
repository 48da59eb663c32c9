// The cost of putting one more ball in a bin: lower is better. The `context`
// and `sort-uf` policies rank bins by it; `two-choices` uses the fill alone.
//
//   fill  = (used + size) / capacity                    the bin's fill once the ball is in
//   cost  = W_FILL * fill
//         + W_NEARLY_FULL * max(0, fill - NEARLY_FULL) / (1 - NEARLY_FULL)
//         + W_FILE_SYSTEM * ufFileSystem
//         + W_CPU * ufCPU
//         + W_NET * ufNet
//         + W_MEMORY * ufMemory
//         - W_LOCAL    when the bin is on the writer's host and this is the first replica (context only)
//
// A host that has not reported a context counts UNKNOWN_UF for every factor.
//
// Why these weights: the fill comes first, as a bin that runs out of room is
// of no use, and the last tenth of a bin costs steeply more so that bins keep
// some headroom (a full bin turns writes into evictions or ENOSPC). Then the
// host's file system: a bin is a directory on it, so a nearly full disk can
// fail writes before the bin's own capacity is reached, and a busy one is slow.
// Then the CPU: the agent hashes, checks and serves every ball on a busy CPU.
// The network carries every remote copy and remote read; memory pressure mostly
// costs page cache, so it counts least. The sum of the host weights (1.0)
// equals W_FILL: a saturated host is as bad as a full bin. W_LOCAL is what a
// local first copy is worth (no network hop for the write, local reads for
// the writer): it wins between otherwise equal bins and against a quarter of
// a bin's fill, never against a host that is busy or nearly full.

import type { PlacementBin } from './types.ts'

export const W_FILL = 1.0
export const W_NEARLY_FULL = 2.0
export const NEARLY_FULL = 0.9
export const W_FILE_SYSTEM = 0.4
export const W_CPU = 0.3
export const W_NET = 0.2
export const W_MEMORY = 0.1
export const W_LOCAL = 0.25
export const UNKNOWN_UF = 0.5

const UNKNOWN_HOST_COST = (W_FILE_SYSTEM + W_CPU + W_NET + W_MEMORY) * UNKNOWN_UF

/** The bin's fill once a ball of `size` is in it: 1 and above means no room; a bin of capacity 0 is full. */
export function fillAfter (bin: PlacementBin, size: number): number {
  return bin.capacity > 0 ? (bin.used + size) / bin.capacity : 1
}

/** The cost above, without the locality term. */
export function utilisationCost (bin: PlacementBin, size: number): number {
  const fill = fillAfter(bin, size)
  const c = bin.context
  const host = c === undefined
    ? UNKNOWN_HOST_COST
    : W_FILE_SYSTEM * c.ufFileSystem + W_CPU * c.ufCPU + W_NET * c.ufNet + W_MEMORY * c.ufMemory
  const over = fill - NEARLY_FULL
  return W_FILL * fill + (over > 0 ? (W_NEARLY_FULL * over) / (1 - NEARLY_FULL) : 0) + host
}
