// Walker's alias method (Vose's construction): after an O(n) build, draws an
// index with probability weight[i] / sum(weights) in O(1) from one uniform
// float. The build is deterministic (fixed scan order), so a seeded generator
// gives the same draws on every machine.

export class AliasTable {
  /** Chance of keeping column i rather than taking its alias. */
  private readonly keep: Float64Array
  private readonly alias: Int32Array
  readonly size: number

  private constructor (keep: Float64Array, alias: Int32Array) {
    this.keep = keep
    this.alias = alias
    this.size = keep.length
  }

  /** Null when no weight is above zero (nothing can be drawn). Weights must be finite and >= 0. */
  static build (weights: ArrayLike<number>): AliasTable | null {
    const n = weights.length
    let total = 0
    for (let i = 0; i < n; i++) total += weights[i]
    if (n === 0 || !(total > 0)) return null
    const scaled = new Float64Array(n)
    const keep = new Float64Array(n)
    const alias = new Int32Array(n)
    const small = new Int32Array(n)
    const large = new Int32Array(n)
    let ns = 0
    let nl = 0
    for (let i = 0; i < n; i++) {
      scaled[i] = (weights[i] * n) / total
      alias[i] = i
      if (scaled[i] < 1) small[ns++] = i
      else large[nl++] = i
    }
    while (ns > 0 && nl > 0) {
      const s = small[--ns]
      const l = large[nl - 1]
      keep[s] = scaled[s]
      alias[s] = l
      scaled[l] = (scaled[l] + scaled[s]) - 1
      if (scaled[l] < 1) {
        nl--
        small[ns++] = l
      }
    }
    // What is left is 1 up to rounding.
    while (nl > 0) keep[large[--nl]] = 1
    while (ns > 0) keep[small[--ns]] = 1
    return new AliasTable(keep, alias)
  }

  /** `u`: a uniform float in [0, 1). */
  draw (u: number): number {
    const x = u * this.size
    const i = Math.floor(x)
    return x - i < this.keep[i] ? i : this.alias[i]
  }
}
