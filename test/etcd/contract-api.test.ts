// The contract suite (test/helpers/contract.ts), part api: these test files
// again with every agent on etcd.
import t from 'tap'
import { runOnEtcd } from '../helpers/contract.ts'

t.test('contract - the api tests with the metadata on etcd', { timeout: 590_000 }, async (t) => {
  await runOnEtcd(t, ['mount/http-api', 'mount/mixed-writers', 'api/dashboard-api'])
})
