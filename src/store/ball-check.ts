// The check of a whole ball fetched or read back (from a peer, the cloud
// tier, a bin being drained) before any of it is used. A large ball's blocks
// are hashed on a thread of libuv's pool by the binding
// (native/chaac-fuse/verify-blocks.c), which only references the bytes: on
// the agent's JavaScript thread the hashes took a tenth of its time during
// remote reads, and a hash worker needed the bytes copied to it first.
import { createRequire } from 'node:module'
import { parseHeader, verifyBlocks } from './ball-codec.ts'
import { INLINE_BELOW } from './hasher.ts'

const native = createRequire(import.meta.url)('../../native/chaac-fuse/build/Release/chaac_fuse.node') as {
  verifyBlocks: (data: Buffer, blockSize: number, hashes: Buffer) => Promise<boolean>
}

/** A whole stored ball (header ++ data) checked against its id: its two parts, or null if any byte is wrong. `raw` must not change until this settles. */
export async function checkWholeBall (id: string, raw: Buffer): Promise<{ header: Buffer, data: Buffer } | null> {
  const h = parseHeader(id, raw)
  if (!h || raw.length < h.length + h.size) return null
  const data = raw.subarray(h.length, h.length + h.size)
  const good = data.length < INLINE_BELOW ? verifyBlocks(h, 0, data) : await native.verifyBlocks(data, h.blockSize, h.hashes)
  return good ? { header: raw.subarray(0, h.length), data } : null
}
