import t from 'tap'
import { AliasTable } from '../../src/placement/alias-table.ts'
import { Allocator, MAX_TRIES } from '../../src/placement/allocator.ts'
import { NEARLY_FULL, UNKNOWN_UF, utilisationCost, W_CPU, W_FILE_SYSTEM, W_FILL, W_MEMORY, W_NET } from '../../src/placement/cost.ts'
import { Rng } from '../../src/placement/rng.ts'
import { POLICIES, type PlacementBin, type Policy, type Utilisation } from '../../src/placement/types.ts'

const MiB = 1024 * 1024
const GiB = 1024 * MiB
const BALL = 4 * MiB
const IDLE: Utilisation = { ufCPU: 0.1, ufMemory: 0.2, ufFileSystem: 0.2, ufNet: 0.1 }

interface Layout {
  hosts: number
  perHost: number
  capacity?: number | ((host: number, bin: number) => number)
  used?: number | ((host: number, bin: number) => number)
  level?: 'mem' | 'disk' | ((host: number, bin: number) => 'mem' | 'disk')
  context?: Utilisation | ((host: number) => Utilisation | undefined)
}

/** Bins `h<host>-b<bin>` on hosts `h<host>` (ids zero-padded, so id order is host order). */
function cluster (layout: Layout): PlacementBin[] {
  const at = <T>(v: T | ((h: number, b: number) => T) | undefined, h: number, b: number, d: T): T =>
    v === undefined ? d : typeof v === 'function' ? (v as (h: number, b: number) => T)(h, b) : v
  const bins: PlacementBin[] = []
  for (let h = 0; h < layout.hosts; h++) {
    for (let b = 0; b < layout.perHost; b++) {
      const context = typeof layout.context === 'function' ? layout.context(h) : layout.context
      bins.push({
        id: `h${String(h).padStart(2, '0')}-b${String(b).padStart(2, '0')}`,
        host: `h${String(h).padStart(2, '0')}`,
        level: at(layout.level, h, b, 'disk'),
        capacity: at(layout.capacity, h, b, 10 * GiB),
        used: at(layout.used, h, b, 0),
        ...(context === undefined ? {} : { context })
      })
    }
  }
  return bins
}

/** Places `balls` balls of BALL bytes (k = 1 unless said), adding them to the bins; the chosen ids in order. */
function place (alloc: Allocator, bins: PlacementBin[], balls: number, k = 1, writerHost?: string): string[][] {
  const out: string[][] = []
  for (let i = 0; i < balls; i++) {
    const chosen = alloc.allocate(bins, { size: BALL, k, writerHost })
    for (const b of chosen) b.used += BALL
    out.push(chosen.map((b) => b.id))
  }
  return out
}

/** Max fill minus mean fill (fill = used / capacity; mean over all bytes). */
function gap (bins: PlacementBin[]): number {
  let max = 0
  let used = 0
  let capacity = 0
  for (const b of bins) {
    max = Math.max(max, b.used / b.capacity)
    used += b.used
    capacity += b.capacity
  }
  return max - used / capacity
}

function shareOf (picks: string[][], host: string): number {
  return picks.filter((p) => p[0].startsWith(host + '-')).length / picks.length
}

t.test('allocate - k replicas on distinct hosts, each with room', async (t) => {
  const cases: Array<{ k: number, hosts: number, perHost: number, want: number }> = [
    { k: 1, hosts: 5, perHost: 3, want: 1 },
    { k: 2, hosts: 5, perHost: 3, want: 2 },
    { k: 3, hosts: 5, perHost: 3, want: 3 },
    { k: 5, hosts: 5, perHost: 1, want: 5 },
    { k: 4, hosts: 3, perHost: 4, want: 3 }, // fewer hosts than k: one per host
    { k: 3, hosts: 1, perHost: 8, want: 1 }
  ]
  for (const policy of POLICIES) {
    for (const c of cases) {
      const bins = cluster({ hosts: c.hosts, perHost: c.perHost, context: IDLE })
      const alloc = new Allocator({ policy, seed: 7 })
      for (const chosen of place(alloc, bins, 200, c.k, 'h00')) {
        const hosts = chosen.map((id) => id.slice(0, 3))
        if (chosen.length !== c.want || new Set(hosts).size !== chosen.length) {
          t.fail(`${policy} k=${c.k} hosts=${c.hosts}: got ${chosen.join(',')}`)
          break
        }
      }
    }
    t.pass(`${policy}`)
  }
})

t.test('allocate - never a bin without room; fewer than k when fewer hosts have room', async (t) => {
  for (const policy of POLICIES) {
    // Hosts 0..5 full, 6..7 with one free bin each (host 6: bin 2, host 7: bin 0), 8..9 nearly full (less than a ball free).
    const bins = cluster({
      hosts: 10,
      perHost: 4,
      capacity: GiB,
      used: (h, b) => (h === 6 && b === 2) || (h === 7 && b === 0) ? 0 : h >= 8 ? GiB - BALL + 1 : GiB
    })
    const alloc = new Allocator({ policy, seed: 3 })
    const picks = Array.from({ length: 300 }, () => alloc.allocate(bins, { size: BALL, k: 3 }).map((b) => b.id))
    t.ok(picks.every((p) => p.length === 2), `${policy}: two hosts with room, two replicas`)
    t.ok(picks.every((p) => p.every((id) => id === 'h06-b02' || id === 'h07-b00')), `${policy}: only the bins with room`)
    t.same(alloc.allocate(bins, { size: BALL - 1, k: 5 }).length, 4, `${policy}: a smaller ball fits the nearly full hosts too`)
    t.same(alloc.allocate(bins, { size: 0, k: 10 }).length, 10, `${policy}: a ball of 0 bytes fits anywhere`)
  }
})

t.test('allocate - nothing with room, or no bins: an empty answer', async (t) => {
  const cases: Array<[string, PlacementBin[], number]> = [
    ['every bin full', cluster({ hosts: 4, perHost: 3, capacity: GiB, used: GiB }), BALL],
    ['ball larger than any bin', cluster({ hosts: 4, perHost: 3, capacity: MiB }), BALL],
    ['capacity 0', cluster({ hosts: 2, perHost: 2, capacity: 0 }), 1],
    ['no bins', [], BALL]
  ]
  for (const policy of POLICIES) {
    for (const [name, bins, size] of cases) {
      t.same(new Allocator({ policy }).allocate(bins, { size, k: 2 }), [], `${policy}: ${name}`)
    }
  }
})

t.test('allocate - the disk level only, whenever a disk bin exists', async (t) => {
  const cases: Array<{ name: string, level: Layout['level'], used?: Layout['used'], want: 'disk' | 'mem' | 'none' }> = [
    { name: 'mem and disk bins on every host', level: (_, b) => b === 0 ? 'mem' : 'disk', want: 'disk' },
    { name: 'one disk bin in the cluster', level: (h, b) => h === 3 && b === 1 ? 'disk' : 'mem', want: 'disk' },
    { name: 'disk bins full, mem bins free: no copy in memory only', level: (_, b) => b === 0 ? 'mem' : 'disk', used: (_, b) => b === 0 ? 0 : 10 * GiB, want: 'none' },
    { name: 'memory bins only (no disk anywhere)', level: 'mem', want: 'mem' }
  ]
  for (const policy of POLICIES) {
    for (const c of cases) {
      const bins = cluster({ hosts: 4, perHost: 3, level: c.level, used: c.used })
      const picks = place(new Allocator({ policy, seed: 5 }), bins, 50, 2).flat()
      const levels = new Set(picks.map((id) => bins.find((b) => b.id === id)?.level))
      t.same([...levels], c.want === 'none' ? [] : [c.want], `${policy}: ${c.name}`)
    }
  }
})

t.test('allocate - deterministic: same seed, same answers; independent of the order of the list', async (t) => {
  const layout: Layout = { hosts: 8, perHost: 4, capacity: (h) => (h % 3 + 1) * GiB, used: (h, b) => ((h * 7 + b * 3) % 5) * 100 * MiB, context: (h) => ({ ...IDLE, ufCPU: h / 10 }) }
  for (const policy of POLICIES) {
    const run = (seed: number, shuffle: boolean): string => {
      const bins = cluster(layout)
      if (shuffle) bins.reverse()
      return place(new Allocator({ policy, seed }), bins, 500, 2, 'h03').map((p) => p.join('+')).join(' ')
    }
    const a = run(42, false)
    t.equal(run(42, false), a, `${policy}: seed 42 twice`)
    t.equal(run(42, true), a, `${policy}: seed 42, reversed list`)
    if (policy === 'random' || policy === 'two-choices' || policy === 'context') t.not(run(43, false), a, `${policy}: seed 43 differs`)
  }
})

t.test('round-robin - cycles through the bins in id order, skipping those without room', async (t) => {
  const bins = cluster({ hosts: 3, perHost: 2 })
  const alloc = new Allocator({ policy: 'round-robin' })
  const ids = bins.map((b) => b.id)
  t.same(place(alloc, bins, 12).flat(), [...ids, ...ids], 'two laps')
  bins[2].used = bins[2].capacity // h01-b00 full
  t.same(place(alloc, bins, 5).flat(), ['h00-b00', 'h00-b01', 'h01-b01', 'h02-b00', 'h02-b01'], 'the full bin is skipped')
  t.same(alloc.allocate(bins, { size: BALL, k: 2 }).map((b) => b.id), ['h00-b00', 'h01-b01'], 'k=2: the next bin on another host')
  t.same(alloc.allocate(bins, { size: BALL, k: 2 }).map((b) => b.id), ['h00-b01', 'h01-b01'], 'the cursor moves one bin per ball')
})

t.test('weighted-round-robin - shares proportional to capacity, smoothly interleaved', async (t) => {
  const cases: Array<[string, number[]]> = [
    ['1:2:3:4', [1, 2, 3, 4]],
    ['5:1:1', [5, 1, 1]],
    ['equal', [2, 2, 2, 2, 2]],
    ['1:10', [1, 10]]
  ]
  for (const [name, weights] of cases) {
    const total = weights.reduce((a, b) => a + b, 0)
    const bins = cluster({ hosts: weights.length, perHost: 1, capacity: (h) => weights[h] * 100 * GiB })
    const alloc = new Allocator({ policy: 'weighted-round-robin' })
    const picks = place(alloc, bins, total * 20).map((p) => Number(p[0].slice(1, 3)))
    t.same(weights.map((_, h) => picks.filter((x) => x === h).length), weights.map((w) => w * 20), `${name}: exact shares over 20 rounds`)
    // Smooth: in every window of one round, each bin within one pick of its weight.
    let smooth = true
    for (let i = 0; i + total <= picks.length; i++) {
      const win = picks.slice(i, i + total)
      if (weights.some((w, h) => Math.abs(win.filter((x) => x === h).length - w) > 1)) smooth = false
    }
    t.ok(smooth, `${name}: every window of ${total} picks is within one of the weights`)
  }
  // The bins of a host already chosen sit out; a bin without room loses its turn, not the others theirs.
  const bins = cluster({ hosts: 3, perHost: 1, capacity: (h) => [1, 1, 2][h] * 100 * GiB })
  bins[2].used = bins[2].capacity
  const picks = place(new Allocator({ policy: 'weighted-round-robin' }), bins, 10).map((p) => p[0])
  t.same(new Set(picks), new Set(['h00-b00', 'h01-b00']), 'the full bin is never chosen')
  t.equal(picks.filter((id) => id === 'h00-b00').length, 5, 'the others share evenly')
})

t.test('two-choices and context - balance far better than random over many balls', async (t) => {
  const cases: Array<[string, Layout]> = [
    ['equal capacities', { hosts: 100, perHost: 1, capacity: 64 * GiB }],
    ['capacities 16, 32, 64 GiB', { hosts: 100, perHost: 1, capacity: (h) => [16, 32, 64][h % 3] * GiB }]
  ]
  for (const [name, layout] of cases) {
    const gaps = new Map<Policy, number>()
    for (const policy of ['random', 'two-choices', 'context'] as const) {
      const bins = cluster(layout)
      place(new Allocator({ policy, seed: 11 }), bins, 20_000)
      gaps.set(policy, gap(bins))
    }
    const random = gaps.get('random') ?? 0
    t.ok((gaps.get('two-choices') ?? 1) * 4 < random, `${name}: two-choices gap ${gaps.get('two-choices')} vs random ${random}`)
    t.ok((gaps.get('context') ?? 1) * 4 < random, `${name}: context gap ${gaps.get('context')} vs random ${random}`)
  }
})

t.test('context - avoids a host at ufCPU 0.95 with its disk 90% full', async (t) => {
  const busy: Utilisation = { ufCPU: 0.95, ufMemory: 0.3, ufFileSystem: 0.9, ufNet: 0.1 }
  const cases: Array<[string, Layout['used']]> = [
    ['bins equally empty (the host\'s disk is full of other things)', 0],
    ['its bins 90% full too', (h) => h === 4 ? 9 * GiB : 0]
  ]
  for (const [name, used] of cases) {
    const layout: Layout = { hosts: 10, perHost: 10, used, context: (h) => h === 4 ? busy : IDLE }
    const shares = new Map<Policy, number>()
    for (const policy of POLICIES) {
      const bins = cluster(layout)
      shares.set(policy, shareOf(place(new Allocator({ policy, seed: 9 }), bins, 5000), 'h04'))
    }
    t.ok((shares.get('context') ?? 1) < 0.03, `${name}: context gives it ${shares.get('context')} (random ${shares.get('random')})`)
    t.ok((shares.get('random') ?? 0) > 0.07, `${name}: random does not look`)
    // Writers on every host, the busy one included: locality does not bring it back.
    const bins = cluster(layout)
    const alloc = new Allocator({ policy: 'context', seed: 9 })
    const picks = Array.from({ length: 5000 }, (_, i) => {
      const chosen = alloc.allocate(bins, { size: BALL, k: 1, writerHost: `h0${i % 10}` })
      for (const b of chosen) b.used += BALL
      return chosen.map((b) => b.id)
    })
    t.ok(shareOf(picks, 'h04') < 0.03, `${name}: writers everywhere, context gives it ${shareOf(picks, 'h04')}`)
  }
})

t.test('context - prefers the writer\'s host for the first replica when otherwise equal', async (t) => {
  const cases: Array<{ name: string, layout: Layout, k: number, writer: string, want: (p: string[]) => boolean }> = [
    { name: '10 equal hosts, k=1', layout: { hosts: 10, perHost: 2, context: IDLE }, k: 1, writer: 'h07', want: (p) => p[0].startsWith('h07-') },
    { name: '10 equal hosts, k=3: first local, the others elsewhere', layout: { hosts: 10, perHost: 2, context: IDLE }, k: 3, writer: 'h02', want: (p) => p[0].startsWith('h02-') && p.slice(1).every((id) => !id.startsWith('h02-')) },
    { name: 'no context reported anywhere', layout: { hosts: 5, perHost: 1 }, k: 1, writer: 'h03', want: (p) => p[0] === 'h03-b00' },
    { name: 'the writer has no bins: no preference, no error', layout: { hosts: 5, perHost: 1, context: IDLE }, k: 2, writer: 'elsewhere', want: (p) => p.length === 2 },
    { name: 'the writer\'s bins are full: elsewhere', layout: { hosts: 5, perHost: 1, context: IDLE, used: (h) => h === 1 ? 10 * GiB : 0 }, k: 1, writer: 'h01', want: (p) => p.length === 1 && !p[0].startsWith('h01-') }
  ]
  for (const c of cases) {
    const bins = cluster(c.layout)
    // 50 balls each: the local bins get fuller than the rest and locality still wins (W_LOCAL is worth 25% of fill).
    const picks = place(new Allocator({ policy: 'context', seed: 1 }), bins, 50, c.k, c.writer)
    t.ok(picks.every(c.want), c.name)
  }
  // Without a writer, or with another policy, no preference: the writer's host gets about its share.
  const bins = cluster({ hosts: 10, perHost: 2, context: IDLE })
  const picks = place(new Allocator({ policy: 'two-choices', seed: 1 }), bins, 1000, 1, 'h07')
  t.ok(shareOf(picks, 'h07') < 0.2, `two-choices ignores the writer (${shareOf(picks, 'h07')})`)
  // Locality is a preference, not a rule: when the local bins are much fuller, other hosts win.
  const uneven = cluster({ hosts: 4, perHost: 1, context: IDLE, used: (h) => h === 0 ? 5 * GiB : 0 })
  t.not(new Allocator({ policy: 'context' }).allocate(uneven, { size: BALL, k: 1, writerHost: 'h00' })[0].id, 'h00-b00', 'a local bin 50% fuller loses')
})

t.test('sort-uf - the least utilised bins first, one per host, ties by id', async (t) => {
  const bins = cluster({ hosts: 4, perHost: 2, used: (h, b) => (h * 2 + b) * GiB, context: (h) => ({ ...IDLE, ufCPU: h === 0 ? 0.9 : 0.1 }) })
  // h00-b00 is empty but its host is busy: fill 0 + cpu 0.9*0.3 = 0.27 > h01-b00's fill 0.2 + 0.03.
  t.same(new Allocator({ policy: 'sort-uf' }).allocate(bins, { size: BALL, k: 3 }).map((b) => b.id), ['h00-b00', 'h01-b00', 'h02-b00'].sort((a, b) => {
    const cost = (id: string): number => utilisationCost(bins.find((x) => x.id === id) as PlacementBin, BALL)
    return cost(a) - cost(b)
  }))
  const equal = cluster({ hosts: 3, perHost: 3 })
  t.same(new Allocator({ policy: 'sort-uf' }).allocate(equal, { size: BALL, k: 3 }).map((b) => b.id), ['h00-b00', 'h01-b00', 'h02-b00'], 'equal bins: smallest ids')
})

t.test('cost - the formula and its constants', async (t) => {
  const bin = (used: number, context?: Utilisation): PlacementBin => ({ id: 'x', host: 'h', level: 'disk', capacity: 100, used, ...(context === undefined ? {} : { context }) })
  const c: Utilisation = { ufCPU: 0.5, ufMemory: 0.25, ufFileSystem: 0.75, ufNet: 1 }
  const host = W_FILE_SYSTEM * 0.75 + W_CPU * 0.5 + W_MEMORY * 0.25 + W_NET * 1
  const cases: Array<[string, PlacementBin, number, number]> = [
    ['empty bin, idle host', bin(0, { ufCPU: 0, ufMemory: 0, ufFileSystem: 0, ufNet: 0 }), 10, W_FILL * 0.1],
    ['fill and context add up', bin(40, c), 10, W_FILL * 0.5 + host],
    ['unknown context counts UNKNOWN_UF everywhere', bin(40), 10, W_FILL * 0.5 + (W_FILE_SYSTEM + W_CPU + W_MEMORY + W_NET) * UNKNOWN_UF]
  ]
  for (const [name, b, size, want] of cases) t.ok(Math.abs(utilisationCost(b, size) - want) < 1e-12, name)
  const below = utilisationCost(bin(NEARLY_FULL * 100 - 10), 10)
  const above = utilisationCost(bin(NEARLY_FULL * 100 - 5), 10)
  t.ok(above - below > W_FILL * 0.05 * 2, 'past NEARLY_FULL the fill costs steeply more')
})

t.test('allocate - bad input is a TypeError', async (t) => {
  const bins = cluster({ hosts: 2, perHost: 1 })
  const alloc = new Allocator()
  const requests: Array<[string, unknown]> = [
    ['k 0', { size: BALL, k: 0 }], ['k -1', { size: BALL, k: -1 }], ['k 1.5', { size: BALL, k: 1.5 }], ['k missing', { size: BALL }],
    ['negative size', { size: -1, k: 1 }], ['NaN size', { size: NaN, k: 1 }], ['infinite size', { size: Infinity, k: 1 }],
    ['size as a string', { size: '4', k: 1 }], ['writerHost not a string', { size: 1, k: 1, writerHost: 7 }], ['no request', null]
  ]
  for (const [name, request] of requests) {
    t.throws(() => alloc.allocate(bins, request as never), TypeError, name)
  }
  const lists: Array<[string, unknown]> = [
    ['not an array', { length: 0 }],
    ['duplicate ids', [bins[0], { ...bins[1], id: bins[0].id }]],
    ['bad level', [{ ...bins[0], level: 'tape' }]],
    ['negative capacity', [{ ...bins[0], capacity: -1 }]],
    ['empty host', [{ ...bins[0], host: '' }]],
    ['not an object', [null]]
  ]
  for (const [name, list] of lists) {
    t.throws(() => new Allocator().allocate(list as never, { size: 1, k: 1 }), TypeError, name)
  }
  t.throws(() => new Allocator({ policy: 'fastest' as never }), TypeError, 'unknown policy')
  t.throws(() => new Allocator({ seed: 1.5 }), TypeError, 'seed not an integer')
})

t.test('allocate - a bin list that changes between calls', async (t) => {
  for (const policy of POLICIES) {
    const bins = cluster({ hosts: 2, perHost: 1 })
    const alloc = new Allocator({ policy })
    t.equal(alloc.allocate(bins, { size: BALL, k: 2 }).length, 2, `${policy}: first list`)
    // Changed in place at the same length (against the contract): the bins it reads are checked, so it starts again.
    const fresh = { ...bins[1], id: 'h01-new' }
    bins[1] = fresh
    t.ok(alloc.allocate(bins, { size: BALL, k: 2 }).includes(fresh), `${policy}: sees the replaced bin`)
    // A new array with the same bins: reused index, same answers as a fresh allocator would give.
    const copy = bins.map((b) => ({ ...b }))
    t.equal(alloc.allocate(copy, { size: BALL, k: 2 }).every((b) => copy.includes(b)), true, `${policy}: answers from the new array`)
    // A bin joins.
    const grown = [...copy, { id: 'h02-b00', host: 'h02', level: 'disk' as const, capacity: GiB, used: 0 }]
    t.equal(alloc.allocate(grown, { size: BALL, k: 3 }).length, 3, `${policy}: a third host`)
  }
})

t.test('sampling - falls back to listing when most bins have no room', async (t) => {
  // One bin with room among 1,000: rejection alone would miss it after MAX_TRIES draws.
  for (const policy of ['random', 'two-choices', 'context'] as const) {
    const bins = cluster({ hosts: 100, perHost: 10, used: (h, b) => h === 57 && b === 3 ? 0 : 10 * GiB })
    const alloc = new Allocator({ policy, seed: 2 })
    t.same(alloc.allocate(bins, { size: BALL, k: 2 }).map((b) => b.id), ['h57-b03'], `${policy}: found after ${MAX_TRIES} misses`)
  }
})

t.test('rng - seeded, in range, and even', async (t) => {
  const a = new Rng(12345)
  const b = new Rng(12345)
  const seqA = Array.from({ length: 100 }, () => a.uint32())
  t.same(Array.from({ length: 100 }, () => b.uint32()), seqA, 'same seed, same sequence')
  t.not(new Rng(12346).uint32(), seqA[0], 'another seed, another sequence')
  t.not(new Rng(1 + 2 ** 32).uint32(), new Rng(1).uint32(), 'the high bits of a seed count')
  const r = new Rng(1)
  const counts = new Array(10).fill(0)
  for (let i = 0; i < 100_000; i++) {
    const f = r.float()
    if (f < 0 || f >= 1) t.fail(`float out of range: ${f}`)
    counts[r.below(10)]++
  }
  t.ok(counts.every((c) => Math.abs(c - 10_000) < 500), `below(10) is even: ${counts.join(' ')}`)
  t.throws(() => new Rng(NaN), TypeError)
})

t.test('alias table - draws in proportion to the weights', async (t) => {
  const cases: Array<[string, number[]]> = [['1:2:3:4', [1, 2, 3, 4]], ['with zeros', [0, 5, 0, 5]], ['one', [7]], ['skewed', [1000, 1, 1, 1]]]
  for (const [name, weights] of cases) {
    const table = AliasTable.build(weights)
    if (table === null) {
      t.fail(name)
      continue
    }
    const rng = new Rng(3)
    const counts = new Array(weights.length).fill(0)
    const n = 200_000
    for (let i = 0; i < n; i++) counts[table.draw(rng.float())]++
    const total = weights.reduce((a, b) => a + b, 0)
    t.ok(weights.every((w, i) => Math.abs(counts[i] / n - w / total) < 0.005), `${name}: ${counts.join(' ')}`)
  }
  t.equal(AliasTable.build([0, 0]), null, 'no weight: nothing to draw')
  t.equal(AliasTable.build([]), null, 'empty')
})
