import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DirCloud } from '../../src/cloud/dir-cloud.ts'
import { cloudTierContract } from '../helpers/cloud-contract.ts'

t.test('dir cloud - the cloud tier contract', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'chaac-unit-cloud-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  const cloud = new DirCloud(join(root, 'c'))
  await cloud.open()
  await cloudTierContract(t, cloud)
})
