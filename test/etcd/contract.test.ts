// The contract suite: the mount and cluster tests run again with every
// agent's metadata on etcd (three real members), so that each engine —
// LevelDB alone, a LevelDB pool with joined agents, etcd — passes the same
// tests. Each file runs as its own process with CHAAC_TEST_META naming the
// members (see test/helpers/agent.ts); each agent or cluster takes a key
// prefix of its own.
import { join } from 'node:path'
import t from 'tap'
import { PROJECT } from '../helpers/agent.ts'
import { withEtcd } from '../helpers/etcd.ts'

const FILES = [
  'mount/posix', 'mount/inline', 'mount/durability', 'mount/random-io', 'mount/http-api', 'mount/errors',
  'mount/concurrent-writers', 'mount/mixed-writers',
  'cluster/namespace', 'cluster/data-plane', 'cluster/membership', 'cluster/data-faults'
]

t.test('contract - the mount and cluster tests with the metadata on etcd', { timeout: 1_800_000 }, async (t) => {
  const etcd = await withEtcd(t)
  const env = { ...process.env, CHAAC_TEST_META: `etcd://${etcd.endpoints.join(',')}` }
  for (const file of FILES) {
    t.spawn(process.execPath, ['--import=tsx', join(PROJECT, 'test', `${file}.test.ts`)], { env, cwd: PROJECT }, `${file} on etcd`)
  }
})
