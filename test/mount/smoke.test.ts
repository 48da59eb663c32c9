import t from 'tap'
import { readFile } from 'node:fs/promises'
import { cleanupAgent, shOk, startAgent } from '../helpers/agent.ts'

t.test('agent - mounts, serves a file written and read by another process, unmounts on SIGTERM', async (t) => {
  const agent = await startAgent()
  t.teardown(async () => await cleanupAgent(agent))
  await shOk('echo hello > a.txt && mkdir d && cp a.txt d/b', { cwd: agent.mount })
  t.equal(await shOk('cat d/b', { cwd: agent.mount }), 'hello\n')
  // libfuse 2.9 alone would have the kernel cut a 1 MiB write into eight requests.
  await shOk('dd if=/dev/urandom of=big bs=1M count=8 status=none && dd if=big of=copy bs=1M conv=fsync status=none && cmp big copy', { cwd: agent.mount })
  const status = await agent.json('/status')
  t.equal(status.mount.path, agent.mount)
  t.match(status.mount.requests, { max: 1048576, largestWrite: 1048576 }, 'the kernel sends writes of up to 1 MiB in one request')
  // And reads of up to 1 MiB to a sequential reader, four at a time: the mount's readahead window is as large.
  t.equal(status.mount.requests.readaheadKb, 4096)
  const device = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').map((l) => l.split(' ')).find((f) => f[4] === agent.mount)?.[2]
  t.equal((await readFile(`/sys/class/bdi/${device}/read_ahead_kb`, 'utf8')).trim(), '4096')
  // Listed again with nothing changed: from the kernel's cache, without a READDIR.
  t.equal(await shOk('ls d', { cwd: agent.mount }), 'b\n')
  const listings = (await agent.json('/status')).mount.requests.listings
  t.equal(await shOk('ls d && ls -a d', { cwd: agent.mount }), 'b\n.\n..\nb\n')
  t.equal((await agent.json('/status')).mount.requests.listings, listings, 'listed from the kernel\'s cache')
  await shOk('touch d/c && rm d/b', { cwd: agent.mount })
  t.equal(await shOk('ls d', { cwd: agent.mount }), 'c\n', 'a change made here is listed at once')
  t.equal((await agent.json('/status')).mount.requests.listings, listings + 1, 'listed by the agent again')
  // A file only read is closed without a FLUSH; one opened for writing is flushed (its writes committed) at its close.
  const flushes = (await agent.json('/status')).mount.requests.flushes
  t.equal(await shOk('cat a.txt && cat d/c a.txt', { cwd: agent.mount }), 'hello\nhello\n')
  t.equal((await agent.json('/status')).mount.requests.flushes, flushes, 'no FLUSH for closes of files only read')
  await shOk('echo more >> a.txt', { cwd: agent.mount })
  t.ok((await agent.json('/status')).mount.requests.flushes > flushes, 'a close after writing is flushed')
  t.equal(await shOk('cat a.txt', { cwd: agent.mount }), 'hello\nmore\n')
  t.equal(await agent.stop(), 0)
  t.notMatch(await shOk('cat /proc/self/mountinfo'), agent.mount, 'unmounted after SIGTERM')
})

// Busy polling (--busy-poll, on by default) must stop once requests stop coming.
t.test('agent - after a burst of small-file requests an idle agent takes next to no CPU', async (t) => {
  const agent = await startAgent()
  t.teardown(async () => await cleanupAgent(agent))
  await shOk('for i in $(seq 500); do echo x > f$i; cat f$i > /dev/null; done && rm f*', { cwd: agent.mount })
  const ticks = async (): Promise<number> => {
    const fields = (await readFile(`/proc/${agent.pid}/stat`, 'utf8')).split(') ')[1].split(' ')
    // utime and stime, fields 14 and 15 of the line (11 and 12 after the command name).
    return Number(fields[11]) + Number(fields[12])
  }
  const before = await ticks()
  const window = 2000
  await new Promise((resolve) => setTimeout(resolve, window))
  const used = (await ticks()) - before
  // Clock ticks are 1/100 s on Linux; a spinning agent would use about 200 here.
  t.ok(used <= 40, `CPU over ${window / 1000} s of idleness: ${used} ticks`)
  t.equal(await agent.stop(), 0)
})
