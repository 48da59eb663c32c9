// The cluster's settings: which flags contradict the stored ones, in what
// words, and how a stored record is read back.
import t from 'tap'
import {
  SETTINGS_VERSION, cloudSetting, decodeSettings, differences, encodeSettings, formatRefusal, settle, sizeText, type ClusterSettings
} from '../../src/meta/settings.ts'

const stored: ClusterSettings = { version: SETTINGS_VERSION, replicas: 2, policy: 'context', chunkSize: 4 * 1024 * 1024, cloud: 's3://bucket/pre', setBy: 'chaac format' }
const mine = (patch: Partial<ClusterSettings>): ClusterSettings => ({ ...stored, setBy: 'agent a1', ...patch })

t.test('settings - a given flag that contradicts the stored settings is refused, naming both values', async (t) => {
  t.throws(() => settle(stored, mine({ replicas: 3 }), { replicas: 'cli' }), {
    message: "--replicas 3 contradicts the cluster's settings (replicas 2, set by chaac format): drop the flag or pass 2"
  })
  t.throws(() => settle(stored, mine({ chunkSize: 1024 * 1024 }), { chunkSize: 'env' }), {
    message: "CHAAC_CHUNK_SIZE=1MiB contradicts the cluster's settings (chunk size 4MiB, set by chaac format): drop the variable or pass 4MiB"
  })
  t.throws(() => settle({ ...stored, cloud: 'none' }, mine({ cloud: 'directory' }), { cloud: 'cli' }), {
    message: "--cloud DIR contradicts the cluster's settings (cloud tier none, set by chaac format): drop the flag or pass none"
  })
  t.throws(() => settle(stored, mine({ cloud: 'none', policy: 'random' }), { cloud: 'cli', policy: 'cli' }), {
    message: /^--policy random contradicts .*policy context.*; --cloud none contradicts .*cloud tier s3:\/\/bucket\/pre/
  })
})

t.test('settings - flags not given take the stored values; no stored settings leave the agent its own', async (t) => {
  t.same(settle(stored, mine({ replicas: 3, cloud: 'directory' }), {}), stored, 'defaults give way')
  t.same(settle(stored, mine({}), { replicas: 'cli', cloud: 'cli' }), stored, 'given flags that agree are fine')
  const own = mine({ replicas: 5 })
  t.equal(settle(undefined, own, { replicas: 'cli' }), own)
})

t.test('settings - a record written by a newer chaac or damaged is refused with its reason', async (t) => {
  t.same(decodeSettings(encodeSettings(stored)), stored, 'round trip')
  const newer = decodeSettings(Buffer.from(JSON.stringify({ ...stored, version: 2 })))
  t.throws(() => settle(newer, mine({}), {}), { message: /version 2, written by a newer chaac/ })
  t.match(decodeSettings(Buffer.from('{not json')).problem, /not JSON/)
  t.match(decodeSettings(Buffer.from(JSON.stringify({ ...stored, policy: 'fastest' }))).problem, /missing or malformed/)
})

t.test('settings - chaac format refuses other settings and lists each difference', async (t) => {
  t.equal(formatRefusal(stored, mine({})), undefined, 'the same settings again: nothing to refuse')
  t.match(formatRefusal(stored, mine({ replicas: 3, chunkSize: 65536 })), /replicas 2 \(asked: 3\), chunk size 4MiB \(asked: 64KiB\), set by chaac format/)
  t.same(differences(stored, mine({ cloud: 'none' })), ['cloud'])
})

t.test('settings - cloud tiers and sizes as the flags write them', async (t) => {
  t.equal(cloudSetting(undefined), 'none')
  t.equal(cloudSetting({ kind: 'dir', dir: '/srv/cloud' }), 'directory', 'a directory is each host\'s own: only its kind is shared')
  const s3 = { kind: 's3' as const, bucket: 'b', prefix: 'p/q/', region: 'us-east-1', pathStyle: false, createBucket: true, timeoutMs: 1 }
  t.equal(cloudSetting(s3), 's3://b/p/q')
  t.equal(cloudSetting({ ...s3, prefix: '' }), 's3://b')
  t.same([sizeText(4 << 20), sizeText(65536), sizeText(70000)], ['4MiB', '64KiB', '70000'])
})
