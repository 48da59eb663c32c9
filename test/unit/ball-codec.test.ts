import { createHash, randomBytes } from 'node:crypto'
import t from 'tap'
import {
  BLOCK_SIZE, blockCount, blockSpan, encodeBall, headerLength, parseHeader, peekHeaderLength, verifyBlocks
} from '../../src/store/ball-codec.ts'
import { VerifiedReader, type BallSource } from '../../src/store/verified-reader.ts'
import { isChaacError } from '../../src/errors.ts'

// A stored ball (header ++ data) as a BallSource, with a count of reads.
function source (stored: Buffer): BallSource & { reads: number } {
  const src = {
    reads: 0,
    readRaw: async (_id: string, start: number, length: number) => {
      src.reads++
      return Buffer.from(stored.subarray(start, start + length))
    }
  }
  return src
}

function stored (data: Buffer): { id: string, raw: Buffer, headerLength: number } {
  const { id, header } = encodeBall(data)
  return { id, raw: Buffer.concat([header, data]), headerLength: header.length }
}

t.test('encodeBall - the id is the SHA-256 of the header, same content same id', async (t) => {
  const data = randomBytes(3 * BLOCK_SIZE + 17)
  const a = encodeBall(data)
  const b = encodeBall(Buffer.from(data))
  t.equal(a.id, b.id)
  t.match(a.id, /^[0-9a-f]{64}$/)
  t.equal(a.id, createHash('sha256').update(a.header).digest('hex'))
  t.equal(a.header.length, headerLength(data.length))
  t.equal(blockCount(data.length), 4)
  const other = Buffer.from(data)
  other[5] ^= 1
  t.not(encodeBall(other).id, a.id, 'one changed byte changes the id')
})

t.test('encodeBall - table of sizes: empty, one byte, exact blocks, short last block', async (t) => {
  const cases: Array<[string, number, number]> = [
    ['empty', 0, 0],
    ['one byte', 1, 1],
    ['one block less a byte', BLOCK_SIZE - 1, 1],
    ['exactly one block', BLOCK_SIZE, 1],
    ['one block and a byte', BLOCK_SIZE + 1, 2],
    ['4 MiB', 4 * 1024 * 1024, 64]
  ]
  for (const [name, size, blocks] of cases) {
    const data = randomBytes(size)
    const { id, header } = encodeBall(data)
    t.equal(blockCount(size), blocks, `${name}: block count`)
    const h = parseHeader(id, header)
    t.ok(h, `${name}: header parses`)
    if (!h) continue
    t.equal(h.size, size, `${name}: size`)
    t.equal(h.length, header.length, `${name}: header length`)
    t.equal(peekHeaderLength(header.subarray(0, 12)), header.length, `${name}: peek`)
    t.ok(verifyBlocks(h, 0, data), `${name}: every block verifies`)
  }
})

t.test('parseHeader - rejects a header that is not the one the id names', async (t) => {
  const { id, header } = encodeBall(randomBytes(1000))
  t.equal(parseHeader(id, header.subarray(0, header.length - 1)), null, 'short')
  const flipped = Buffer.from(header)
  flipped[header.length - 1] ^= 0x80
  t.equal(parseHeader(id, flipped), null, 'one flipped bit in a block hash')
  const badMagic = Buffer.from(header)
  badMagic[0] ^= 1
  t.equal(parseHeader(id, badMagic), null, 'bad magic')
  t.equal(peekHeaderLength(badMagic), null)
  t.equal(parseHeader('0'.repeat(64), header), null, 'another id')
  t.equal(peekHeaderLength(Buffer.alloc(5)), null, 'fewer than 12 bytes')
})

t.test('verifyBlocks - a flipped byte in any block is detected, other blocks still verify', async (t) => {
  const data = randomBytes(3 * BLOCK_SIZE + 100)
  const { id, header } = encodeBall(data)
  const h = parseHeader(id, header)
  if (!h) throw new Error('header')
  for (const at of [0, BLOCK_SIZE - 1, BLOCK_SIZE, 2 * BLOCK_SIZE + 5, data.length - 1]) {
    const bad = Buffer.from(data)
    bad[at] ^= 0xff
    t.notOk(verifyBlocks(h, 0, bad), `flip at ${at} fails the whole ball`)
    const block = Math.floor(at / BLOCK_SIZE)
    const start = block * BLOCK_SIZE
    t.notOk(verifyBlocks(h, block, bad.subarray(start, Math.min(bad.length, start + BLOCK_SIZE))), `flip at ${at} fails its block`)
    for (let other = 0; other < blockCount(data.length); other++) {
      if (other === block) continue
      const s = other * BLOCK_SIZE
      t.ok(verifyBlocks(h, other, bad.subarray(s, Math.min(bad.length, s + BLOCK_SIZE))), `block ${other} is unaffected by a flip at ${at}`)
    }
  }
  t.notOk(verifyBlocks(h, 0, data.subarray(0, data.length - 1)), 'a truncated last block fails')
  t.notOk(verifyBlocks(h, 4, Buffer.alloc(10)), 'a block past the end has no hash')
})

t.test('blockSpan - whole blocks covering a range, clipped at the ball end', async (t) => {
  const size = 3 * BLOCK_SIZE + 100
  const { id, header } = encodeBall(Buffer.alloc(size, 7))
  const h = parseHeader(id, header)
  if (!h) throw new Error('header')
  const B = BLOCK_SIZE
  const cases: Array<[string, number, number, { first: number, start: number, end: number }]> = [
    ['first byte', 0, 1, { first: 0, start: 0, end: B }],
    ['last byte of block 0', B - 1, 1, { first: 0, start: 0, end: B }],
    ['first byte of block 1', B, 1, { first: 1, start: B, end: 2 * B }],
    ['straddles blocks 0 and 1', B - 1, 2, { first: 0, start: 0, end: 2 * B }],
    ['exactly block 1', B, B, { first: 1, start: B, end: 2 * B }],
    ['into the short last block', 3 * B - 1, 2, { first: 2, start: 2 * B, end: size }],
    ['past the end is clipped', 3 * B + 50, 10 * B, { first: 3, start: 3 * B, end: size }],
    ['whole ball', 0, size, { first: 0, start: 0, end: size }]
  ]
  for (const [name, offset, length, want] of cases) t.same(blockSpan(h, offset, length), want, name)
})

t.test('VerifiedReader - ranges at block edges read back exactly', async (t) => {
  const data = randomBytes(3 * BLOCK_SIZE + 100)
  const ball = stored(data)
  const reader = new VerifiedReader()
  const src = source(ball.raw)
  const B = BLOCK_SIZE
  for (const [offset, length] of [[0, 1], [B - 1, 2], [B, B], [2 * B + 1, B + 99], [3 * B + 99, 1], [0, data.length], [3 * B + 50, 1000]]) {
    const got = await reader.read(src, ball.id, offset, length)
    t.ok(got.equals(data.subarray(offset, Math.min(data.length, offset + length))), `[${offset}, +${length})`)
  }
  t.equal((await reader.read(src, ball.id, data.length, 10)).length, 0, 'at the end: nothing')
  t.equal((await reader.read(src, ball.id, 5, 0)).length, 0, 'zero length: nothing')
})

t.test('VerifiedReader - never returns bytes of a corrupt block; other blocks stay readable', async (t) => {
  const data = randomBytes(2 * BLOCK_SIZE)
  const ball = stored(data)
  const bad = Buffer.from(ball.raw)
  bad[ball.headerLength + BLOCK_SIZE + 10] ^= 1
  const reader = new VerifiedReader()
  const src = source(bad)
  await t.rejects(reader.read(src, ball.id, BLOCK_SIZE, 20), { code: 'CHAAC_BALL_CORRUPT' })
  await t.rejects(reader.read(src, ball.id, 0, data.length), { code: 'CHAAC_BALL_CORRUPT' })
  t.ok((await reader.read(src, ball.id, 0, BLOCK_SIZE)).equals(data.subarray(0, BLOCK_SIZE)), 'block 0 is fine')
})

t.test('VerifiedReader - a corrupt header or a truncated ball fails, whatever the source says', async (t) => {
  const data = randomBytes(BLOCK_SIZE + 1)
  const ball = stored(data)
  const badHeader = Buffer.from(ball.raw)
  badHeader[20] ^= 1
  await t.rejects(new VerifiedReader().read(source(badHeader), ball.id, 0, 10), { code: 'CHAAC_BALL_CORRUPT' })
  // A size field claiming a huge ball must not make the reader trust it.
  const badSize = Buffer.from(ball.raw)
  badSize.writeUInt32BE(0xffffff00, 4)
  await t.rejects(new VerifiedReader().read(source(badSize), ball.id, 0, 10), { code: 'CHAAC_BALL_CORRUPT' })
  const truncated = ball.raw.subarray(0, ball.raw.length - 1)
  const err = await new VerifiedReader().read(source(truncated), ball.id, 0, data.length).catch((e: unknown) => e)
  t.ok(isChaacError(err, 'CHAAC_BALL_CORRUPT'), 'truncated: corrupt')
})

t.test('VerifiedReader - a header with more than 127 blocks takes a second read', async (t) => {
  const data = randomBytes(200 * 1024 + 200 * BLOCK_SIZE)
  const ball = stored(data)
  const src = source(ball.raw)
  const reader = new VerifiedReader()
  t.ok((await reader.read(src, ball.id, data.length - 5, 5)).equals(data.subarray(data.length - 5)))
  t.equal(src.reads, 3, 'first 4 KiB, then the whole header, then the block')
  await reader.read(src, ball.id, 0, 5)
  t.equal(src.reads, 4, 'the header is cached')
})
