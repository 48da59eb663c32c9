// Zones of a cluster: its hosts (and containers) ranked by their context and
// grouped by k-means over their utilisation vectors. Pure and deterministic:
// k-means++ seeding from a fixed seed, members taken in id order, ties to the
// lower index; the zones are numbered from 1, least loaded first.
import { W_CPU, W_FILE_SYSTEM, W_MEMORY, W_NET } from '../placement/cost.ts'
import { Rng } from '../placement/rng.ts'
import type { Utilisation } from '../placement/types.ts'

export const FACTORS = ['ufCPU', 'ufMemory', 'ufFileSystem', 'ufNet'] as const

const SEED = 14
const MAX_ROUNDS = 100

export interface ZoneInput {
  kind: 'host' | 'container'
  id: string
  agent: string
  name: string
  context: Utilisation
}

export interface ZoneMember extends ZoneInput {
  score: number
  rank: number
  zone: number
}

export interface Zone {
  zone: number
  centroid: Utilisation
  members: string[]
}

/** A host's load as the allocator weighs it (cost.ts without the bin's fill): lower is better. */
export function loadScore (c: Utilisation): number {
  return W_FILE_SYSTEM * c.ufFileSystem + W_CPU * c.ufCPU + W_NET * c.ufNet + W_MEMORY * c.ufMemory
}

const vectorOf = (c: Utilisation): number[] => FACTORS.map((f) => c[f])
const utilisationOf = (v: number[]): Utilisation => ({ ufCPU: v[0], ufMemory: v[1], ufFileSystem: v[2], ufNet: v[3] })

function distance2 (a: number[], b: number[]): number {
  let d = 0
  for (let i = 0; i < a.length; i++) d += (a[i] - b[i]) ** 2
  return d
}

function nearest (p: number[], centroids: number[][]): number {
  let best = 0
  for (let j = 1; j < centroids.length; j++) if (distance2(p, centroids[j]) < distance2(p, centroids[best])) best = j
  return best
}

/** k-means over the points (k between 1 and their count): each point's cluster and the centroids. */
export function kmeans (points: number[][], k: number, seed = SEED): { assignment: number[], centroids: number[][] } {
  if (!Number.isInteger(k) || k < 1 || k > points.length) throw new RangeError(`k must be between 1 and ${points.length}, got ${k}`)
  const rng = new Rng(seed)
  // k-means++: the first centre at random, each next one drawn with probability proportional to its squared distance.
  const chosen = [rng.below(points.length)]
  while (chosen.length < k) {
    const d2 = points.map((p) => Math.min(...chosen.map((c) => distance2(p, points[c]))))
    const total = d2.reduce((a, b) => a + b, 0)
    let next: number
    if (total === 0) {
      // Every point sits on a centre already: take the first not chosen.
      next = points.findIndex((_, i) => !chosen.includes(i))
    } else {
      // Rounding may leave r at the end: the last point with a distance then.
      let r = rng.float() * total
      next = -1
      for (let i = 0; i < d2.length; i++) {
        if (d2[i] === 0) continue
        next = i
        r -= d2[i]
        if (r < 0) break
      }
    }
    chosen.push(next)
  }
  const centroids = chosen.map((i) => [...points[i]])
  let assignment = points.map((p) => nearest(p, centroids))
  for (let round = 0; round < MAX_ROUNDS; round++) {
    for (let j = 0; j < k; j++) {
      const mine = points.filter((_, i) => assignment[i] === j)
      // An empty cluster keeps its centre.
      if (mine.length > 0) centroids[j] = centroids[j].map((_, d) => mine.reduce((s, p) => s + p[d], 0) / mine.length)
    }
    const next = points.map((p) => nearest(p, centroids))
    if (next.every((c, i) => c === assignment[i])) break
    assignment = next
  }
  return { assignment, centroids }
}

/** The members ranked (1: least loaded) and grouped in min(k, members) zones. */
export function zonesOf (inputs: ZoneInput[], k: number): { k: number, members: ZoneMember[], zones: Zone[] } {
  const sorted = [...inputs].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0)
  const kk = Math.min(k, sorted.length)
  if (kk === 0) return { k: 0, members: [], zones: [] }
  const { assignment, centroids } = kmeans(sorted.map((m) => vectorOf(m.context)), kk)
  // Zones numbered by their centre's load, the least loaded first.
  const order = centroids.map((c, j) => ({ j, score: loadScore(utilisationOf(c)) })).sort((a, b) => a.score - b.score || a.j - b.j)
  const zoneOf = new Map(order.map((o, n) => [o.j, n + 1]))
  const scored = sorted.map((m, i) => ({ ...m, score: loadScore(m.context), zone: zoneOf.get(assignment[i]) as number }))
  const ranked = [...scored].sort((a, b) => a.score - b.score || (a.id < b.id ? -1 : 1))
  const members = ranked.map((m, i) => ({ ...m, rank: i + 1 }))
  const zones = order.map((o, n) => ({
    zone: n + 1,
    centroid: utilisationOf(centroids[o.j]),
    members: members.filter((m) => m.zone === n + 1).map((m) => m.id)
  }))
  return { k: kk, members, zones }
}
