// Hashes new balls on worker threads. The SHA-256 of every block of a 4 MiB
// ball is most of what sealing a chunk costs the main thread; on a worker it
// overlaps with the next writes. Small balls are hashed inline: for them a
// round trip to a worker saves the main thread little and adds latency.
import { availableParallelism } from 'node:os'
import { Worker } from 'node:worker_threads'
import { ChaacError } from '../errors.ts'
import { BLOCK_SIZE, ballHeader, encodeBall } from './ball-codec.ts'

/** Balls smaller than this are hashed on the calling thread (measured: at 64 KiB a round trip costs the main thread as much as hashing). */
export const INLINE_BELOW = 256 * 1024
const WORKER_SCRIPT = new URL('./hash-worker.mjs', import.meta.url)

interface Job { resolve: (hashes: Uint8Array) => void, reject: (err: Error) => void }

export interface HasherOptions {
  /** Worker threads at most (default: the cores but one for the main thread, 1 to 2). */
  workers?: number
  /** The workers' module; tests hand in one that fails. */
  script?: URL
}

export class Hasher {
  private readonly size: number
  private readonly script: URL
  // A worker answers in the order it was asked: its jobs, oldest first.
  private readonly pool = new Map<Worker, Job[]>()
  private closed = false

  constructor (opts: HasherOptions = {}) {
    this.size = opts.workers ?? Math.max(1, Math.min(2, availableParallelism() - 1))
    this.script = opts.script ?? WORKER_SCRIPT
  }

  /** The header and id of a new ball, as encodeBall makes them. `data` must not change until this settles. */
  async encode (data: Buffer): Promise<{ id: string, header: Buffer }> {
    if (data.length < INLINE_BELOW || this.closed) return encodeBall(data)
    const hashes = await this.hash(shared(data))
    return ballHeader(data.length, BLOCK_SIZE, hashes)
  }

  /**
   * The SHA-256 of each block of bytes read back (a read's check against its
   * ball's header), on a worker; undefined when they are better hashed inline
   * (few bytes, or the hasher is closed).
   */
  async blockHashes (data: Buffer): Promise<Uint8Array | undefined> {
    if (data.length < INLINE_BELOW || this.closed) return undefined
    return await this.hash(shared(data))
  }

  /** Stops the workers: encodes waiting on them fail, later ones hash inline. */
  async close (): Promise<void> {
    this.closed = true
    await Promise.all([...this.pool.keys()].map(async (worker) => await this.drop(worker, 'the hasher was closed')))
  }

  private async hash (data: Buffer): Promise<Uint8Array> {
    const [worker, jobs] = this.pick()
    return await new Promise((resolve, reject) => {
      // A worker keeps the process alive only while it has work.
      if (jobs.push({ resolve, reject }) === 1) worker.ref()
      worker.postMessage({ buffer: data.buffer, offset: data.byteOffset, length: data.length, blockSize: BLOCK_SIZE })
    })
  }

  // An idle worker, else a new one while the pool has room, else the least busy.
  private pick (): [Worker, Job[]] {
    let best: [Worker, Job[]] | undefined
    for (const entry of this.pool) if (best === undefined || entry[1].length < best[1].length) best = entry
    if (best !== undefined && (best[1].length === 0 || this.pool.size >= this.size)) return best
    return this.spawn()
  }

  private spawn (): [Worker, Job[]] {
    // Plain JavaScript: none of the main thread's flags and loaders (tsx, --input-type) apply.
    const worker = new Worker(this.script, { execArgv: [] })
    const jobs: Job[] = []
    worker.on('message', (hashes: ArrayBuffer) => {
      jobs.shift()?.resolve(new Uint8Array(hashes))
      if (jobs.length === 0) worker.unref()
    })
    // A worker that fails takes its jobs with it; the next encode starts another in its place.
    worker.on('error', (err) => { void this.drop(worker, `a hash worker failed: ${err.message}`, err) })
    // An answer lost on the way would pair every later answer with the wrong job.
    worker.on('messageerror', (err) => { void this.drop(worker, 'an answer of a hash worker could not be read', err) })
    worker.on('exit', (code) => { void this.drop(worker, `a hash worker exited with code ${code}`) })
    // After the listeners: a 'message' listener refs the worker again.
    worker.unref()
    this.pool.set(worker, jobs)
    return [worker, jobs]
  }

  private async drop (worker: Worker, why: string, cause?: unknown): Promise<void> {
    const jobs = this.pool.get(worker)
    if (jobs === undefined) return
    this.pool.delete(worker)
    for (const job of jobs.splice(0)) job.reject(new ChaacError('CHAAC_IO', `could not hash a new ball: ${why}`, { cause }))
    await worker.terminate()
  }
}

// Workers read bytes on shared memory in place (whole-chunk buffers are, see
// open-file.ts); other bytes are copied there, for a tenth of what hashing
// them costs.
function shared (data: Buffer): Buffer {
  if (data.buffer instanceof SharedArrayBuffer) return data
  const copy = Buffer.from(new SharedArrayBuffer(data.length))
  data.copy(copy)
  return copy
}
