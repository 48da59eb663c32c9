import t from 'tap'
import { zoneInputs } from '../../src/api/zones-api.ts'
import { kmeans, loadScore, zonesOf, type ZoneInput } from '../../src/api/zones.ts'
import type { AgentRecord } from '../../src/meta/schema.ts'
import { W_CPU, W_FILE_SYSTEM, W_MEMORY, W_NET } from '../../src/placement/cost.ts'

const host = (id: string, uf: number, net = uf): ZoneInput => ({
  kind: 'host', id, agent: id, name: id, context: { ufCPU: uf, ufMemory: uf, ufFileSystem: uf, ufNet: net }
})

t.test('kmeans - separates two obvious groups and is deterministic', async (t) => {
  const points = [[0, 0], [0.05, 0], [0, 0.05], [1, 1], [0.95, 1], [1, 0.95]]
  const a = kmeans(points, 2)
  t.same(a, kmeans(points, 2), 'same input, same answer')
  t.equal(new Set(a.assignment.slice(0, 3)).size, 1)
  t.equal(new Set(a.assignment.slice(3)).size, 1)
  t.not(a.assignment[0], a.assignment[3])
})

t.test('kmeans - identical points, k as many as points: every point its own centre', async (t) => {
  const { assignment, centroids } = kmeans([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], 3)
  t.equal(assignment.length, 3)
  t.same(centroids, [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])
})

t.test('kmeans - k outside 1..points is a RangeError', async (t) => {
  t.throws(() => kmeans([[0]], 2), RangeError)
  t.throws(() => kmeans([[0]], 0), RangeError)
})

t.test('zones - ranks by the allocator\'s host weights and numbers zones least loaded first', async (t) => {
  const c = { ufCPU: 0.1, ufMemory: 0.2, ufFileSystem: 0.3, ufNet: 0.4 }
  t.equal(loadScore(c), W_CPU * 0.1 + W_MEMORY * 0.2 + W_FILE_SYSTEM * 0.3 + W_NET * 0.4)
  const inputs = [host('c', 0.9), host('a', 0.1), host('b', 0.12), host('d', 0.88)]
  const z = zonesOf(inputs, 2)
  t.equal(z.k, 2)
  t.same(z.members.map((m) => [m.id, m.rank, m.zone]), [['a', 1, 1], ['b', 2, 1], ['d', 3, 2], ['c', 4, 2]])
  t.same(z.zones.map((x) => x.members), [['a', 'b'], ['d', 'c']])
  t.ok(Math.abs(z.zones[0].centroid.ufCPU - 0.11) < 1e-9, 'centroid is the mean')
  t.same(zonesOf([...inputs].reverse(), 2), z, 'the order of the input does not matter')
})

t.test('zones - k is clipped to the members; none gives no zones', async (t) => {
  const z = zonesOf([host('a', 0.1), host('b', 0.5)], 5)
  t.equal(z.k, 2)
  t.equal(z.zones.length, 2)
  t.same(zonesOf([], 3), { k: 0, members: [], zones: [] })
})

t.test('zones - members: hosts alive with a context, and their containers with the host\'s disk and network', async (t) => {
  const ctx = (uf: number, list?: Array<{ id: string, name: string, cpu: number, memory: number }>): any => ({
    ufCPU: uf, ufMemory: uf, ufFileSystem: 0.3, ufNet: 0.4, memFree: 0, diskFree: 0, netBytesPerSec: 0, sampledAt: 0,
    ...(list ? { containers: { running: list.length, cpuCores: 0, memoryBytes: 0, list } } : {})
  })
  const rec = (id: string, seenAt: number, context: any, goneAt?: number): AgentRecord => ({
    id, peer: `ws://127.0.0.${id}:1`, http: null, bins: [], context, seenAt, ...(goneAt !== undefined ? { goneAt } : {})
  })
  const now = 100_000
  const inputs = zoneInputs([
    rec('2', now, ctx(0.1, [{ id: 'abcdef123456', name: 'web', cpu: 0.5, memory: 0.25 }])),
    rec('3', now, null),
    rec('4', now - 60_000, ctx(0.2)),
    rec('5', now, ctx(0.2), now - 1)
  ], '2', now, 5000)
  t.same(inputs, [
    { kind: 'host', id: '2', agent: '2', name: '127.0.0.2', context: { ufCPU: 0.1, ufMemory: 0.1, ufFileSystem: 0.3, ufNet: 0.4 } },
    { kind: 'container', id: 'abcdef123456', agent: '2', name: 'web', context: { ufCPU: 0.5, ufMemory: 0.25, ufFileSystem: 0.3, ufNet: 0.4 } }
  ], 'no context, silent or gone: left out')
})
