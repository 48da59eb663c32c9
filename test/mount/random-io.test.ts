// Random writes, truncates, fsyncs and reopens against a model in memory:
// the mount must read back exactly what a local disk would.
import t from 'tap'
import { cleanupAgent, py, startAgent } from '../helpers/agent.ts'

const script = (dir: string, seed: number): string => `
import os, random
random.seed(${seed})
for trial in range(2):
    ref = bytearray()
    p = '${dir}/random-%d-%d.bin' % (${seed}, trial)
    fd = os.open(p, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    for i in range(300):
        # Offsets and sizes spread over several 1 MiB chunks and their edges.
        off = random.randrange(0, 6 * 1024 * 1024)
        n = random.choice([1, 4095, 4096, 65536, 131072, 300000, random.randrange(1, 1 << 20)])
        data = os.urandom(n)
        os.pwrite(fd, data, off)
        if len(ref) < off + n:
            ref.extend(bytes(off + n - len(ref)))
        ref[off:off + n] = data
        if i % 41 == 0:
            os.fsync(fd)
        if i % 37 == 0:
            cut = random.randrange(0, len(ref))
            os.ftruncate(fd, cut)
            del ref[cut:]
        if i % 53 == 0:
            os.close(fd)
            fd = os.open(p, os.O_RDWR)
        if i % 29 == 0:
            got = b''
            while len(got) < len(ref) + 1:
                part = os.pread(fd, len(ref) + 1 - len(got), len(got))
                if not part:
                    break
                got += part
            assert got == bytes(ref), ('mismatch while open', trial, i)
    os.close(fd)
    with open(p, 'rb') as f:
        assert f.read() == bytes(ref), ('mismatch after close', trial)
    assert os.stat(p).st_size == len(ref)
print('ok')
`

t.test('random I/O - pwrite, ftruncate, fsync and reopen read back like a local disk', async (t) => {
  // A 1 MiB chunk size puts many writes across chunk edges.
  const agent = await startAgent({ args: ['--chunk-size', '1MiB'] })
  t.teardown(async () => await cleanupAgent(agent))
  for (const seed of [1, 2, 3]) {
    t.equal((await py(script(agent.mount, seed))).trim(), 'ok', `seed ${seed}`)
  }
})
