// A small seeded pseudo-random generator: sfc32 (Chris Doty-Humphrey's
// "small fast counting" generator, 128 bits of state, passes PractRand),
// seeded through splitmix32. The allocator's only source of randomness, so
// one seed always gives the same placements. Not for anything secret.

const TWO_32 = 4294967296
const TWO_53 = 9007199254740992

/** The generator's whole state, to save before a decision and restore after a retry. */
export type RngState = [number, number, number, number]

export class Rng {
  private a: number
  private b: number
  private c: number
  private d: number

  /** `seed`: any safe integer (negative ones too); equal seeds give equal sequences. */
  constructor (seed: number) {
    if (!Number.isSafeInteger(seed)) throw new TypeError(`rng seed must be a safe integer, got ${String(seed)}`)
    // Both halves of the seed count, so 1 and 2^32 + 1 differ.
    let s = (seed >>> 0) ^ Math.imul(Math.floor(seed / TWO_32) | 0, 0x9e3779b1)
    const next = (): number => {
      s = (s + 0x9e3779b9) | 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) | 0
    }
    this.a = next()
    this.b = next()
    this.c = next()
    this.d = next()
    for (let i = 0; i < 15; i++) this.uint32()
  }

  /** A uniform integer in [0, 2^32). */
  uint32 (): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** A uniform float in [0, 1) with 53 random bits. */
  float (): number {
    const hi = this.uint32() >>> 5
    const lo = this.uint32() >>> 6
    return (hi * 67108864 + lo) / TWO_53
  }

  /** A uniform integer in [0, n), for 1 <= n <= 2^32 (multiply-shift: no division, bias below 2^-32 * n). */
  below (n: number): number {
    return Math.floor((this.uint32() / TWO_32) * n)
  }

  save (into: RngState): void {
    into[0] = this.a
    into[1] = this.b
    into[2] = this.c
    into[3] = this.d
  }

  restore (from: RngState): void {
    this.a = from[0]
    this.b = from[1]
    this.c = from[2]
    this.d = from[3]
  }
}
