// The contract suite (test/helpers/contract.ts), part mount: these test files
// again with every agent on etcd.
import t from 'tap'
import { runOnEtcd } from '../helpers/contract.ts'

t.test('contract - the mount tests with the metadata on etcd', { timeout: 590_000 }, async (t) => {
  await runOnEtcd(t, ['mount/posix', 'mount/inline', 'mount/durability', 'mount/random-io', 'mount/errors'])
})
