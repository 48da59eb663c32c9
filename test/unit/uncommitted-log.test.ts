import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { UncommittedLog } from '../../src/fs/uncommitted-log.ts'

async function fresh (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-uncommitted-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  return join(dir, 'uncommitted')
}

t.test('uncommitted log - the next agent learns which files were left with uncommitted changes', async (t) => {
  const file = await fresh(t)
  const { log, previous } = await UncommittedLog.open(file)
  t.same([...previous], [], 'nothing at first')
  await Promise.all([log.mark(5), log.mark(7), log.mark(5), log.mark(9)])
  await log.clear(7)
  await log.clear(8)
  // The agent dies here: the log is not closed.
  const again = await UncommittedLog.open(file)
  t.same([...again.previous].sort(), [5, 9], 'marked and not cleared')
  await again.log.close()
  t.same([...(await UncommittedLog.open(file)).previous], [], 'a new log starts empty')
})

t.test('uncommitted log - compacts to the files still marked, keeping what it says', async (t) => {
  const file = await fresh(t)
  const { log } = await UncommittedLog.open(file, 10)
  for (let ino = 1; ino <= 30; ino++) {
    await log.mark(ino)
    if (ino % 3 !== 0) await log.clear(ino)
  }
  const lines = (await readFile(file, 'utf8')).split('\n').filter((l) => l !== '')
  t.ok(lines.length <= 20, `rewritten (${lines.length} lines, not 50)`)
  const { previous } = await UncommittedLog.open(file)
  t.same([...previous].sort((a, b) => a - b), [3, 6, 9, 12, 15, 18, 21, 24, 27, 30])
})

t.test('uncommitted log - lines it cannot read are skipped', async (t) => {
  const file = await fresh(t)
  const { log } = await UncommittedLog.open(file)
  await log.mark(4)
  await log.close()
  await writeFile(file, '+4\ngarbage\n+x\n-\n+0\n+12')
  t.same([...(await UncommittedLog.open(file)).previous].sort((a, b) => a - b), [4, 12])
})
