// What the allocator derives from a bin list once, so that a decision need
// not scan a thousand bins: which bins are candidates (the durable level when
// there is one), their hosts as small integers, the bins of each host, the
// order of their ids, and a capacity-weighted sampler.
//
// It holds only what does not change while a bin lives (id, host, level,
// capacity). `used` and `context` are read from the bins on every decision.

import { AliasTable } from './alias-table.ts'
import type { PlacementBin } from './types.ts'

/** Thrown by `binAt` when the list was changed in place; the allocator catches it and starts the decision again. */
export const STALE = Symbol('stale bin index')

export class BinIndex {
  /** The list this index describes, and its length then. */
  private source: readonly PlacementBin[]
  private readonly sourceLength: number
  /** Every bin's lasting facts, by position in the list (to recognise the same bins in a new array). */
  private readonly facts: Array<[string, string, string, number]>
  /** Number of candidate bins ("slots", in the order of their ids); the arrays below are indexed by slot. */
  readonly slots: number
  /** Slot -> position in `source`. */
  readonly pos: Int32Array
  readonly ids: string[]
  readonly capacity: Float64Array
  /** Slot -> host number; host number -> name. */
  readonly hostOf: Int32Array
  readonly hosts: string[]
  /** Host name -> its slots; host number -> its slots. */
  readonly slotsOf: Map<string, Int32Array>
  readonly hostSlots: Int32Array[]
  /** The sum of the candidates' capacities. */
  readonly totalCapacity: number
  /** Capacity-weighted draws; null when all capacities are equal (a uniform draw is the same and cheaper). */
  readonly sampler: AliasTable | null
  /** True when the candidates are the disk-level bins only (some exist); false: no disk bin, so every bin. */
  readonly durableOnly: boolean

  /** Checks the bins (programmer mistakes are TypeErrors) and indexes them. */
  constructor (bins: readonly PlacementBin[]) {
    const seen = new Set<string>()
    let durableOnly = false
    for (let i = 0; i < bins.length; i++) {
      const b = bins[i]
      if (b === null || typeof b !== 'object') throw new TypeError(`bin ${i} is not an object`)
      if (typeof b.id !== 'string' || b.id === '') throw new TypeError(`bin ${i}: id must be a non-empty string`)
      if (seen.has(b.id)) throw new TypeError(`bin ${i}: duplicate id '${b.id}'`)
      seen.add(b.id)
      if (typeof b.host !== 'string' || b.host === '') throw new TypeError(`bin '${b.id}': host must be a non-empty string`)
      if (b.level !== 'disk' && b.level !== 'mem') throw new TypeError(`bin '${b.id}': level must be 'mem' or 'disk'`)
      if (typeof b.capacity !== 'number' || !(b.capacity >= 0) || b.capacity === Infinity) {
        throw new TypeError(`bin '${b.id}': capacity must be a finite number >= 0`)
      }
      if (b.level === 'disk') durableOnly = true
    }
    // Slots go in the order of the bins' ids: ties between slots go to the smaller slot,
    // which is the smaller id, and the answers do not depend on the order of the list.
    const positions: number[] = []
    for (let i = 0; i < bins.length; i++) if (!durableOnly || bins[i].level === 'disk') positions.push(i)
    positions.sort((x, y) => (bins[x].id < bins[y].id ? -1 : 1))

    const n = positions.length
    this.source = bins
    this.sourceLength = bins.length
    this.facts = bins.map((b) => [b.id, b.host, b.level, b.capacity])
    this.slots = n
    this.durableOnly = durableOnly
    this.pos = Int32Array.from(positions)
    this.ids = positions.map((p) => bins[p].id)
    this.capacity = Float64Array.from(positions, (p) => bins[p].capacity)
    this.hostOf = new Int32Array(n)
    this.hosts = []
    const hostNumber = new Map<string, number>()
    const members: number[][] = []
    for (let s = 0; s < n; s++) {
      const host = bins[positions[s]].host
      let h = hostNumber.get(host)
      if (h === undefined) {
        h = this.hosts.length
        hostNumber.set(host, h)
        this.hosts.push(host)
        members.push([])
      }
      this.hostOf[s] = h
      members[h].push(s)
    }
    this.hostSlots = members.map((slots) => Int32Array.from(slots))
    this.slotsOf = new Map(this.hosts.map((host, h) => [host, this.hostSlots[h]]))
    let total = 0
    for (let s = 0; s < n; s++) total += this.capacity[s]
    this.totalCapacity = total
    let equal = true
    for (let s = 1; s < n && equal; s++) equal = this.capacity[s] === this.capacity[0]
    this.sampler = equal ? null : AliasTable.build(this.capacity)
  }

  /**
   * Whether this index describes `bins`: the very list it was built from,
   * still as long; or a new array with the same bins (id, host, level,
   * capacity) in the same order, which it then adopts (one pass, no rebuild).
   */
  describes (bins: readonly PlacementBin[]): boolean {
    if (bins.length !== this.sourceLength) return false
    if (bins === this.source) return true
    for (let i = 0; i < bins.length; i++) {
      const b = bins[i]
      const f = this.facts[i]
      if (b === null || typeof b !== 'object' || b.id !== f[0] || b.host !== f[1] || b.level !== f[2] || b.capacity !== f[3]) return false
    }
    this.source = bins
    return true
  }

  /** The bin at a slot, checked to be the one indexed there (a cheap check on every bin a decision reads); throws STALE if not. */
  binAt<B extends PlacementBin> (bins: readonly B[], slot: number): B {
    const bin = bins[this.pos[slot]]
    if (bin.id !== this.ids[slot] || bin.capacity !== this.capacity[slot]) throw STALE
    return bin
  }
}
