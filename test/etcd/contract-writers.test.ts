// The contract suite (test/helpers/contract.ts), part writers: these test files
// again with every agent on etcd.
import t from 'tap'
import { runOnEtcd } from '../helpers/contract.ts'

t.test('contract - the writers tests with the metadata on etcd', { timeout: 590_000 }, async (t) => {
  await runOnEtcd(t, ['mount/concurrent-writers'])
})
