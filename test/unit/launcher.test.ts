import t from 'tap'
import { autoBinDecision } from '../../src/containers/auto-bins.ts'
import { parseBinRequest } from '../../src/containers/launcher.ts'
import type { ClusterBin } from '../../src/cluster/view.ts'
import type { AgentReport } from '../../src/meta/schema.ts'
import type { HostContext } from '../../src/context/host-context.ts'

const MiB = 1024 * 1024

t.test('parseBinRequest - defaults, sizes as text or bytes, and an agent', async (t) => {
  t.same(parseBinRequest({}), { level: 'disk', capacity: 1024 * MiB })
  t.same(parseBinRequest({ level: 'mem', capacity: '64MiB' }), { level: 'mem', capacity: 64 * MiB })
  t.same(parseBinRequest({ capacity: 2 * MiB, host: 'abc' }), { level: 'disk', capacity: 2 * MiB, host: 'abc' })
})

t.test('parseBinRequest - bad input is CHAAC_INVALID with a message that says what is wrong', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [null, /body must be JSON like/],
    [[], /body must be JSON like/],
    [{ level: 'fast' }, /unknown level "fast": one of mem, disk/],
    [{ level: 3 }, /unknown level 3/],
    [{ capacity: 'lots' }, /capacity: not a size: 'lots'/],
    [{ capacity: true }, /capacity must be a size/],
    [{ capacity: '1KiB' }, /capacity must be at least 1.0 MiB/],
    [{ capacity: 1.5 * MiB + 0.5 }, /capacity must be at least/],
    [{ host: '' }, /host must be an agent id/],
    [{ host: 7 }, /host must be an agent id/]
  ]
  for (const [body, message] of cases) t.throws(() => parseBinRequest(body), { code: 'CHAAC_INVALID', message }, JSON.stringify(body))
})

const context = (uf: number): HostContext => ({ ufCPU: uf, ufMemory: uf, ufFileSystem: uf, ufNet: uf, containers: { running: 0, cpuCores: 0, memoryBytes: 0 } } as unknown as HostContext)
const bin = (agent: string, used: number, capacity = 100 * MiB, level: 'disk' | 'mem' = 'disk'): ClusterBin => ({ id: `${agent}-${level}`, host: agent, agent, dir: '/b', level, capacity, used })
const report = (id: string, ctx: HostContext | null): AgentReport => ({ id, peer: null, http: null, bins: [], context: ctx })

t.test('autoBinDecision - nothing below the fill ratio; past it, the least loaded host', async (t) => {
  const agents = [report('a', context(0.9)), report('b', context(0.1))]
  t.equal(autoBinDecision([bin('a', 40 * MiB), bin('b', 40 * MiB)], agents, 0.5), undefined, '40% full: no launch')
  t.same(autoBinDecision([bin('a', 60 * MiB), bin('b', 60 * MiB), bin('b', 100 * MiB, 100 * MiB, 'mem')], agents, 0.5), { fill: 0.6, agent: 'b' }, 'mem bins do not count; the idle host gets the bin')
  t.equal(autoBinDecision([bin('a', 90 * MiB), bin('b', 10 * MiB)], [report('a', context(0.1)), report('b', context(0.1))], 0.3)?.agent, 'b', 'equal hosts: the one with the emptier disk bins')
  t.equal(autoBinDecision([bin('a', 90 * MiB)], [report('a', context(0.2)), report('b', { ...context(0), containers: undefined } as unknown as HostContext)], 0.5)?.agent, 'a', 'hosts whose agent reads a Docker engine first')
  t.same(autoBinDecision([], [report('a', null)], 0.5), { fill: 1, agent: 'a' }, 'no disk bin at all: full')
  t.equal(autoBinDecision([bin('a', 90 * MiB)], [], 0.5), undefined, 'no agent alive: nothing to do')
})
