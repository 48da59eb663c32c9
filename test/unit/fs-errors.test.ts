// FsErrors: which errors a program sees as failures (logged at warn with
// code, inode, path and ball, counted) and which are normal answers (debug
// only), and the once-a-second limit per (code, inode, ball).
import { constants } from 'node:os'
import t from 'tap'
import { ChaacError, notFound } from '../../src/errors.ts'
import { FsErrors, UNEXPECTED } from '../../src/fuse/fs-errors.ts'

interface Line { level: string, obj: any, msg: string }

function setup (): { errors: FsErrors, lines: Line[], clock: { now: number } } {
  const lines: Line[] = []
  const clock = { now: 1_000_000 }
  const log = {
    error: (obj: object, msg: string) => lines.push({ level: 'error', obj, msg }),
    warn: (obj: object, msg: string) => lines.push({ level: 'warn', obj, msg }),
    debug: (obj: object, msg: string) => lines.push({ level: 'debug', obj, msg })
  }
  const paths = new Map([[7, '/dir/file'], [8, '/other']])
  return { errors: new FsErrors(log, (ino) => paths.get(ino), () => clock.now), lines, clock }
}

const missing = (ball: string): ChaacError => new ChaacError('CHAAC_BALL_MISSING', `ball ${ball}: no copy`, { ball })

t.test('fs errors - EIO is logged at warn with code, inode, path and ball, and counted', async (t) => {
  const { errors, lines } = setup()
  t.equal(errors.errnoOf(missing('ab'.repeat(32)), 'read', 7), constants.errno.EIO)
  t.equal(lines.length, 1)
  t.equal(lines[0].level, 'warn')
  t.match(lines[0].obj, { op: 'read', errno: 'EIO', code: 'CHAAC_BALL_MISSING', ino: 7, path: '/dir/file', ball: 'ab'.repeat(32), repeats: 0 })
  t.same(errors.totals(), [{ errno: 'EIO', code: 'CHAAC_BALL_MISSING', op: 'read', count: 1 }])
  t.match(errors.summary(), { total: 1, byCode: { CHAAC_BALL_MISSING: 1 }, last: { op: 'read', ino: 7, path: '/dir/file' } })
})

t.test('fs errors - normal answers stay at debug and are not counted', async (t) => {
  const { errors, lines } = setup()
  t.equal(errors.errnoOf(notFound('x'), 'lookup', 1), constants.errno.ENOENT)
  t.equal(errors.errnoOf(new ChaacError('CHAAC_NOT_EMPTY', 'd is not empty'), 'rmdir', 1), constants.errno.ENOTEMPTY)
  t.same(lines.map((l) => l.level), ['debug', 'debug'])
  t.same(errors.totals(), [])
  t.equal(errors.summary().total, 0)
})

t.test('fs errors - the same failure is logged once a second, with the repeats in between', async (t) => {
  const { errors, lines, clock } = setup()
  const ball = 'cd'.repeat(32)
  for (let i = 0; i < 1000; i++) errors.errnoOf(missing(ball), 'read', 7)
  t.equal(lines.length, 1, 'a thousand failures in the same instant make one line')
  // Another inode, or another ball, is another failure.
  errors.errnoOf(missing(ball), 'read', 8)
  errors.errnoOf(missing('ef'.repeat(32)), 'read', 7)
  t.equal(lines.length, 3)
  clock.now += 1000
  errors.errnoOf(missing(ball), 'read', 7)
  t.equal(lines.length, 4)
  t.equal(lines[3].obj.repeats, 999, 'the next line counts those not logged')
  t.same(errors.totals(), [{ errno: 'EIO', code: 'CHAAC_BALL_MISSING', op: 'read', count: 1003 }])
})

t.test('fs errors - an unexpected error is EIO at error level; an error carries its own inode; a timeout counts', async (t) => {
  const { errors, lines } = setup()
  t.equal(errors.errnoOf(new TypeError('a bug'), 'write', 7), constants.errno.EIO)
  t.equal(lines[0].level, 'error')
  t.match(lines[0].obj, { code: UNEXPECTED, ino: 7, path: '/dir/file' })
  errors.errnoOf(new ChaacError('CHAAC_IO', 'inline bytes corrupt', { ino: 8 }), 'open', 1)
  t.match(lines[1].obj, { code: 'CHAAC_IO', ino: 8, path: '/other', ball: null })
  errors.timedOut('fsync', 7, 120_000)
  t.match(lines[2].obj, { errno: 'ETIMEDOUT', code: 'CHAAC_TIMEOUT', op: 'fsync', ino: 7 })
  t.equal(errors.summary().total, 3)
})

t.test('fs errors - a path that cannot be found is null, never a throw', async (t) => {
  const lines: Line[] = []
  const log = { error: () => {}, debug: () => {}, warn: (obj: object, msg: string) => lines.push({ level: 'warn', obj, msg }) }
  const errors = new FsErrors(log, () => { throw new ChaacError('CHAAC_IO', 'the data pool is unreachable') })
  errors.errnoOf(missing('01'.repeat(32)), 'read', 9)
  t.equal(lines[0].obj.path, null)
})
