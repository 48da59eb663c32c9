// The contract suite: mount and cluster test files run again with every
// agent's metadata on etcd, so that each engine (LevelDB alone, a LevelDB
// pool with joined agents, etcd) passes the same tests. Each file runs as its
// own process with CHAAC_TEST_META naming the members (see agent.ts); each
// agent or cluster takes a key prefix of its own. One member: what is checked
// here is the engine's behaviour, not etcd's fault tolerance (test/etcd/faults.test.ts),
// and one member leaves the machine's cores to the tests.
import { join } from 'node:path'
import type { Test } from 'tap'
import { PROJECT } from './agent.ts'
import { withEtcd } from './etcd.ts'

export async function runOnEtcd (t: Test, files: string[]): Promise<void> {
  const etcd = await withEtcd(t, { hosts: ['127.0.0.5'] })
  const env = { ...process.env, CHAAC_TEST_META: `etcd://${etcd.endpoints.join(',')}` }
  for (const file of files) {
    t.spawn(process.execPath, ['--import=tsx', join(PROJECT, 'test', `${file}.test.ts`)], { env, cwd: PROJECT }, `${file} on etcd`)
  }
}
