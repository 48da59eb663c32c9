// What the allocator reads and answers. Structural types only: the data pool
// hands in its own bin records (anything with these fields), and the host
// context of src/context fits `Utilisation` as it is.

/** A bin's storage level (the same names as src/store's `Level`). */
export type PlacementLevel = 'mem' | 'disk'

/** A host's utilisation factors, each 0 (idle, empty) .. 1 (saturated, full). */
export interface Utilisation {
  ufCPU: number
  ufMemory: number
  ufFileSystem: number
  ufNet: number
}

export interface PlacementBin {
  /** Unique among the bins handed in; ties between equal bins go to the smaller id. */
  id: string
  /** The host whose agent owns the bin; replicas of a ball go to distinct hosts. */
  host: string
  level: PlacementLevel
  /** Bytes the bin may hold (>= 0). */
  capacity: number
  /** Bytes it holds now. Read afresh on every decision. */
  used: number
  /** The latest context of the bin's host, if it reported one. Read afresh on every decision. */
  context?: Utilisation
}

export interface PlacementRequest {
  /** The ball's size in bytes (>= 0): only bins with `capacity - used >= size` qualify. */
  size: number
  /** How many replicas (>= 1), each on its own host. */
  k: number
  /** The host that writes the ball: the `context` policy prefers it for the first replica. */
  writerHost?: string
}

export const POLICIES = ['context', 'two-choices', 'random', 'round-robin', 'weighted-round-robin', 'sort-uf'] as const
export type Policy = (typeof POLICIES)[number]
export const DEFAULT_POLICY: Policy = 'context'

export function isPolicy (name: unknown): name is Policy {
  return typeof name === 'string' && (POLICIES as readonly string[]).includes(name)
}
