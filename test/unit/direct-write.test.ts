// New ball files written with O_DIRECT: the bytes given, exactly, whatever
// their length (whole blocks are written and the file cut back), from one
// part or several; an existing file is never written over.
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DIRECT_ALIGN, writeDirect } from '../../src/store/direct-write.ts'

t.test('direct write - a new file holds exactly the parts given, for lengths on and off the block size', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-unit-direct-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const sizes = [1, DIRECT_ALIGN - 1, DIRECT_ALIGN, DIRECT_ALIGN + 1, 64 * 1024 + 44, 4 * 1024 * 1024 + 2060, 9 * 1024 * 1024 + 3]
  for (const size of sizes) {
    const head = randomBytes(Math.min(size, 2060))
    const body = randomBytes(size - head.length)
    const file = join(dir, `f${size}`)
    t.equal(await writeDirect(file, [head, body]), true, `${size} bytes written with O_DIRECT`)
    t.same(await readFile(file), Buffer.concat([head, body]), `${size} bytes read back`)
  }
  // Written at once, each from a buffer of its own.
  const many = Array.from({ length: 6 }, () => randomBytes(300_000))
  await Promise.all(many.map(async (data, i) => await writeDirect(join(dir, `m${i}`), [data])))
  for (const [i, data] of many.entries()) t.same(await readFile(join(dir, `m${i}`)), data, `concurrent write ${i}`)
})

t.test('direct write - an existing file is refused, not written over', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-unit-direct-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'taken')
  await writeFile(file, 'kept')
  await t.rejects(writeDirect(file, [Buffer.from('new')]), { code: 'EEXIST' })
  t.equal(await readFile(file, 'utf8'), 'kept')
  await t.rejects(writeDirect(join(dir, 'no', 'such'), [Buffer.from('x')]), { code: 'ENOENT' }, 'a failure carries the errno\'s name')
  await t.rejects(async () => await writeDirect(join(dir, 'bad'), ['not a buffer' as unknown as Buffer]), /every part must be a Buffer/)
})
