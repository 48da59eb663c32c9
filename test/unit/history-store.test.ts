import { mkdtemp, readFile, rm, writeFile, appendFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { roundSamples } from '../../src/history/cluster-history.ts'
import { HistoryStore } from '../../src/history/history-store.ts'
import type { AgentCounters, AgentReport } from '../../src/meta/schema.ts'

const HOUR = 3600_000

async function tempFile (t: { teardown: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-history-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return join(dir, 'history.jsonl')
}

function store (file: string | undefined, now: () => number, warnings: string[] = [], opts: { intervalMs?: number, maxSeries?: number } = {}): HistoryStore {
  return new HistoryStore({
    file, retentionMs: HOUR, intervalMs: opts.intervalMs ?? 10_000, maxSeries: opts.maxSeries ?? 100, now, log: { warn: (_o, msg) => warnings.push(msg) }
  })
}

t.test('history store - keeps points by series, queries since a time and by agent', async (t) => {
  let now = 1_000_000
  const s = store(undefined, () => now)
  s.record(now, [{ metric: 'm', agent: 'a', value: 1 }, { metric: 'm', agent: 'b', value: 2 }, { metric: 'n', agent: 'a', value: 3 }])
  now += 10_000
  s.record(now, [{ metric: 'm', agent: 'a', value: 4 }])
  t.same(s.query(['m'], 0), [{ metric: 'm', agent: 'a', points: [[1_000_000, 1], [1_010_000, 4]] }, { metric: 'm', agent: 'b', points: [[1_000_000, 2]] }])
  t.same(s.query(['m', 'n'], 1_005_000, 'a'), [{ metric: 'm', agent: 'a', points: [[1_010_000, 4]] }])
})

t.test('history store - drops points past the retention and bounds the series', async (t) => {
  let now = 0
  const warnings: string[] = []
  const s = store(undefined, () => now, warnings, { maxSeries: 2 })
  for (let i = 0; i < 1000; i++) {
    now = i * 10_000
    s.record(now, [{ metric: 'm', agent: 'a', value: i }])
  }
  const points = s.query(['m'], 0)[0].points
  t.ok(points.length <= HOUR / 10_000 + 1, `${points.length} points kept`)
  t.ok(points[0][0] >= now - HOUR)
  s.record(now + 1, [{ metric: 'x', agent: 'a', value: 1 }, { metric: 'y', agent: 'a', value: 1 }])
  t.equal(s.query(['x', 'y'], 0).length, 1, 'a third series is not kept')
  t.equal(warnings.length, 1)
})

t.test('history store - survives a restart; a truncated or corrupt line is skipped with a warning', async (t) => {
  const file = await tempFile(t)
  let now = Date.now()
  const a = store(file, () => now)
  a.record(now, [{ metric: 'm', agent: 'a', value: 1 }])
  now += 10_000
  a.record(now, [{ metric: 'm', agent: 'a', value: 2 }])
  await a.close()
  await appendFile(file, '{"t": 5, "s": [["m", "a"\nnot json\n')
  const warnings: string[] = []
  const b = store(file, () => now, warnings)
  await b.load()
  t.same(b.query(['m'], 0)[0].points.map((p) => p[1]), [1, 2])
  t.equal(warnings.length, 1)
  t.notMatch(await readFile(file, 'utf8'), /not json/, 'the file was rewritten without the bad lines')
})

t.test('history store - compacts the file once it holds as many rounds again as are kept', async (t) => {
  const file = await tempFile(t)
  let now = Date.now()
  const s = store(file, () => now, [], { intervalMs: HOUR / 10 })
  for (let i = 0; i < 30; i++) {
    now += HOUR / 10
    s.record(now, [{ metric: 'm', agent: 'a', value: i }])
  }
  await s.close()
  const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '')
  t.ok(lines.length <= 22, `${lines.length} lines on file`)
})

t.test('history store - an unreadable file does not stop the load', async (t) => {
  const file = await tempFile(t)
  await writeFile(file, Buffer.from([0xff, 0xfe, 0x00, 0x0a]))
  const warnings: string[] = []
  const s = store(file, () => Date.now(), warnings)
  await s.load()
  t.same(s.query(['m'], 0), [])
  t.equal(warnings.length, 1)
})

t.test('cluster history - rates from counters between reports; a restart (counters back) gives none', async (t) => {
  const counters = (at: number, n: number): AgentCounters => ({ at, localHit: n, remoteHit: 0, miss: 0, skip: 0, bytesRead: n * 100, bytesWritten: 0 })
  const report = (c?: AgentCounters): AgentReport => ({
    id: 'a', peer: null, http: null, bins: [{ id: 'b', level: 'disk', dir: '/x', capacity: 100, used: 40, balls: 1 }],
    context: { ufCPU: 0.5, ufMemory: 0.1, ufFileSystem: 0.2, ufNet: 0.3, memFree: 0, diskFree: 0, netBytesPerSec: 0, sampledAt: 0 },
    ...(c ? { counters: c } : {})
  })
  const previous = new Map<string, AgentCounters>()
  const first = roundSamples([report(counters(0, 0))], previous)
  t.same(first.map((s) => s.metric), ['context.ufCPU', 'context.ufMemory', 'context.ufFileSystem', 'context.ufNet', 'context.freeBytes'])
  t.equal(first.find((s) => s.metric === 'context.freeBytes')?.value, 60)
  const second = roundSamples([report(counters(2000, 10))], previous)
  t.equal(second.find((s) => s.metric === 'reads.local_hit')?.value, 5)
  t.equal(second.find((s) => s.metric === 'bytes.read')?.value, 500)
  t.equal(roundSamples([report(counters(2000, 10))], previous).filter((s) => s.metric.startsWith('reads.')).length, 0, 'no new report: no rate')
  t.equal(roundSamples([report(counters(4000, 1))], previous).filter((s) => s.metric.startsWith('reads.')).length, 0, 'restarted: no rate')
  t.equal(roundSamples([report()], new Map()).length, 5, 'an older agent without counters: context only')
})
