// Dumps of the metadata: every line is checked before anything is written
// (header, version, each record, the end line's count), and a LevelDB data
// pool dumped and loaded into a new one holds the same records.
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DataPool } from '../../src/meta/data-pool.ts'
import { dumpLines, loadLevel, metaDir, openDataPool, parseDump, type DumpSource } from '../../src/meta/dump.ts'
import { ROOT_INO, S_IFREG, inodeKey } from '../../src/meta/schema.ts'
import { SETTINGS_VERSION, type ClusterSettings } from '../../src/meta/settings.ts'

const FILE = { mode: S_IFREG | 0o644, uid: 0, gid: 0 }
const HEADER = '{"chaac":"meta-dump","version":1,"engine":"etcd","revision":7}'
const REC = (k: string, v = 'aGk='): string => JSON.stringify({ k, v })
const SETTINGS: ClusterSettings = { version: SETTINGS_VERSION, replicas: 2, policy: 'context', chunkSize: 4 << 20, cloud: 'none', setBy: 'chaac format' }

async function tempDir (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-unit-dump-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return dir
}

async function collect (source: DumpSource): Promise<string> {
  let text = ''
  for await (const line of dumpLines(source)) text += line
  return text
}

t.test('meta dump - a whole dump parses to its records', async (t) => {
  const dump = parseDump([HEADER, REC('i!0000000000000001'), REC('x!0000000000000002', ''), '{"end":true,"records":2}', ''].join('\n'))
  t.same(dump.header, { chaac: 'meta-dump', version: 1, engine: 'etcd', revision: 7 })
  t.same(dump.records.map(([k, v]) => [k, v.toString()]), [['i!0000000000000001', 'hi'], ['x!0000000000000002', '']])
})

t.test('meta dump - bad input is refused with the line and the reason', async (t) => {
  const cases: Array<[string, string[], RegExp]> = [
    ['empty', [], /the dump is empty/],
    ['truncated', [HEADER, REC('i!0000000000000001')], /truncated: no end line after 1 records/],
    ['a count that does not match', [HEADER, REC('i!0000000000000001'), '{"end":true,"records":2}'], /line 3 .* counts 2 records, the dump holds 1/],
    ['a newer version', [HEADER.replace('"version":1', '"version":2'), '{"end":true,"records":0}'], /line 1 .* version 2, written by a newer chaac/],
    ['not a dump', ['{"hello":1}'], /line 1 .* not a chaac metadata dump/],
    ['a garbage line', [HEADER, 'i!0001 <binary>', '{"end":true,"records":0}'], /line 2 of the dump: not JSON/],
    ['a key that is no record', [HEADER, REC('l!agent'), '{"end":true,"records":1}'], /line 2 .* not a record: key "l!agent"/],
    ['a value that is not base64', [HEADER, REC('i!0000000000000001', 'no!'), '{"end":true,"records":1}'], /value is not base64/],
    ['a record twice', [HEADER, REC('d!1'), REC('d!1'), '{"end":true,"records":2}'], /line 3 .* appears twice/],
    ['text after the end', [HEADER, '{"end":true,"records":0}', REC('i!1')], /line 3 .* after the end line/]
  ]
  for (const [what, lines, message] of cases) t.throws(() => parseDump(lines.join('\n')), { code: 'CHAAC_INVALID', message }, what)
})

t.test('meta dump - a LevelDB data pool dumped and loaded into a new one holds the same records', async (t) => {
  const root = await tempDir(t)
  const pool = await DataPool.open(metaDir(join(root, 'a')))
  const file = await pool.create(ROOT_INO, 'small', FILE)
  await pool.commitFile(file.ino, { size: 5, balls: [], chunkSize: 4 << 20, inline: Buffer.from('hello') })
  t.same(await pool.claimSettings(SETTINGS), SETTINGS, 'the first settings are stored')
  t.same(await pool.claimSettings({ ...SETTINGS, replicas: 3 }), SETTINGS, 'later ones get the stored ones back')
  // Dumped while the pool is open, as the agent's HTTP API does.
  const text = await collect({ engine: 'leveldb', ...await pool.snapshot() })
  await pool.close()
  const dump = parseDump(text)
  t.ok(dump.records.some(([k]) => k === inodeKey(file.ino)), 'the inode')
  t.ok(dump.records.some(([k]) => k.startsWith('x!')), 'the inline bytes')
  t.notOk(dump.records.some(([k]) => k === 'm!journal-seq'), 'no bookkeeping of the engine')

  await loadLevel(join(root, 'b'), dump)
  const copy = await openDataPool(join(root, 'b'), 'stop it')
  t.teardown(async () => await copy.close())
  t.equal(copy.lookup(ROOT_INO, 'small'), file.ino)
  t.equal((await copy.readInline(file.ino)).toString(), 'hello')
  t.same(copy.settings, SETTINGS)
  const records = (dumped: string): string => dumped.slice(dumped.indexOf('\n'))
  t.equal(records(await collect({ engine: 'leveldb', ...await copy.snapshot() })), records(text), 'dumped again: the same records')
})

t.test('meta load - a non-empty or locked LevelDB is refused and left as it was', async (t) => {
  const root = await tempDir(t)
  const dump = parseDump([HEADER, REC('i!0000000000000009'), '{"end":true,"records":1}'].join('\n'))
  const pool = await DataPool.open(metaDir(join(root, 'used')))
  await t.rejects(loadLevel(join(root, 'used'), dump), { message: /in use by a running agent: stop the agents first/ }, 'locked')
  t.equal(pool.get(9), undefined)
  await pool.close()
  await t.rejects(loadLevel(join(root, 'used'), dump), { code: 'CHAAC_EXISTS', message: /is not empty \(it holds i!0000000000000001/ })
  const again = await DataPool.open(metaDir(join(root, 'used')))
  t.equal(again.get(9), undefined, 'nothing was written')
  await again.close()
  await t.rejects(openDataPool(join(root, 'none'), 'stop it'), { code: 'CHAAC_NOT_FOUND' }, 'no data pool to dump')
  t.same(await readdir(root), ['used'], 'a dump of nothing creates nothing')
})
