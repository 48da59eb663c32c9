import { resolve } from 'node:path'
import t from 'tap'
import { DEFAULTS, checkExposure, defaultBins, oneOf, parseBin, parseHostPort, parsePoolUrl, WRITE_POLICIES } from '../../src/config.ts'
import { formatSize, parseSize } from '../../src/units.ts'

const KiB = 1024
const MiB = 1024 ** 2
const GiB = 1024 ** 3

t.test('parseSize - sizes as people write them', async (t) => {
  const cases: Array<[string, number]> = [
    ['0', 0], ['4096', 4096], ['1b', 1], ['512k', 512 * KiB], ['512KiB', 512 * KiB], ['1kb', 1000],
    ['4M', 4 * MiB], ['4MiB', 4 * MiB], ['4 MiB', 4 * MiB], ['2MB', 2_000_000], ['1.5KiB', 1536],
    ['10GiB', 10 * GiB], ['1g', GiB], ['1GB', 1e9], ['1TiB', 1024 ** 4], [' 7 ', 7]
  ]
  for (const [text, want] of cases) t.equal(parseSize(text), want, `'${text}'`)
})

t.test('parseSize - anything else is a RangeError that shows examples', async (t) => {
  for (const text of ['', '1x', 'MiB', '-1', '1e3', '1 2', '4MiBs', '0x10', 'four']) {
    t.throws(() => parseSize(text), { name: 'RangeError', message: /not a size: .*examples/ }, `'${text}'`)
  }
})

t.test('formatSize - readable and round-trips through parseSize for whole units', async (t) => {
  t.equal(formatSize(0), '0 B')
  t.equal(formatSize(1023), '1023 B')
  t.equal(formatSize(1536), '1.5 KiB')
  t.equal(formatSize(64 * MiB), '64.0 MiB')
  t.equal(formatSize(16 * GiB), '16.0 GiB')
  t.equal(parseSize(formatSize(64 * MiB).replace(' ', '')), 64 * MiB)
})

t.test('parseBin - LEVEL:DIR:CAPACITY', async (t) => {
  t.same(parseBin('disk:/srv/chaac/bin0:100GiB'), { level: 'disk', dir: '/srv/chaac/bin0', capacity: 100 * GiB })
  t.same(parseBin('mem:/dev/shm/x:64MiB'), { level: 'mem', dir: '/dev/shm/x', capacity: 64 * MiB })
  t.same(parseBin('disk:rel/dir:1G'), { level: 'disk', dir: resolve('rel/dir'), capacity: GiB }, 'a relative dir is resolved')
  t.same(parseBin('disk:/a:b:1M'), { level: 'disk', dir: '/a:b', capacity: MiB }, 'a colon inside the dir')
})

t.test('parseBin - bad bins say what is expected', async (t) => {
  const cases: Array<[string, RegExp]> = [
    ['bogus', /not a bin: 'bogus' \(expected LEVEL:DIR:CAPACITY/],
    ['tape:/x:1G', /not a bin/],
    ['disk:/x', /not a bin/],
    ['disk::1G', /not a bin/],
    ['disk:/x:1x', /not a size: '1x'/],
    ['disk:/x:0', /capacity must be above zero/],
    ['DISK:/x:1G', /not a bin/]
  ]
  for (const [text, message] of cases) t.throws(() => parseBin(text), { name: 'RangeError', message }, `'${text}'`)
})

t.test('parseHostPort - HOST:PORT, IPv6 in brackets, port 0 allowed', async (t) => {
  t.same(parseHostPort('127.0.0.1:7070'), { host: '127.0.0.1', port: 7070 })
  t.same(parseHostPort('localhost:0'), { host: 'localhost', port: 0 })
  t.same(parseHostPort('[::1]:80'), { host: '::1', port: 80 })
  t.same(parseHostPort('127.0.0.1:65535'), { host: '127.0.0.1', port: 65535 })
  for (const text of ['', '7070', ':7070', 'host:', 'host:port', 'host:65536', 'host:-1', '127.0.0.1:70 70']) {
    t.throws(() => parseHostPort(text), { name: 'RangeError', message: /not HOST:PORT/ }, `'${text}'`)
  }
})

t.test('oneOf - accepts the listed values only, and lists them in the error', async (t) => {
  t.equal(oneOf('--write', WRITE_POLICIES, 'through'), 'through')
  t.throws(() => oneOf('--write', WRITE_POLICIES, 'sometimes'), { message: "--write must be one of through, async, none; got 'sometimes'" })
})

t.test('defaultBins - a mem level on /dev/shm per data folder, a disk level under it', async (t) => {
  const a = defaultBins('/tmp/data-a')
  t.same(a.map((b) => b.level), ['mem', 'disk'])
  t.match(a[0].dir, /^\/dev\/shm\/chaac-[0-9a-f]{12}$/)
  t.equal(a[0].capacity, parseSize(DEFAULTS.memBin))
  t.equal(a[1].dir, '/tmp/data-a/bins/disk0')
  t.equal(a[1].capacity, parseSize(DEFAULTS.diskBin))
  t.equal(defaultBins('/tmp/data-a/')[0].dir, a[0].dir, 'same folder, same mem bin')
  t.not(defaultBins('/tmp/data-b')[0].dir, a[0].dir, 'another folder, another mem bin')
})

t.test('parsePoolUrl - ws://HOST:PORT of the pool agent', async (t) => {
  t.equal(parsePoolUrl('ws://127.0.0.2:7071'), 'ws://127.0.0.2:7071')
  t.equal(parsePoolUrl('ws://pool.example:7071/'), 'ws://pool.example:7071')
  t.equal(parsePoolUrl('ws://[::1]:7071'), 'ws://[::1]:7071')
  for (const text of ['', '127.0.0.2:7071', 'http://127.0.0.2:7071', 'ws://127.0.0.2', 'ws://127.0.0.2:7071/path', 'ws://:7071']) {
    t.throws(() => parsePoolUrl(text), { name: 'RangeError', message: /not a pool address: .* \(expected ws:\/\/HOST:PORT/ }, `'${text}'`)
  }
})

t.test('checkExposure - beyond loopback only with a cluster secret', async (t) => {
  for (const host of ['127.0.0.1', '127.0.0.3', '::1', 'localhost']) t.doesNotThrow(() => checkExposure('--listen', host, undefined), host)
  for (const host of ['0.0.0.0', '10.1.2.3', '::', 'pool.example']) {
    t.throws(() => checkExposure('--listen', host, undefined), { message: new RegExp(`--listen: refusing to listen on ${host.replace(/\./g, '\\.')}, beyond loopback, without a cluster secret`) }, host)
    t.throws(() => checkExposure('--http', host, ''), { message: /--http: refusing/ }, `${host}, empty secret`)
    t.doesNotThrow(() => checkExposure('--listen', host, 's3cret'), `${host} with a secret`)
  }
})
