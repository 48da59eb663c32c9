// Smooth weighted round robin (nginx's), weight = capacity: at every step
// each bin that may take the ball gains its weight in credit, the one with the
// most credit wins (the smaller id on a tie) and pays the sum of the weights
// gained. Over a round of sum(weights) steps every bin is chosen in
// proportion to its weight, and as evenly spread as it can be.
//
// Bins on hosts already chosen for this ball sit the step out. A bin is
// checked for room when it comes out on top; one without room loses its
// credit and sits out, from then on checked at every step, until it has room
// again.
//
// The gains are kept lazily, so that a step reads the bins once and touches
// only the bins that sit out or pay: a slot's credit is base + ticks * weight.

import { type BinIndex } from './bin-index.ts'
import type { PlacementBin } from './types.ts'

/** Bins found without room in one step before the step checks every bin. */
const MISSES = 4
/** Steps between two folds of the lazy gains into the bases (keeps the numbers small). */
const FOLD = 1024
const STAMP_LIMIT = 0x7fffffff

/** What a step needs from the allocator's decision in progress. */
export interface Decision {
  /** Whether the bin at a slot may take the ball: room, and its host not chosen yet. */
  qualifies: (bins: readonly PlacementBin[], index: BinIndex, slot: number, size: number) => boolean
  /** Host number -> epoch of the decision that took it. */
  readonly taken: Int32Array
  readonly epoch: number
  /** The slots chosen so far for this ball. */
  readonly picked: Int32Array
  readonly pickedCount: number
}

export class SmoothWeightedRoundRobin {
  private readonly index: BinIndex
  private readonly base: Float64Array
  private ticks = 0
  /** The slots known to be without room: the first fullCount of `full`, and a flag per slot. */
  private readonly full: Int32Array
  private fullCount = 0
  private readonly isFull: Uint8Array
  /** Slot -> stamp of the step in which it sits out for want of room. */
  private readonly excluded: Int32Array
  private stamp = 0
  /** The slots sitting out for want of room in the current step. */
  private readonly out: Int32Array
  private readonly savedBase: Float64Array
  private savedTicks = 0

  /** For a fresh index; `previous` hands its credits on to the bins that are still there. */
  constructor (index: BinIndex, previous: SmoothWeightedRoundRobin | null = null) {
    const n = index.slots
    this.index = index
    this.base = new Float64Array(n)
    this.full = new Int32Array(n)
    this.isFull = new Uint8Array(n)
    this.excluded = new Int32Array(n)
    this.out = new Int32Array(n)
    this.savedBase = new Float64Array(n)
    if (previous !== null) {
      const slotOf = new Map(index.ids.map((id, s) => [id, s]))
      const old = previous.index
      for (let s = 0; s < old.slots; s++) {
        const t = slotOf.get(old.ids[s])
        if (t !== undefined) this.base[t] = previous.base[s] + previous.ticks * old.capacity[s]
      }
    }
  }

  /** One step: the chosen slot, or -1 when no bin may take the ball. */
  step (bins: readonly PlacementBin[], index: BinIndex, size: number, decision: Decision): number {
    if (++this.stamp === STAMP_LIMIT) {
      this.excluded.fill(0)
      this.stamp = 1
    }
    const { slots, capacity: weight, hostOf } = index
    const { base, excluded, stamp, ticks } = this
    const { taken, epoch, picked, pickedCount } = decision
    const next = ticks + 1
    let out = 0
    // Bins known to be without room sit out while they stay so, at zero credit.
    for (let i = 0; i < this.fullCount; i++) {
      const s = this.full[i]
      const bin = index.binAt(bins, s)
      if (bin.capacity - bin.used >= size) {
        this.full[i--] = this.full[--this.fullCount]
        this.isFull[s] = 0
        continue
      }
      base[s] = -ticks * weight[s]
      if (taken[hostOf[s]] === epoch) continue // sits out with its host
      excluded[s] = stamp
      this.out[out++] = s
    }
    let misses = 0
    for (;;) {
      let best = -1
      let bestValue = -Infinity
      if (pickedCount === 0 && out === 0) {
        for (let s = 0; s < slots; s++) {
          const v = base[s] + next * weight[s]
          if (v > bestValue) { // on a tie the first: the smaller id
            best = s
            bestValue = v
          }
        }
      } else {
        for (let s = 0; s < slots; s++) {
          if (excluded[s] === stamp || taken[hostOf[s]] === epoch) continue
          const v = base[s] + next * weight[s]
          if (v > bestValue) {
            best = s
            bestValue = v
          }
        }
      }
      if (best < 0) return -1
      if (decision.qualifies(bins, index, best, size)) {
        // Everyone gained `weight` (ticks + 1), except those sitting out; the winner pays what was gained.
        let total = index.totalCapacity
        for (let i = 0; i < pickedCount; i++) {
          const mates = index.hostSlots[hostOf[picked[i]]]
          for (let j = 0; j < mates.length; j++) {
            base[mates[j]] -= weight[mates[j]]
            total -= weight[mates[j]]
          }
        }
        for (let i = 0; i < out; i++) {
          base[this.out[i]] -= weight[this.out[i]]
          total -= weight[this.out[i]]
        }
        base[best] -= total
        this.ticks = next
        if (next === FOLD) this.fold()
        return best
      }
      this.sitOut(best, ticks, out++)
      if (++misses === MISSES) {
        // Many bins without room: find them all at once rather than with one scan each.
        for (let s = 0; s < slots; s++) {
          if (excluded[s] === stamp || taken[hostOf[s]] === epoch || decision.qualifies(bins, index, s, size)) continue
          this.sitOut(s, ticks, out++)
        }
      }
    }
  }

  /** Before a decision, so that a decision started again can undo its steps. */
  save (): void {
    this.savedBase.set(this.base)
    this.savedTicks = this.ticks
  }

  restore (): void {
    this.base.set(this.savedBase)
    this.ticks = this.savedTicks
  }

  private sitOut (s: number, ticks: number, at: number): void {
    this.excluded[s] = this.stamp
    this.base[s] = -ticks * this.index.capacity[s]
    this.out[at] = s
    if (this.isFull[s] === 0) {
      this.isFull[s] = 1
      this.full[this.fullCount++] = s
    }
  }

  private fold (): void {
    const weight = this.index.capacity
    for (let s = 0; s < this.base.length; s++) this.base[s] += this.ticks * weight[s]
    this.ticks = 0
  }
}
