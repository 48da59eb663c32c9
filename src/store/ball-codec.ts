// The on-disk and on-wire form of a ball, and how any copy of it is checked.
// Pure: data in, data out.
//
// A ball is stored as a header followed by its data. The header lists the
// SHA-256 of every block (64 KiB), and the ball's id is the SHA-256 of the
// header: a hash tree of depth two. Any byte range can thus be verified by
// reading only the header and the blocks it touches, which keeps random reads
// and ranged cloud-tier reads cheap while every byte served is still checked.
import { createHash } from 'node:crypto'

export const BLOCK_SIZE = 64 * 1024
const MAGIC = 0x43484231 // "CHB1"
const FIXED_HEADER = 12
export const HASH_SIZE = 32

export interface BallHeader {
  id: string
  size: number
  blockSize: number
  hashes: Buffer
  /** Bytes taken by the header in front of the data. */
  length: number
}

export function blockCount (size: number, blockSize = BLOCK_SIZE): number {
  return Math.ceil(size / blockSize)
}

export function headerLength (size: number, blockSize = BLOCK_SIZE): number {
  return FIXED_HEADER + HASH_SIZE * blockCount(size, blockSize)
}

/** Builds the header of `data`; the ball on disk is `header ++ data`. */
export function encodeBall (data: Buffer, blockSize = BLOCK_SIZE): { id: string, header: Buffer } {
  const n = blockCount(data.length, blockSize)
  const hashes = Buffer.allocUnsafe(HASH_SIZE * n)
  for (let i = 0; i < n; i++) {
    const block = data.subarray(i * blockSize, Math.min(data.length, (i + 1) * blockSize))
    createHash('sha256').update(block).digest().copy(hashes, i * HASH_SIZE)
  }
  return ballHeader(data.length, blockSize, hashes)
}

/**
 * The header and id of a ball of `size` bytes from the SHA-256 of each of
 * its blocks, one after another: encodeBall and the hash workers
 * (hasher.ts) both end here.
 */
export function ballHeader (size: number, blockSize: number, hashes: Uint8Array): { id: string, header: Buffer } {
  if (hashes.length !== HASH_SIZE * blockCount(size, blockSize)) {
    throw new TypeError(`${hashes.length} bytes of block hashes for a ball of ${size} bytes`)
  }
  const header = Buffer.allocUnsafe(FIXED_HEADER + hashes.length)
  header.writeUInt32BE(MAGIC, 0)
  header.writeUInt32BE(size, 4)
  header.writeUInt32BE(blockSize, 8)
  header.set(hashes, FIXED_HEADER)
  return { id: createHash('sha256').update(header).digest('hex'), header }
}

/** Reads how long the header is from its first 12 bytes, or null if they are not a ball header. */
export function peekHeaderLength (fixed: Buffer): number | null {
  if (fixed.length < FIXED_HEADER || fixed.readUInt32BE(0) !== MAGIC) return null
  const size = fixed.readUInt32BE(4)
  const blockSize = fixed.readUInt32BE(8)
  if (blockSize === 0) return null
  return headerLength(size, blockSize)
}

export const FIXED_HEADER_LENGTH = FIXED_HEADER

/** The header of the largest ball (2^32 - 1 bytes) in standard blocks: anything longer is corrupt. */
export const MAX_HEADER_LENGTH = headerLength(0xffffffff)

/** Parses a header and checks it against the ball's id; null if it does not match. */
export function parseHeader (id: string, raw: Buffer): BallHeader | null {
  const length = peekHeaderLength(raw)
  if (length === null || raw.length < length) return null
  const header = raw.subarray(0, length)
  if (createHash('sha256').update(header).digest('hex') !== id) return null
  return {
    id,
    size: header.readUInt32BE(4),
    blockSize: header.readUInt32BE(8),
    hashes: Buffer.from(header.subarray(FIXED_HEADER)),
    length
  }
}

/** The whole blocks that cover [offset, offset + length), clipped to the ball. */
export function blockSpan (h: BallHeader, offset: number, length: number): { first: number, start: number, end: number } {
  const stop = Math.min(h.size, offset + length)
  const first = Math.floor(offset / h.blockSize)
  const last = Math.max(first, Math.ceil(stop / h.blockSize) - 1)
  return { first, start: first * h.blockSize, end: Math.min(h.size, (last + 1) * h.blockSize) }
}

/** Checks whole blocks starting at block `first`; `data` must start on that block's boundary. */
export function verifyBlocks (h: BallHeader, first: number, data: Buffer): boolean {
  for (let pos = 0, i = first; pos < data.length; pos += h.blockSize, i++) {
    const block = data.subarray(pos, Math.min(data.length, pos + h.blockSize))
    const want = h.hashes.subarray(i * HASH_SIZE, (i + 1) * HASH_SIZE)
    if (want.length !== HASH_SIZE || !createHash('sha256').update(block).digest().equals(want)) return false
  }
  return true
}
