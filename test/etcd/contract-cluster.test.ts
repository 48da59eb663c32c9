// The contract suite (test/helpers/contract.ts), part cluster: these test files
// again with every agent on etcd.
import t from 'tap'
import { runOnEtcd } from '../helpers/contract.ts'

t.test('contract - the cluster tests with the metadata on etcd', { timeout: 590_000 }, async (t) => {
  await runOnEtcd(t, ['cluster/namespace', 'cluster/data-plane', 'cluster/membership', 'cluster/data-faults', 'cluster/dashboard-api'])
})
