import t from 'tap'
import { cpuUtilisation, parseCpuTimes, parseNetBytes } from '../../src/context/proc-stats.ts'

t.test('proc stats - cpu times and utilisation between two samples', async (t) => {
  const a = parseCpuTimes('cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n')
  const b = parseCpuTimes('cpu  200 0 100 850 50 0 0 0 0 0\n')
  t.same(a, { busy: 150, total: 1000 })
  t.equal(cpuUtilisation(a, b), 150 / 200)
  t.equal(cpuUtilisation(a, a), 0, 'no time passed')
  t.same(parseCpuTimes('garbage'), { busy: 0, total: 0 })
})

t.test('proc stats - network bytes summed over interfaces', async (t) => {
  const text = `Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 1000      10    0    0    0     0          0         0     2000      10    0    0    0     0       0          0
  eth0: 300       3    0    0    0     0          0         0      400       4    0    0    0     0       0          0
`
  t.equal(parseNetBytes(text), 3700)
  t.equal(parseNetBytes(''), 0)
})
