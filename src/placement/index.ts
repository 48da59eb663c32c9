export { Allocator, MAX_TRIES, type AllocatorOptions } from './allocator.ts'
export * from './cost.ts'
export { DEFAULT_POLICY, isPolicy, POLICIES, type PlacementBin, type PlacementLevel, type PlacementRequest, type Policy, type Utilisation } from './types.ts'
export { Rng } from './rng.ts'
