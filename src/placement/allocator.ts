// The allocator ("distributor"): picks the bins for a new ball. A pure core:
// data in, data out, no I/O and no clock. Its only state is its own: a seeded
// generator, the round-robin cursor, the weighted round-robin credits and an
// index of the last bin list it saw. The same seed and the same sequence of
// calls give the same answers on every machine; equal bins are told apart by
// their id (the smaller wins), never by chance or by the order of a Map.
//
// Every policy answers up to `k` bins on distinct hosts, each with room for
// the ball (capacity - used >= size), taken from the disk level whenever the
// list holds a disk-level bin at all (memory-level bins are caches, not
// copies). Fewer than k when fewer hosts have room, none when no bin has:
// what that means (ENOSPC, a degraded write) is the caller's decision.
//
//   round-robin           the next bin with room after the previous ball's first bin, in id order
//   random                one bin drawn with probability proportional to its capacity (uniform when equal)
//   two-choices           two bins drawn as in `random`; the one less filled once the ball is in wins
//   weighted-round-robin  smooth weighted round robin (nginx's), weight = capacity
//   sort-uf               the least utilised bins, by the cost of cost.ts without locality: scans every bin
//   context (default)     two-choices on the cost of cost.ts (fill and the host's context); for the first
//                         replica the writer's own bins compete too, with a locality bonus
//
// The sampling policies (random, two-choices, context) draw with rejection
// (a drawn bin without room, or on a host already chosen, is drawn again) and
// only after MAX_TRIES misses list the bins that qualify and draw from that
// list, which is the same distribution. A decision therefore costs O(k) in a
// cluster with room to spare, whatever the number of bins. Round-robin walks
// past the bins without room. Weighted round-robin and sort-uf look at every
// bin: O(k * n).
//
// The index: what never changes while a bin lives (id, host, level,
// capacity) is indexed once and reused while the caller passes the same array
// at the same length, or a new array with the same bins in the same order
// (one comparison pass). Anything else rebuilds it, and the weighted
// round-robin credits and the round-robin cursor stay with their bins.
// `used` and `context` are read afresh on every decision. A bin found out of
// step with the index (another id or capacity at its place: the array was
// changed in place) makes the decision start again on a fresh index, so no
// ball is placed on stale facts. Bins are ordered by id inside the index, so
// the order of the list never changes an answer.

import { BinIndex, STALE } from './bin-index.ts'
import { fillAfter, utilisationCost, W_LOCAL } from './cost.ts'
import { Rng, type RngState } from './rng.ts'
import { DEFAULT_POLICY, isPolicy, POLICIES, type PlacementBin, type PlacementRequest, type Policy } from './types.ts'
import { SmoothWeightedRoundRobin } from './weighted-round-robin.ts'

/** Rejected draws before a replica of a sampling policy lists the bins that qualify. */
export const MAX_TRIES = 32
const DEFAULT_SEED = 1
const STAMP_LIMIT = 0x7fffffff

export interface AllocatorOptions {
  /** Default `context`. */
  policy?: Policy
  /** Any safe integer; default 1. */
  seed?: number
}

export class Allocator {
  readonly policy: Policy
  readonly seed: number
  private readonly rng: Rng
  private index: BinIndex | null = null
  /** Round-robin: the slot the next ball's first replica starts looking at. */
  private cursor = 0
  private wrr: SmoothWeightedRoundRobin | null = null
  // The decision in progress, read by the weighted round-robin (internal: not part of the API).
  /** @internal The slots chosen so far for this ball. */
  picked = new Int32Array(0)
  pickedCount = 0
  /** @internal Host number -> epoch of the decision that took it. */
  taken = new Int32Array(0)
  epoch = 0
  /** The slots that qualify for the current replica, once listed (-1: not listed). */
  private list = new Int32Array(0)
  private listed = -1
  /** sort-uf: each slot's cost in the current decision (Infinity: does not qualify). */
  private cost = new Float64Array(0)
  private readonly savedRng: RngState = [0, 0, 0, 0]
  private savedCursor = 0

  constructor (options: AllocatorOptions = {}) {
    const policy = options.policy ?? DEFAULT_POLICY
    if (!isPolicy(policy)) throw new TypeError(`unknown allocator policy '${String(policy)}' (one of ${POLICIES.join(', ')})`)
    this.policy = policy
    this.seed = options.seed ?? DEFAULT_SEED
    this.rng = new Rng(this.seed)
  }

  /**
   * The bins for a new ball: up to `k`, on distinct hosts, best first (the
   * first is where the ball should be written first). Returns the caller's own
   * bin objects.
   */
  allocate<B extends PlacementBin> (bins: readonly B[], request: PlacementRequest): B[] {
    checkRequest(request)
    if (!Array.isArray(bins)) throw new TypeError('bins must be an array')
    const index = this.index !== null && this.index.describes(bins) ? this.index : this.reindex(bins)
    this.saveState()
    try {
      return this.decide(bins, index, request)
    } catch (err) {
      if (err !== STALE) throw err
      this.restoreState()
    }
    try {
      return this.decide(bins, this.reindex(bins), request)
    } catch (err) {
      // Only bins that change while being read (getters, proxies) get here.
      if (err === STALE) throw new TypeError('the bins changed during the allocation')
      throw err
    }
  }

  private decide<B extends PlacementBin> (bins: readonly B[], index: BinIndex, request: PlacementRequest): B[] {
    const out: B[] = []
    if (index.slots === 0) return out
    if (++this.epoch === STAMP_LIMIT) {
      this.taken.fill(0)
      this.epoch = 1
    }
    const { size, k } = request
    const want = Math.min(k, index.hosts.length)
    const sortUf = this.policy === 'sort-uf'
    // sort-uf: one pass over every bin finds the first replica (and keeps the costs for the others).
    const cheapest = sortUf ? this.costAll(bins, index, size, want > 1) : -1
    let at = this.cursor < index.slots ? this.cursor : 0
    let first = -1
    this.pickedCount = 0
    for (let r = 0; r < want; r++) {
      this.listed = -1
      let s: number
      switch (this.policy) {
        case 'round-robin': s = this.nextInOrder(bins, index, size, at); break
        case 'random': s = this.candidate(bins, index, size); break
        case 'two-choices': s = this.twoChoices(bins, index, size); break
        case 'weighted-round-robin': s = (this.wrr as SmoothWeightedRoundRobin).step(bins, index, size, this); break
        case 'sort-uf': s = r === 0 ? cheapest : this.leastCost(index); break
        case 'context': s = this.contextChoice(bins, index, size, r === 0 ? request.writerHost : undefined); break
      }
      if (s < 0) break
      if (r === 0) first = s
      at = s + 1 < index.slots ? s + 1 : 0
      this.taken[index.hostOf[s]] = this.epoch
      this.picked[this.pickedCount++] = s
      out.push(bins[index.pos[s]])
    }
    if (this.policy === 'round-robin' && first >= 0) this.cursor = first + 1 < index.slots ? first + 1 : 0
    return out
  }

  // ------------------------------------------------------------ candidates

  /** @internal Whether the bin at a slot may take the ball: room, and its host not chosen yet in this decision. */
  qualifies (bins: readonly PlacementBin[], index: BinIndex, s: number, size: number): boolean {
    if (this.taken[index.hostOf[s]] === this.epoch) return false
    const bin = index.binAt(bins, s)
    return bin.capacity - bin.used >= size
  }

  private draw (index: BinIndex): number {
    return index.sampler === null ? this.rng.below(index.slots) : index.sampler.draw(this.rng.float())
  }

  /** A qualifying slot drawn with probability proportional to capacity among those that qualify; -1 when none does. */
  private candidate (bins: readonly PlacementBin[], index: BinIndex, size: number): number {
    if (this.listed < 0) {
      for (let t = 0; t < MAX_TRIES; t++) {
        const s = this.draw(index)
        if (this.qualifies(bins, index, s, size)) return s
      }
      let m = 0
      for (let s = 0; s < index.slots; s++) if (this.qualifies(bins, index, s, size)) this.list[m++] = s
      this.listed = m
    }
    const m = this.listed
    if (m === 0) return -1
    if (index.sampler !== null) {
      let total = 0
      for (let i = 0; i < m; i++) total += index.capacity[this.list[i]]
      if (total > 0) {
        let u = this.rng.float() * total
        for (let i = 0; i < m - 1; i++) {
          u -= index.capacity[this.list[i]]
          if (u < 0) return this.list[i]
        }
        return this.list[m - 1]
      }
    }
    return this.list[this.rng.below(m)]
  }

  /** Whether slot a beats slot b at these costs: the lower cost, then the smaller id (slots are in id order). */
  private static beats (a: number, costA: number, b: number, costB: number): boolean {
    return costA < costB || (costA === costB && a < b) || (costB !== costB && costA === costA)
  }

  // ------------------------------------------------------------ policies

  private nextInOrder (bins: readonly PlacementBin[], index: BinIndex, size: number, start: number): number {
    for (let i = 0, s = start; i < index.slots; i++, s = s + 1 < index.slots ? s + 1 : 0) {
      if (this.qualifies(bins, index, s, size)) return s
    }
    return -1
  }

  private twoChoices (bins: readonly PlacementBin[], index: BinIndex, size: number): number {
    const a = this.candidate(bins, index, size)
    if (a < 0) return -1
    const b = this.candidate(bins, index, size)
    const costA = fillAfter(bins[index.pos[a]], size)
    const costB = fillAfter(bins[index.pos[b]], size)
    return Allocator.beats(b, costB, a, costA) ? b : a
  }

  private contextChoice (bins: readonly PlacementBin[], index: BinIndex, size: number, writerHost: string | undefined): number {
    const a = this.candidate(bins, index, size)
    if (a < 0) return -1
    const b = this.candidate(bins, index, size)
    const local = writerHost === undefined ? undefined : index.slotsOf.get(writerHost)
    const localHost = local === undefined ? -1 : index.hostOf[local[0]]
    const costOf = (s: number): number =>
      utilisationCost(bins[index.pos[s]], size) - (index.hostOf[s] === localHost ? W_LOCAL : 0)
    let best = a
    let bestCost = costOf(a)
    const costB = costOf(b)
    if (Allocator.beats(b, costB, best, bestCost)) {
      best = b
      bestCost = costB
    }
    // The writer's own bins compete for the first replica: all of them, as a host has few.
    if (local !== undefined) {
      for (let i = 0; i < local.length; i++) {
        const s = local[i]
        if (!this.qualifies(bins, index, s, size)) continue
        const c = costOf(s)
        if (Allocator.beats(s, c, best, bestCost)) {
          best = s
          bestCost = c
        }
      }
    }
    return best
  }

  /** sort-uf: the cheapest slot with room (-1: none); with `keep`, every slot's cost too (Infinity: no room). */
  private costAll (bins: readonly PlacementBin[], index: BinIndex, size: number, keep: boolean): number {
    let best = -1
    let bestCost = Infinity
    for (let s = 0; s < index.slots; s++) {
      const bin = index.binAt(bins, s)
      let c = Infinity
      if (bin.capacity - bin.used >= size) {
        c = utilisationCost(bin, size)
        if (c !== c) c = Number.MAX_VALUE // a NaN context ranks last, yet still ranks
        if (best < 0 || c < bestCost) { // on a tie the first: the smaller id
          best = s
          bestCost = c
        }
      }
      if (keep) this.cost[s] = c
    }
    return best
  }

  /** sort-uf: the cheapest slot on a host not chosen yet. Taking these in turn is the sorted order, host by host. */
  private leastCost (index: BinIndex): number {
    const { slots, hostOf } = index
    const { cost, taken, epoch } = this
    let best = -1
    let bestCost = Infinity
    for (let s = 0; s < slots; s++) {
      const c = cost[s]
      if (c === Infinity || taken[hostOf[s]] === epoch) continue
      if (best < 0 || c < bestCost) { // on a tie the first, the smaller id
        best = s
        bestCost = c
      }
    }
    return best
  }

  // ------------------------------------------------------------ state

  private reindex (bins: readonly PlacementBin[]): BinIndex {
    const old = this.index
    const next = new BinIndex(bins)
    const n = next.slots
    // The round-robin cursor and the weighted round-robin credits stay with their bins.
    let cursor = 0
    if (old !== null && old.slots > 0) cursor = Math.max(0, next.ids.indexOf(old.ids[this.cursor < old.slots ? this.cursor : 0]))
    if (this.policy === 'weighted-round-robin') this.wrr = new SmoothWeightedRoundRobin(next, this.wrr)
    this.index = next
    this.cursor = cursor
    this.picked = new Int32Array(next.hosts.length)
    this.taken = new Int32Array(next.hosts.length)
    this.epoch = 0
    this.list = new Int32Array(n)
    this.cost = new Float64Array(n)
    return next
  }

  private saveState (): void {
    this.rng.save(this.savedRng)
    this.savedCursor = this.cursor
    this.wrr?.save()
  }

  private restoreState (): void {
    this.rng.restore(this.savedRng)
    this.cursor = this.savedCursor
    this.wrr?.restore()
  }
}

/** Programmer mistakes: TypeErrors, as everywhere in Chaac. */
function checkRequest (request: PlacementRequest): void {
  if (request === null || typeof request !== 'object') throw new TypeError('allocation request must be an object')
  const { size, k, writerHost } = request
  if (typeof size !== 'number' || !Number.isFinite(size) || size < 0) {
    throw new TypeError(`ball size must be a finite number >= 0, got ${String(size)}`)
  }
  if (!Number.isInteger(k) || k < 1) throw new TypeError(`k (replicas) must be an integer >= 1, got ${String(k)}`)
  if (writerHost !== undefined && typeof writerHost !== 'string') throw new TypeError('writerHost must be a string')
}
