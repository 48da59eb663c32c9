// What every cloud tier adapter must do, checked the same way for each.
import { randomBytes } from 'node:crypto'
import type { Test } from 'tap'
import type { CloudTier } from '../../src/cloud/cloud-tier.ts'
import { encodeBall } from '../../src/store/ball-codec.ts'

export async function cloudTierContract (t: Test, cloud: CloudTier): Promise<void> {
  const data = randomBytes(5000)
  const { id, header } = encodeBall(data)
  const stored = Buffer.concat([header, data])
  t.notOk(await cloud.has(id), 'an unknown ball is not there')
  await t.rejects(cloud.readRaw(id, 0, 10), { code: 'CHAAC_BALL_MISSING' }, 'reading an unknown ball: missing')
  await t.rejects(cloud.readBall(id), { code: 'CHAAC_BALL_MISSING' })
  await cloud.put(id, header, data)
  await cloud.put(id, header, data)
  t.ok(await cloud.has(id), 'stored (twice is harmless)')
  t.ok((await cloud.readBall(id)).equals(stored), 'the whole ball')
  t.ok((await cloud.readRaw(id, header.length, 5000)).equals(data), 'a range')
  const into = Buffer.alloc(6000)
  const view = await cloud.readRaw(id, header.length + 100, 1000, into)
  t.ok(view.equals(data.subarray(100, 1100)), 'a range read into the caller\'s buffer')
  t.equal((await cloud.readRaw(id, header.length + 4990, 100)).length, 10, 'short at the end')
  t.equal((await cloud.readRaw(id, stored.length + 10, 100)).length, 0, 'nothing past the end')
  await cloud.delete(id)
  await cloud.delete(id)
  t.notOk(await cloud.has(id), 'deleted (twice is harmless)')
}
