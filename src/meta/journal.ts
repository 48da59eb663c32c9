// The data pool's write-ahead journal. Each batch is appended to a plain file
// (one of two, see Journal) with one write(2) on the agent's thread, and goes to LevelDB afterwards, in
// order, in the background. A change is safe from a crash of the agent once
// its append returned: no wait for a LevelDB write on the thread pool, whose
// two thread wake-ups are most of the cost of closing a small file on a
// virtual machine. LevelDB stores, with every batch, the number of the last
// record it holds; at open the records after it are written to LevelDB again.
//
// An fsync (a commit asked for with sync) makes the journal itself durable
// (fdatasync of its file): one small write to stable storage, where a LevelDB
// write with sync costs several. A file of the journal is therefore emptied
// only once LevelDB holds all of its records on stable storage.
//
// The files are laid out with zeros ahead of the records (a megabyte at a
// time) and written in place: an fdatasync of a file that grew must also
// commit the filesystem's own journal (its new size and blocks), which costs
// about as much again as the data. Emptying a file only moves its end back
// to 0; the old records left behind are not read again, as record numbers
// only grow within a file.
//
// A record: length (u32 BE) | CRC-32 of the body (u32 BE) | body. The body:
// 0xc1 (a byte MessagePack never uses) | seq (f64 BE) | count (u32 BE) | per
// operation: key length (u32 BE), key (UTF-8), value length (u32 BE;
// 0xffffffff for a delete), value. Written straight into a buffer the
// journal keeps: a commit's record holds the bytes of its slices, and a new
// buffer for each (or a MessagePack copy) made the agent's garbage collector
// run several times a second under a database. Bodies of MessagePack
// ([seq, [[key, value or null], ...]]) from older agents read as before. A
// torn or corrupt tail (a crash in the middle of an append) ends the
// journal: that batch was never acknowledged.
import { closeSync, constants, fdatasync, fstatSync, openSync, readSync, writeSync } from 'node:fs'
import { promisify } from 'node:util'
import { crc32 } from 'node:zlib'
import { unpack } from 'msgpackr'
import { ChaacError } from '../errors.ts'
import type { BatchOp } from './batch-writer.ts'

/** The LevelDB key holding the number of the last journal record written to LevelDB. */
export const JOURNAL_SEQ_KEY = 'm!journal-seq'

const HEAD = 8
const BINARY = 0xc1
const DELETED = 0xffffffff
// The journal's buffer for records grows up to this; larger records get their own.
const SCRATCH_MAX = 1024 * 1024
// Zeros laid out ahead of the records.
const LAYOUT_STEP = 1024 * 1024
const PAGE_OF_ZEROS = Buffer.alloc(4096)
const fdatasyncP = promisify(fdatasync)

export interface JournalRecord { seq: number, ops: BatchOp[] }

/** The record's bytes; in `scratch` when it is large enough (valid until its next use). */
export function encodeRecord (seq: number, ops: BatchOp[], scratch?: Buffer): Buffer {
  let size = HEAD + 13
  for (const op of ops) size += 8 + Buffer.byteLength(op.key) + (op.type === 'put' ? op.value.length : 0)
  const out = scratch !== undefined && scratch.length >= size ? scratch.subarray(0, size) : Buffer.allocUnsafe(size)
  let pos = HEAD
  out[pos++] = BINARY
  out.writeDoubleBE(seq, pos)
  out.writeUInt32BE(ops.length, pos + 8)
  pos += 12
  for (const op of ops) {
    const keyLength = out.write(op.key, pos + 4)
    out.writeUInt32BE(keyLength, pos)
    pos += 4 + keyLength
    if (op.type === 'put') {
      out.writeUInt32BE(op.value.length, pos)
      out.set(op.value, pos + 4)
      pos += 4 + op.value.length
    } else {
      out.writeUInt32BE(DELETED, pos)
      pos += 4
    }
  }
  out.writeUInt32BE(size - HEAD, 0)
  out.writeUInt32BE(crc32(out.subarray(HEAD)), 4)
  return out
}

function decodeBody (body: Buffer): JournalRecord {
  if (body[0] !== BINARY) {
    const [seq, pairs] = unpack(body) as [number, Array<[string, Uint8Array | null]>]
    return { seq, ops: pairs.map(([key, value]) => value === null ? { type: 'del', key } : { type: 'put', key, value: Buffer.from(value) }) }
  }
  const seq = body.readDoubleBE(1)
  const count = body.readUInt32BE(9)
  const ops: BatchOp[] = []
  let pos = 13
  for (let i = 0; i < count; i++) {
    const keyEnd = pos + 4 + body.readUInt32BE(pos)
    const key = body.toString('utf8', pos + 4, keyEnd)
    const length = body.readUInt32BE(keyEnd)
    pos = keyEnd + 4
    if (length === DELETED) {
      ops.push({ type: 'del', key })
    } else {
      ops.push({ type: 'put', key, value: Buffer.from(body.subarray(pos, pos + length)) })
      pos += length
    }
  }
  return { seq, ops }
}

/**
 * The whole records at the start of `buf`, up to the first torn or corrupt
 * one, the laid-out zeros after the last one, or an older record left from
 * before the file was last emptied (numbers only grow within a file).
 */
export function decodeRecords (buf: Buffer): JournalRecord[] {
  return scanRecords(buf).records
}

/** decodeRecords, and where the last whole record ends. */
function scanRecords (buf: Buffer): { records: JournalRecord[], end: number } {
  const records: JournalRecord[] = []
  let pos = 0
  while (pos + HEAD <= buf.length) {
    const length = buf.readUInt32BE(pos)
    const body = buf.subarray(pos + HEAD, pos + HEAD + length)
    if (length === 0 || body.length < length || crc32(body) !== buf.readUInt32BE(pos + 4)) break
    const record = decodeBody(body)
    if (records.length > 0 && record.seq <= records[records.length - 1].seq) break
    records.push(record)
    pos += HEAD + length
  }
  return { records, end: pos }
}

// One of the journal's two files.
class Segment {
  /** Where the records end (the file is laid out further). */
  size: number
  // How far the file is laid out.
  private laidOut: number
  /** The number of the last record appended (0: none since it was emptied). */
  lastSeq = 0
  // Appends so far, and how many of them an fdatasync has made durable.
  private appends = 0
  private durable = 0
  private syncing?: { upTo: number, done: Promise<void> }

  constructor (readonly fd: number, readonly path: string) {
    this.laidOut = fstatSync(fd).size
    const { records, end } = scanRecords(this.read(this.laidOut))
    this.size = end
    this.lastSeq = records.at(-1)?.seq ?? 0
  }

  /** The records up to the end of the last one. */
  records (): JournalRecord[] {
    return decodeRecords(this.read(this.size))
  }

  append (record: Buffer): void {
    let written = 0
    try {
      if (this.size + record.length > this.laidOut) this.layOut(this.size + record.length + LAYOUT_STEP)
      while (written < record.length) written += writeSync(this.fd, record, written, record.length - written, this.size + written)
    } catch (err) {
      // A partial record ends the journal at replay, and the next append writes over it.
      throw new ChaacError((err as NodeJS.ErrnoException).code === 'ENOSPC' ? 'CHAAC_NO_SPACE' : 'CHAAC_META_FAILED',
        'the data pool could not write its journal', { cause: err })
    }
    this.size += record.length
    this.appends++
  }

  /** Makes every record appended so far durable; concurrent callers share an fdatasync that covers them. */
  async sync (): Promise<void> {
    const want = this.appends
    while (this.durable < want) {
      const running = this.syncing
      if (running) {
        // One that started before our append does not cover it: wait for it, then look again.
        await running.done.catch(() => {})
        continue
      }
      const upTo = this.appends
      const done = fdatasyncP(this.fd).then(() => { this.durable = Math.max(this.durable, upTo) }, (err) => {
        throw new ChaacError('CHAAC_META_FAILED', 'the data pool could not flush its journal to stable storage', { cause: err })
      }).finally(() => { if (this.syncing?.done === done) this.syncing = undefined })
      this.syncing = { upTo, done }
      await done
    }
  }

  clear (): void {
    // The first record's length goes to zero, so that the next open stops
    // there instead of reading every old record again (megabytes of them
    // after a clean stop). Lost in a crash, the old records only cost that.
    if (this.size > 0) writeSync(this.fd, PAGE_OF_ZEROS, 0, HEAD, 0)
    this.size = 0
    this.lastSeq = 0
    // Its records are on stable storage in LevelDB: nothing left to flush.
    this.durable = this.appends
  }

  private read (length: number): Buffer {
    const buf = Buffer.allocUnsafe(length)
    let got = 0
    while (got < length) {
      const n = readSync(this.fd, buf, got, length - got, got)
      if (n === 0) break
      got += n
    }
    return buf.subarray(0, got)
  }

  // Zeros up to `bytes`: the next fdatasync commits the file's new size once
  // for many records. A page at a time: the page cache keeps the file in
  // folios as large as the writes that made them, and writes back a dirty
  // folio whole, so zeros laid out in one large write made each small record
  // after them cost up to a megabyte at its fdatasync (measured: 6x the bytes).
  private layOut (bytes: number): void {
    for (let pos = this.laidOut; pos < bytes;) pos += writeSync(this.fd, PAGE_OF_ZEROS, 0, Math.min(PAGE_OF_ZEROS.length, bytes - pos), pos)
    this.laidOut = bytes
  }
}

/**
 * Two files, written one at a time: once the one being written passes
 * `segmentBytes`, appends go to the other (when it is empty), and the full
 * one is emptied as soon as LevelDB holds all of it. So the journal stays
 * bounded while LevelDB keeps up, even if it never catches up completely.
 */
export class Journal {
  private active: number
  private scratch = Buffer.allocUnsafe(64 * 1024)

  private constructor (private readonly segments: [Segment, Segment], private readonly segmentBytes: number) {
    this.active = segments[0].size <= segments[1].size ? 0 : 1
  }

  /** Opens (or creates) the journal's files `PATH.0` and `PATH.1`; the records they hold are read with `records`. */
  static open (path: string, opts: { segmentBytes?: number } = {}): Journal {
    const segment = (i: number): Segment => {
      const file = `${path}.${i}`
      try {
        return new Segment(openSync(file, constants.O_RDWR | constants.O_CREAT, 0o600), file)
      } catch (err) {
        throw new ChaacError('CHAAC_META_FAILED', `cannot open the data pool's journal ${file}`, { cause: err })
      }
    }
    return new Journal([segment(0), segment(1)], opts.segmentBytes ?? 4 * 1024 * 1024)
  }

  /** Every whole record in the journal, in order. */
  records (): JournalRecord[] {
    return this.segments.flatMap((s) => s.records()).sort((a, b) => a.seq - b.seq)
  }

  /** Bytes in the journal now. */
  get bytes (): number {
    return this.segments[0].size + this.segments[1].size
  }

  /** Appends one record; once this returns, the batch survives a crash of the agent. */
  append (seq: number, ops: BatchOp[]): void {
    let segment = this.segments[this.active]
    const other = this.segments[1 - this.active]
    if (segment.size >= this.segmentBytes && other.size === 0) {
      this.active = 1 - this.active
      segment = other
    }
    const record = encodeRecord(seq, ops, this.scratch)
    if (record.buffer !== this.scratch.buffer && record.length <= SCRATCH_MAX) this.scratch = Buffer.allocUnsafe(Math.min(SCRATCH_MAX, 2 * record.length))
    segment.append(record)
    segment.lastSeq = seq
  }

  /** Makes every record appended so far durable (an fsync's commit). */
  async sync (): Promise<void> {
    await Promise.all(this.segments.map(async (s) => await s.sync()))
  }

  /**
   * LevelDB holds every record up to `storedSeq` on stable storage: the file
   * not being written is emptied if it holds only such records. (The one
   * being written is left alone: appends move off it once it is full and the
   * other is empty.)
   */
  applied (storedSeq: number): void {
    if (this.waiting(storedSeq)) this.segments[1 - this.active].clear()
  }

  /** Whether the file not being written could be emptied once LevelDB has every record up to `seq` on stable storage. */
  waiting (seq: number): boolean {
    const idle = this.segments[1 - this.active]
    return idle.size > 0 && idle.lastSeq <= seq
  }

  /** Empties the journal: every record in it is in LevelDB. */
  clear (): void {
    for (const segment of this.segments) segment.clear()
  }

  close (): void {
    for (const segment of this.segments) closeSync(segment.fd)
  }
}
