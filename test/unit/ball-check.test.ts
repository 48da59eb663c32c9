// The check of a whole fetched ball: a large ball's blocks hashed by the
// binding on libuv's pool, a small one's inline. Every wrong byte (in the
// data, in the header, or a ball cut short) fails it; the right bytes come
// back as header and data, views of the buffer given.
import { randomBytes } from 'node:crypto'
import t from 'tap'
import { checkWholeBall } from '../../src/store/ball-check.ts'
import { encodeBall } from '../../src/store/ball-codec.ts'

function ball (size: number): { id: string, raw: Buffer, header: Buffer, data: Buffer } {
  const data = randomBytes(size)
  const { id, header } = encodeBall(data)
  return { id, raw: Buffer.concat([header, data]), header, data }
}

t.test('ball check - whole balls pass, small and large (hashed off the JS thread), their parts as given', async (t) => {
  for (const size of [0, 1, 64 * 1024, 300_000, 4 * 1024 * 1024, 4 * 1024 * 1024 + 17]) {
    const b = ball(size)
    const parts = await checkWholeBall(b.id, b.raw)
    t.ok(parts, `${size} bytes pass`)
    t.same(parts?.header, b.header)
    t.same(parts?.data, b.data)
    t.equal(parts?.data.buffer, b.raw.buffer, 'a view of the bytes given, not a copy')
  }
  // At once: each job references its own buffer.
  const many = Array.from({ length: 8 }, () => ball(1024 * 1024 + 5))
  t.same(await Promise.all(many.map(async (b) => (await checkWholeBall(b.id, b.raw)) !== null)), many.map(() => true))
})

t.test('ball check - a flipped byte anywhere, a ball cut short or another id fails', async (t) => {
  for (const size of [1000, 4 * 1024 * 1024]) {
    const b = ball(size)
    for (const at of [0, b.header.length, b.header.length + size - 1, b.header.length + (size >> 1)]) {
      const bad = Buffer.from(b.raw)
      bad[at] ^= 0x40
      t.equal(await checkWholeBall(b.id, bad), null, `${size} bytes, byte ${at} flipped`)
    }
    t.equal(await checkWholeBall(b.id, b.raw.subarray(0, b.raw.length - 1)), null, `${size} bytes cut short`)
    t.equal(await checkWholeBall(ball(size).id, b.raw), null, `${size} bytes under another ball's id`)
  }
})
