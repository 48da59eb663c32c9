import t from 'tap'
import { containerBinSpec, hostDir, type ContainerFacts } from '../../src/containers/bin-labels.ts'

const facts = (labels: Record<string, string>, mounts = ['/balls']): ContainerFacts => ({ id: 'c'.repeat(64), name: 'data1', labels, mounts, running: true, pid: 42 })

t.test('containerBinSpec - labels and the single mount make a bin', async (t) => {
  const spec = containerBinSpec(facts({ 'chaac.bin': 'disk', 'chaac.capacity': '2GiB' }), 'agent-a')
  t.same(spec, { container: { id: 'c'.repeat(64), name: 'data1' }, level: 'disk', capacity: 2 * 1024 ** 3, path: '/balls', launched: false })
  t.equal(containerBinSpec(facts({ 'chaac.bin': 'mem', 'chaac.capacity': '64MiB', 'chaac.agent': 'agent-a', 'chaac.launcher': '0.1.0' }), 'agent-a')?.launched, true)
  t.equal(containerBinSpec(facts({ 'chaac.bin': 'disk', 'chaac.capacity': '1GiB', 'chaac.path': '/data/bin/' }, ['/data', '/logs']), 'a')?.path, '/data/bin', 'chaac.path names the directory')
})

t.test('containerBinSpec - no chaac.bin label, or another agent\'s: no bin', async (t) => {
  t.equal(containerBinSpec(facts({ 'chaac.capacity': '1GiB' }), 'a'), undefined)
  t.equal(containerBinSpec(facts({ 'chaac.bin': 'disk', 'chaac.capacity': '1GiB', 'chaac.agent': 'b' }), 'a'), undefined)
})

t.test('containerBinSpec - wrong labels are RangeErrors that name the container and the label', async (t) => {
  const cases: Array<[Record<string, string>, string[], RegExp]> = [
    [{ 'chaac.bin': 'fast', 'chaac.capacity': '1GiB' }, ['/b'], /container data1: label chaac.bin=fast is not a level \(mem or disk\)/],
    [{ 'chaac.bin': 'disk' }, ['/b'], /label chaac.capacity is missing/],
    [{ 'chaac.bin': 'disk', 'chaac.capacity': 'lots' }, ['/b'], /label chaac.capacity: not a size/],
    [{ 'chaac.bin': 'disk', 'chaac.capacity': '0' }, ['/b'], /must be above zero/],
    [{ 'chaac.bin': 'disk', 'chaac.capacity': '1GiB' }, [], /no volume or tmpfs/],
    [{ 'chaac.bin': 'disk', 'chaac.capacity': '1GiB' }, ['/a', '/b'], /mounts \/a, \/b: say which holds the balls with the label chaac.path/],
    [{ 'chaac.bin': 'disk', 'chaac.capacity': '1GiB', 'chaac.path': 'rel' }, ['/b'], /must be an absolute path/],
    [{ 'chaac.bin': 'disk', 'chaac.capacity': '1GiB', 'chaac.path': '/' }, ['/b'], /must be an absolute path/],
    [{ 'chaac.bin': 'disk', 'chaac.capacity': '1GiB', 'chaac.path': '/a/../etc' }, ['/b'], /must be an absolute path/]
  ]
  for (const [labels, mounts, message] of cases) t.throws(() => containerBinSpec(facts(labels, mounts), 'a'), { name: 'RangeError', message }, JSON.stringify(labels))
})

t.test('hostDir - a running container\'s directory through its init process', async (t) => {
  t.equal(hostDir(1234, '/balls'), '/proc/1234/root/balls')
})
