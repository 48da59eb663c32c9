// Small files through a real mount: a file up to --inline-max is kept in the
// data pool with its inode (no ball, no ball file), grows into balls and
// shrinks back into the pool with the right bytes at every step, survives
// kill -9 once closed, and --inline-max 0 keeps every file in balls.
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { cleanupAgent, py, sh, shOk, startAgent, PROJECT, type RunningAgent } from '../helpers/agent.ts'
import { waitFor } from '../helpers/wait.ts'

const OPTS = { timeout: 120_000 }
const CLI = join(PROJECT, 'bin', 'chaac.mjs')

const sha = (data: Buffer): string => createHash('sha256').update(data).digest('hex')

/** SHA-256 of a file on the mount, read with O_DIRECT so that the agent serves every byte. */
async function shaOf (path: string): Promise<string> {
  return (await shOk(`set -o pipefail; dd if='${path}' iflag=direct bs=1M status=none | sha256sum`)).split(' ')[0]
}

async function location (agent: RunningAgent, path: string): Promise<{ size: number, inline: boolean, balls: unknown[] }> {
  return await agent.json(`/api/v1/location?path=${encodeURIComponent(path)}`)
}

async function diskBalls (agent: RunningAgent): Promise<number> {
  return (await agent.json('/status')).bins.find((b: any) => b.level === 'disk').balls
}

t.test('a small file lives in the data pool, grows into balls and shrinks back, bytes right all the way', OPTS, async (t) => {
  const agent = await startAgent()
  t.teardown(async () => await cleanupAgent(agent))
  const file = join(agent.mount, 'f')
  const small = randomBytes(3000)
  const src = join(agent.root, 'small')
  await writeFile(src, small)
  await shOk(`cp ${src} ${file}`)
  t.same(await location(agent, '/f'), { ...(await location(agent, '/f')), size: 3000, inline: true, balls: [] })
  t.equal(await diskBalls(agent), 0, 'no ball file')
  t.equal(await shaOf(file), sha(small))
  t.equal((await shOk(`stat -c '%s %b' ${file}`)).trim(), `3000 ${Math.ceil(3000 / 512)}`, 'size and blocks')

  // Appending past the limit: one ball with the old bytes and the new.
  const more = randomBytes(10_000)
  await writeFile(join(agent.root, 'more'), more)
  await shOk(`cat ${join(agent.root, 'more')} >> ${file}`)
  const grown = await location(agent, '/f')
  t.equal(grown.inline, false)
  t.equal(grown.balls.length, 1)
  t.equal(await shaOf(file), sha(Buffer.concat([small, more])))

  // Cut back under the limit: inline again, the ball released.
  await py(`import os; os.truncate(${JSON.stringify(file)}, 100)`)
  const cut = await location(agent, '/f')
  t.equal(cut.inline, true)
  t.equal(cut.size, 100)
  t.equal(await shaOf(file), sha(small.subarray(0, 100)))

  // Grown by ftruncate (a zero tail) and written in the middle through another name.
  await shOk(`ln ${file} ${join(agent.mount, 'g')}`)
  await py(`
import os
fd = os.open(${JSON.stringify(join(agent.mount, 'g'))}, os.O_RDWR)
os.ftruncate(fd, 2000)
os.pwrite(fd, b'XYZ', 1000)
os.close(fd)`)
  const want = Buffer.alloc(2000)
  small.copy(want, 0, 0, 100)
  want.write('XYZ', 1000)
  t.equal(await shaOf(file), sha(want), 'both names show the same bytes')
  t.equal((await location(agent, '/f')).inline, true)

  // Grown past the limit by truncate alone: the inline bytes move into a ball.
  await py(`import os; os.truncate(${JSON.stringify(file)}, 10000)`)
  const zeroTail = Buffer.concat([want, Buffer.alloc(8000)])
  t.equal(await shaOf(file), sha(zeroTail))
  t.equal((await location(agent, '/f')).inline, false)
  t.equal((await location(agent, '/f')).balls.length, 1)

  // Truncated to nothing and written again while open.
  await py(`
import os
fd = os.open(${JSON.stringify(file)}, os.O_RDWR | os.O_TRUNC)
os.write(fd, b'again')
os.lseek(fd, 0, 0)
assert os.read(fd, 100) == b'again'
os.close(fd)`)
  t.equal(await shOk(`cat ${file}`), 'again')
  await shOk(`rm ${file} ${join(agent.mount, 'g')}`)
  t.equal((await agent.json('/status')).files, 1, 'only the root is left')
})

t.test('closed small files survive kill -9; one still open is its old version or its new', OPTS, async (t) => {
  let agent = await startAgent()
  t.teardown(async () => await cleanupAgent(agent))
  const files = Array.from({ length: 50 }, (_, i) => ({ name: `s${i}`, data: randomBytes(1 + i * 80) }))
  for (const f of files) await writeFile(join(agent.root, f.name), f.data)
  await shOk(`mkdir ${agent.mount}/d && for f in ${files.map((f) => f.name).join(' ')}; do cp ${agent.root}/$f ${agent.mount}/d/$f; done`)
  await shOk(`printf old > ${agent.mount}/d/open`)
  // A writer that changed the file and has not closed it when the agent dies.
  const writer = spawn('bash', ['-c', `exec 3<>${agent.mount}/d/open; printf new-and-longer >&3; echo ready; exec sleep 60`])
  t.teardown(() => { writer.kill('SIGKILL') })
  let said = ''
  writer.stdout.on('data', (d) => { said += String(d) })
  await waitFor(() => said.includes('ready'), { timeoutMs: 30_000, what: 'the writer' })
  await agent.kill9()
  writer.kill('SIGKILL')
  agent = await startAgent({ data: agent.data })
  for (const f of files) t.equal(await shaOf(join(agent.mount, 'd', f.name)), sha(f.data), f.name)
  t.ok(['old', 'new-and-longer'].includes(await shOk(`cat ${agent.mount}/d/open`)), 'old or new, never a mix')
})

t.test('--inline-max 0 keeps small files in balls; a limit over 64 KiB is refused', OPTS, async (t) => {
  const agent = await startAgent({ args: ['--inline-max', '0'] })
  t.teardown(async () => await cleanupAgent(agent))
  await shOk(`echo hello > ${agent.mount}/f`)
  const loc = await location(agent, '/f')
  t.equal(loc.inline, false)
  t.equal(loc.balls.length, 1)
  t.equal(await diskBalls(agent), 1)
  const bad = await sh(`${process.execPath} ${CLI} agent --inline-max 65KiB --mount ${agent.root}/x --data ${agent.root}/y`)
  t.not(bad.code, 0)
  t.match(bad.stderr, /--inline-max must be at most 64\.0 KiB/)
  const junk = await sh(`${process.execPath} ${CLI} agent --inline-max lots --mount ${agent.root}/x --data ${agent.root}/y`)
  t.not(junk.code, 0)
  t.match(junk.stderr, /--inline-max/)
})
