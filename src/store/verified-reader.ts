// Reads byte ranges of balls from any source (a bin, a peer, the cloud tier)
// and checks every block it returns against the ball's hash tree.
import { ChaacError } from '../errors.ts'
import { BLOCK_SIZE, HASH_SIZE, MAX_HEADER_LENGTH, blockSpan, parseHeader, peekHeaderLength, verifyBlocks, type BallHeader } from './ball-codec.ts'
import { Lru } from './lru.ts'

export interface BallSource {
  /**
   * Raw bytes [start, start + length) of the stored ball (header ++ data);
   * shorter at the end. With `into` (at least `length` bytes) a source may
   * read into it and return a view of it, which saves a copy on the hot path.
   */
  readRaw: (id: string, start: number, length: number, into?: Buffer) => Promise<Buffer>
}

// Covers the header of a ball of up to 127 blocks (8 MiB) in one read.
const FIRST_READ = 4096

export interface VerifiedReaderOptions {
  /**
   * The SHA-256 of each block of `data` off the calling thread, or undefined
   * to hash inline: checking a whole 4 MiB ball read back (a merge of slices)
   * costs the agent's thread about 10 ms.
   */
  blockHashes?: (data: Buffer) => Promise<Uint8Array | undefined>
}

export class VerifiedReader {
  // Headers are the same whichever copy they came from, so one cache serves all sources.
  private readonly headers = new Lru<string, BallHeader>(8192)

  constructor (private readonly opts: VerifiedReaderOptions = {}) {}

  async header (source: BallSource, id: string): Promise<BallHeader> {
    const cached = this.headers.get(id)
    if (cached) return cached
    let raw = await source.readRaw(id, 0, FIRST_READ)
    const length = peekHeaderLength(raw)
    // A corrupt size field must not make a source allocate gigabytes.
    if (length !== null && length > MAX_HEADER_LENGTH) throw corrupt(id)
    if (length !== null && length > raw.length) raw = await source.readRaw(id, 0, length)
    const header = parseHeader(id, raw)
    if (!header) throw corrupt(id)
    this.headers.set(id, header)
    return header
  }

  /**
   * Verified bytes [offset, offset + length) of the ball's data, clipped to
   * its size. When the range is whole blocks, they are read into `into` (if
   * given) and the result is a view of it.
   */
  async read (source: BallSource, id: string, offset: number, length: number, into?: Buffer): Promise<Buffer> {
    const h = await this.header(source, id)
    if (offset >= h.size || length <= 0) return Buffer.alloc(0)
    const span = blockSpan(h, offset, length)
    const aligned = span.start === offset && span.end === Math.min(h.size, offset + length)
    const data = await source.readRaw(id, h.length + span.start, span.end - span.start, aligned ? into : undefined)
    if (data.length !== span.end - span.start || !await this.verify(h, span.first, data)) {
      throw new ChaacError('CHAAC_BALL_CORRUPT', `ball ${id}: bytes ${span.start}-${span.end} fail their hash`, { ball: id })
    }
    return data.subarray(offset - span.start, Math.min(h.size, offset + length) - span.start)
  }

  // Whether whole blocks from block `first` on match the header.
  private async verify (h: BallHeader, first: number, data: Buffer): Promise<boolean> {
    let hashes: Uint8Array | undefined
    try {
      hashes = h.blockSize === BLOCK_SIZE ? await this.opts.blockHashes?.(data) : undefined
    } catch {
      // A worker that failed: the check is done here instead.
    }
    if (hashes === undefined) return verifyBlocks(h, first, data)
    const want = h.hashes.subarray(first * HASH_SIZE, first * HASH_SIZE + hashes.length)
    return want.length === hashes.length && Buffer.from(hashes.buffer, hashes.byteOffset, hashes.byteLength).equals(want)
  }
}

const corrupt = (id: string): ChaacError => new ChaacError('CHAAC_BALL_CORRUPT', `ball ${id}: header does not match its id`, { ball: id })
