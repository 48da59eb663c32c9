// New ball files written with O_DIRECT: the bytes go from one aligned buffer
// to the disk instead of through the page cache. On a sequential write,
// copying ball bytes into the page cache (and writing it back) took 41% of
// the machine's CPU; the fsync that makes a ball durable now finds nothing
// dirty. The binding does the copy into the aligned buffer and the write on
// a thread of libuv's pool (native/chaac-fuse/direct-write.c): JS can
// neither align a buffer nor copy out of a shared one at memcpy's pace. A
// filesystem without O_DIRECT gets the usual buffered write from the caller.
import { createRequire } from 'node:module'

const native = createRequire(import.meta.url)('../../native/chaac-fuse/build/Release/chaac_fuse.node') as {
  writeDirect: (path: string, parts: Buffer[]) => Promise<boolean>
}

/** What O_DIRECT asks of offsets, lengths and memory (the binding pads and cuts back to it). */
export const DIRECT_ALIGN = 4096

/**
 * Writes `parts` (up to 4), one after the other, as the new file `path`
 * with O_DIRECT. False, with nothing created, where the filesystem refuses
 * O_DIRECT; a failure rejects with the errno's name as the error's code.
 */
export async function writeDirect (path: string, parts: Buffer[]): Promise<boolean> {
  return await native.writeDirect(path, parts)
}
