// The data pool's write-ahead journal. Each batch is appended to a plain file
// with one write(2) on the agent's thread, and goes to LevelDB afterwards, in
// order, in the background. A change is safe from a crash of the agent once
// its append returned: no wait for a LevelDB write on the thread pool, whose
// two thread wake-ups are most of the cost of closing a small file on a
// virtual machine. LevelDB stores, with every batch, the number of the last
// record it holds; at open the records after it are written to LevelDB again.
//
// A record: length (u32 BE) | CRC-32 of the body (u32 BE) | body (msgpack of
// [seq, [[key, value or null], ...]]). A torn or corrupt tail (a crash in the
// middle of an append) ends the journal: that batch was never acknowledged.
import { closeSync, fstatSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs'
import { crc32 } from 'node:zlib'
import { pack, unpack } from 'msgpackr'
import { ChaacError } from '../errors.ts'
import type { BatchOp } from './batch-writer.ts'

/** The LevelDB key holding the number of the last journal record written to LevelDB. */
export const JOURNAL_SEQ_KEY = 'm!journal-seq'

const HEAD = 8

export interface JournalRecord { seq: number, ops: BatchOp[] }

export function encodeRecord (seq: number, ops: BatchOp[]): Buffer {
  const body = pack([seq, ops.map((op) => [op.key, op.type === 'put' ? op.value : null])])
  const out = Buffer.allocUnsafe(HEAD + body.length)
  out.writeUInt32BE(body.length, 0)
  out.writeUInt32BE(crc32(body), 4)
  body.copy(out, HEAD)
  return out
}

/** The whole records at the start of `buf`, up to the first torn or corrupt one. */
export function decodeRecords (buf: Buffer): JournalRecord[] {
  const records: JournalRecord[] = []
  for (let pos = 0; pos + HEAD <= buf.length;) {
    const length = buf.readUInt32BE(pos)
    const body = buf.subarray(pos + HEAD, pos + HEAD + length)
    if (body.length < length || crc32(body) !== buf.readUInt32BE(pos + 4)) break
    const [seq, pairs] = unpack(body) as [number, Array<[string, Uint8Array | null]>]
    records.push({
      seq,
      ops: pairs.map(([key, value]) => value === null ? { type: 'del', key } : { type: 'put', key, value: Buffer.from(value) })
    })
    pos += HEAD + length
  }
  return records
}

export class Journal {
  private size: number

  private constructor (private readonly fd: number, readonly path: string) {
    this.size = fstatSync(fd).size
  }

  /** Opens (or creates) the journal at `path`; the records it holds are read with `records`. */
  static open (path: string): Journal {
    try {
      return new Journal(openSync(path, 'a+'), path)
    } catch (err) {
      throw new ChaacError('CHAAC_META_FAILED', `cannot open the data pool's journal ${path}`, { cause: err })
    }
  }

  records (): JournalRecord[] {
    return decodeRecords(readFileSync(this.path))
  }

  /** Bytes in the journal now. */
  get bytes (): number {
    return this.size
  }

  /** Appends one record; once this returns, the batch survives a crash of the agent. */
  append (seq: number, ops: BatchOp[]): void {
    const record = encodeRecord(seq, ops)
    let written = 0
    try {
      while (written < record.length) written += writeSync(this.fd, record, written)
    } catch (err) {
      // A partial record would end the journal at replay: cut it off so later records count.
      if (written > 0) ftruncateSync(this.fd, this.size)
      throw new ChaacError((err as NodeJS.ErrnoException).code === 'ENOSPC' ? 'CHAAC_NO_SPACE' : 'CHAAC_META_FAILED',
        'the data pool could not write its journal', { cause: err })
    }
    this.size += record.length
  }

  /** Empties the journal: every record in it is in LevelDB. */
  clear (): void {
    ftruncateSync(this.fd, 0)
    this.size = 0
  }

  close (): void {
    closeSync(this.fd)
  }
}
