// The workloads of `chaac bench`, on any folder: plain fs/promises calls from
// the calling process (never *Sync: the folder may be a FUSE mount served by
// another process, and the event loop must keep drawing the progress bar).
// Each workload reports its rate; `onProgress` gets the units done so far.
import { randomBytes, randomFill } from 'node:crypto'
import { open, mkdir, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

const randomFillP = async (buf: Buffer): Promise<Buffer> =>
  await new Promise((resolve, reject) => randomFill(buf, (err, b) => err ? reject(err) : resolve(b)))

export type Progress = (done: number) => void

const CHUNK = 1024 * 1024

/**
 * A 1 MiB block of random bytes; `stamp` writes a per-run nonce and the block
 * index into its first 16 bytes, so no two blocks of any run are identical (a
 * filesystem that stores identical content once cannot skip any write).
 */
export async function randomBlock (size = CHUNK): Promise<{ buf: Buffer, stamp: (i: number) => void }> {
  const buf = await randomFillP(Buffer.allocUnsafe(size))
  const nonce = randomBytes(8)
  return {
    buf,
    stamp: (i: number) => {
      nonce.copy(buf, 0)
      buf.writeDoubleLE(i, 8)
    }
  }
}

/** Writes `size` bytes in 1 MiB writes, then fsync and close; bytes per second, the fsync included. */
export async function seqWrite (file: string, size: number, onProgress?: Progress): Promise<number> {
  const { buf, stamp } = await randomBlock()
  const start = performance.now()
  const fh = await open(file, 'w')
  try {
    for (let done = 0, i = 0; done < size; i++) {
      const n = Math.min(CHUNK, size - done)
      stamp(i)
      await fh.write(buf, 0, n, done)
      done += n
      onProgress?.(done)
    }
    await fh.sync()
  } finally {
    await fh.close()
  }
  return size / ((performance.now() - start) / 1000)
}

/** Reads the whole file in 1 MiB reads; bytes per second. */
export async function seqRead (file: string, onProgress?: Progress): Promise<number> {
  const buf = Buffer.allocUnsafe(CHUNK)
  const start = performance.now()
  const fh = await open(file, 'r')
  let total = 0
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, CHUNK, total)
      if (bytesRead === 0) break
      total += bytesRead
      onProgress?.(total)
    }
  } finally {
    await fh.close()
  }
  return total / ((performance.now() - start) / 1000)
}

/** Reads 4 KiB blocks at random aligned offsets of the file for `seconds`; reads per second. */
export async function randomReads (file: string, seconds: number, onProgress?: Progress): Promise<number> {
  const BLOCK = 4096
  const { size } = await stat(file)
  const blocks = Math.floor(size / BLOCK)
  if (blocks < 1) throw new Error(`${file} is smaller than one 4 KiB block`)
  const buf = Buffer.allocUnsafe(BLOCK)
  const fh = await open(file, 'r')
  let reads = 0
  const start = performance.now()
  const end = start + seconds * 1000
  let now = start
  try {
    while (now < end) {
      await fh.read(buf, 0, BLOCK, Math.floor(Math.random() * blocks) * BLOCK)
      reads++
      now = performance.now()
      if ((reads & 255) === 0) onProgress?.(Math.min(seconds, (now - start) / 1000))
    }
  } finally {
    await fh.close()
  }
  onProgress?.(seconds)
  return reads / ((now - start) / 1000)
}

export const SMALL_FILE_PHASES = ['create', 'stat', 'read', 'list', 'delete'] as const
export type SmallFilePhase = typeof SMALL_FILE_PHASES[number]

/**
 * `count` files of `size` bytes in a new folder `dir`: created (open, write,
 * close), stat'ed, read, listed (readdir, repeated for at least 0.2 s so
 * that one fast pass is not all noise) and deleted, one phase after another,
 * one file at a time. Operations per second of each phase (list: entries).
 */
export async function smallFiles (dir: string, count: number, size: number,
  onProgress?: (phase: SmallFilePhase, done: number) => void): Promise<Record<SmallFilePhase, number>> {
  await mkdir(dir)
  const names = Array.from({ length: count }, (_, i) => join(dir, `f${String(i).padStart(6, '0')}`))
  const { buf, stamp } = await randomBlock(Math.max(size, 16))
  const content = buf.subarray(0, size)
  const rates = {} as Record<SmallFilePhase, number>
  const timed = async (phase: SmallFilePhase, op: (name: string, i: number) => Promise<void>): Promise<void> => {
    const start = performance.now()
    for (let i = 0; i < names.length; i++) {
      await op(names[i], i)
      if ((i & 63) === 63) onProgress?.(phase, i + 1)
    }
    rates[phase] = names.length / ((performance.now() - start) / 1000)
    onProgress?.(phase, names.length)
  }
  try {
    await timed('create', async (name, i) => {
      if (size >= 16) stamp(i)
      await writeFile(name, content, { flag: 'wx' })
    })
    await timed('stat', async (name) => { await stat(name) })
    const readBuf = Buffer.allocUnsafe(size + 1)
    await timed('read', async (name) => {
      const fh = await open(name, 'r')
      try {
        const { bytesRead } = await fh.read(readBuf, 0, size + 1, 0)
        if (bytesRead !== size) throw new Error(`${name}: read ${bytesRead} bytes, expected ${size}`)
      } finally {
        await fh.close()
      }
    })
    let entries = 0
    const start = performance.now()
    let passes = 0
    while (passes < 1 || (performance.now() - start < 200 && passes < 50)) {
      const listed = await readdir(dir)
      if (listed.length !== count) throw new Error(`${dir}: listed ${listed.length} entries, expected ${count}`)
      entries += listed.length
      passes++
    }
    rates.list = entries / ((performance.now() - start) / 1000)
    onProgress?.('list', count)
    await timed('delete', async (name) => { await unlink(name) })
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
  return rates
}
