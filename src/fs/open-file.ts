// The content of one regular file while handles have it open: the committed
// ball list plus dirty chunks not yet sealed into balls. Writes land in
// chunk buffers; a chunk written to its end is sealed into a ball in the
// background, and flush/fsync/close seal the rest and commit the new ball
// list in one batch. Readers on this host see the writes at once; other
// hosts see them at the next commit (close-to-open consistency). A file no
// larger than the inline limit is committed as its bytes instead of balls:
// one metadata batch, no ball file, which is what makes small files cheap.
import { ChaacError } from '../errors.ts'
import type { Inode } from '../meta/schema.ts'
import type { BallStore } from '../store/ball-store.ts'

/** Dirty chunks kept before the oldest is sealed, and seals in flight per file. */
const MAX_DIRTY = 8
const MAX_SEALING = 2
// Balls fetched ahead of a sequential reader, or of one that missed the local cache.
const READ_AHEAD_BALLS = 4

interface Sealing { gen: number, buf: Buffer, done: Promise<void> }

export interface Snapshot {
  size: number
  balls: Array<string | null>
  chunkSize: number
  mtime?: number
  /** Balls written for this snapshot that the writer holds pinned. */
  pinned: string[]
  /** Balls written since the last fsync. */
  unsynced: string[]
  /** The file's bytes when it is kept inline (then `balls` is empty). */
  inline?: Buffer
}

export class OpenFile {
  handles = 0
  /** The last handle is being released: what it did not commit is not the file's. */
  closing = false
  size: number
  mtime: number
  readonly chunkSize: number
  private balls: Array<string | null>
  // The bytes of a file kept inline (chunk 0): fetched from the data pool
  // when first needed (an open served from the kernel's cache needs none),
  // until a write copies them into a dirty chunk.
  private inline?: Buffer
  private fetchInline?: () => Promise<Buffer>
  private fetchingInline?: Promise<void>
  private readonly dirty = new Map<number, Buffer>()
  private readonly loading = new Map<number, Promise<Buffer>>()
  private readonly sealing = new Map<number, Sealing>()
  // The newest generation of each chunk: an older seal finishing late is ignored.
  private readonly latest = new Map<number, number>()
  private gen = 0
  // The ball the last read from the store touched, to tell a sequential reader.
  private lastBallRead = -2
  private pinned: string[] = []
  private unsynced: string[] = []
  private error: unknown
  /** Bumped by every change; a commit clears `changed` only if nothing came after it. */
  private version = 0
  private committedVersion = 0
  private commitChain: Promise<unknown> = Promise.resolve()

  /** `inlineMax`: files up to this size are committed inline; `fetchInline`: the bytes of a file kept inline. */
  constructor (readonly ino: number, node: Inode, chunkSize: number, private readonly store: BallStore,
    private readonly inlineMax: number, fetchInline?: () => Promise<Buffer>) {
    this.size = node.size
    this.mtime = node.mtime
    this.balls = [...(node.balls ?? [])]
    this.chunkSize = node.chunkSize ?? chunkSize
    this.fetchInline = fetchInline
  }

  get changed (): boolean {
    return this.version !== this.committedVersion
  }

  get busy (): boolean {
    return this.dirty.size > 0 || this.sealing.size > 0 || this.changed
  }

  /**
   * Writes `data` at `offset`. `data` may be the kernel's buffer, lent only
   * for this call: every byte is copied before the first await (into chunk
   * buffers, or into a private copy for a chunk that must be loaded first).
   */
  async write (data: Buffer, offset: number): Promise<void> {
    this.throwPending()
    const C = this.chunkSize
    const later: Array<{ idx: number, within: number, bytes: Buffer }> = []
    for (let pos = 0; pos < data.length;) {
      const abs = offset + pos
      const idx = Math.floor(abs / C)
      const within = abs - idx * C
      const n = Math.min(C - within, data.length - pos)
      // The size first: sealing a chunk cuts the ball at the file's size.
      if (abs + n > this.size) this.size = abs + n
      const chunk = this.dirty.get(idx) ?? this.chunkAtHand(idx)
      if (chunk) this.place(idx, chunk, within, data.subarray(pos, pos + n))
      else later.push({ idx, within, bytes: Buffer.from(data.subarray(pos, pos + n)) })
      pos += n
    }
    this.mtime = Date.now()
    for (const { idx, within, bytes } of later) {
      this.place(idx, this.dirty.get(idx) ?? await this.chunkForWrite(idx), within, bytes)
    }
    // Only now: a commit that saw this version must also have seen these bytes.
    this.version++
    if (this.dirty.size > MAX_DIRTY) this.seal(Math.min(...this.dirty.keys()))
    while (this.sealing.size > MAX_SEALING) await Promise.race([...this.sealing.values()].map((s) => s.done))
    this.throwPending()
  }

  // Copies bytes into a chunk; a chunk written up to its end is sealed.
  private place (idx: number, chunk: Buffer, within: number, bytes: Buffer): void {
    bytes.copy(this.grow(idx, chunk, within + bytes.length), within)
    if (within + bytes.length === this.chunkSize) this.seal(idx)
  }

  async read (target: Buffer, length: number, offset: number, skipCache: boolean): Promise<number> {
    if (offset < this.chunkSize && this.fetchInline && !this.dirty.has(0) && !this.sealing.has(0)) await this.loadInline()
    const end = Math.min(this.size, offset + length)
    if (offset >= end) return 0
    const C = this.chunkSize
    for (let pos = offset; pos < end;) {
      const idx = Math.floor(pos / C)
      const within = pos - idx * C
      const n = Math.min(C - within, end - pos)
      const at = pos - offset
      const buf = this.dirty.get(idx) ?? this.sealing.get(idx)?.buf ?? (idx === 0 ? this.inline : undefined)
      const id = this.balls[idx]
      if (buf) {
        // A dirty buffer holds the chunk's first bytes only; the rest are zeros.
        const copied = within < buf.length ? buf.copy(target, at, within, within + n) : 0
        if (copied < n) target.fill(0, at + copied, at + n)
      } else if (id == null) {
        target.fill(0, at, at + n)
      } else {
        // Moving on to the next ball reads on sequentially: keep the fetches ahead of it going.
        if (!skipCache && (idx === this.lastBallRead + 1 || !this.store.isLocal(id))) this.readAhead(idx)
        this.lastBallRead = idx
        const data = await this.store.read(id, within, n, skipCache, target.subarray(at, at + n))
        const inPlace = data.buffer === target.buffer && data.byteOffset === target.byteOffset + at
        if (!inPlace) data.copy(target, at)
        if (data.length < n) target.fill(0, at + data.length, at + n)
      }
      pos += n
    }
    return end - offset
  }

  // Fetches the next balls that no bin of this agent holds (prefetch skips the others).
  private readAhead (idx: number): void {
    for (let j = idx + 1; j <= idx + READ_AHEAD_BALLS && j < this.balls.length; j++) {
      const next = this.balls[j]
      if (next != null) this.store.prefetch(next)
    }
  }

  async truncate (size: number): Promise<void> {
    this.throwPending()
    const C = this.chunkSize
    const keep = Math.ceil(size / C)
    for (const idx of [...this.dirty.keys(), ...this.sealing.keys()]) {
      if (idx >= keep) this.discard(idx)
    }
    this.balls.length = Math.min(this.balls.length, keep)
    if (keep === 0) {
      this.inline = undefined
      this.fetchInline = undefined
    }
    const cut = size % C
    if (size < this.size && cut !== 0) {
      // Bytes past the new end must read as zeros if the file grows again.
      const idx = keep - 1
      const chunk = this.dirty.get(idx) ?? await this.chunkForWrite(idx)
      chunk.fill(0, cut)
    }
    this.size = size
    this.mtime = Date.now()
    this.version++
  }

  /**
   * Seals every dirty chunk and waits for all seals; the state to commit. A
   * small file's first chunk is kept back and committed inline, unless the
   * file grew past the inline limit meanwhile.
   */
  async settle (): Promise<Snapshot> {
    let held = this.size <= this.inlineMax ? 0 : -1
    for (;;) {
      if (this.inline !== undefined || this.fetchInline !== undefined) {
        // Inline bytes of a file grown past the limit go into its first ball; a changed small file commits them again.
        if (held === -1) await this.chunkForWrite(0)
        else if (this.changed) await this.loadInline()
      }
      for (const idx of [...this.dirty.keys()]) if (idx !== held) this.seal(idx)
      while (this.sealing.size > 0) await Promise.all([...this.sealing.values()].map((s) => s.done))
      this.throwPending()
      if (held === -1 || this.size <= this.inlineMax) break
      held = -1
    }
    const inline = held === 0 ? this.takeInline() : undefined
    const pinned = this.pinned
    this.pinned = []
    return { size: this.size, balls: [...this.balls], chunkSize: this.chunkSize, mtime: this.mtime, pinned, unsynced: this.unsynced, inline }
  }

  // The bytes of a small file whose first chunk was written (or is inline
  // already), exactly `size` long; they replace its ball list. A file whose
  // ball nobody touched stays as it is.
  private takeInline (): Buffer | undefined {
    const source = this.dirty.get(0) ?? this.inline
    if (source === undefined || this.size === 0) return undefined
    const bytes = Buffer.alloc(this.size)
    source.copy(bytes, 0, 0, Math.min(source.length, this.size))
    if (this.dirty.delete(0)) this.latest.set(0, ++this.gen)
    this.inline = bytes
    this.balls = []
    return bytes
  }

  /** Gives up the balls still pinned (the last commit failed): the caller unpins them. */
  takePins (): string[] {
    const pinned = this.pinned
    this.pinned = []
    return pinned
  }

  /** Whether the file's current content (committed or not) uses the ball. */
  refersTo (id: string): boolean {
    return this.balls.includes(id)
  }

  /** After an fsync: the balls of that snapshot are on stable storage. */
  markSynced (snap: Snapshot): void {
    this.unsynced = this.unsynced.filter((id) => !snap.unsynced.includes(id))
  }

  /** Runs commits of this file one after another. */
  async serially<T>(fn: (version: number) => Promise<T>): Promise<T> {
    const run = this.commitChain.then(async () => await fn(this.version))
    this.commitChain = run.catch(() => {})
    return await run
  }

  markCommitted (version: number): void {
    this.committedVersion = version
  }

  // A dirty buffer for chunk idx made without waiting: a copy of the chunk
  // being sealed, or an empty one for a hole; undefined when the chunk's
  // ball must be read first. Buffers start small and grow, so small files
  // never take a whole chunk.
  private chunkAtHand (idx: number): Buffer | undefined {
    const sealing = this.sealing.get(idx)
    if (sealing) return this.setDirty(idx, Buffer.from(sealing.buf))
    if (idx === 0 && this.fetchInline !== undefined) return undefined
    if (idx === 0 && this.inline !== undefined) {
      const copy = Buffer.from(this.inline)
      this.inline = undefined
      return this.setDirty(0, copy)
    }
    if (this.balls[idx] == null) return this.setDirty(idx, Buffer.alloc(0))
    return undefined
  }

  // The dirty buffer for chunk idx, holding the chunk's current content.
  private async chunkForWrite (idx: number): Promise<Buffer> {
    if (idx === 0 && this.fetchInline !== undefined) {
      await this.loadInline()
      // A write may have made the chunk meanwhile.
      const made = this.dirty.get(0)
      if (made) return made
    }
    const atHand = this.chunkAtHand(idx)
    if (atHand) return atHand
    const id = this.balls[idx] as string
    let pending = this.loading.get(idx)
    if (!pending) {
      // A copy: the store may share the bytes it returns with other readers.
      pending = this.store.read(id, 0, this.chunkSize, false).then((data) => Buffer.from(data))
        .finally(() => this.loading.delete(idx))
      this.loading.set(idx, pending)
    }
    const buf = await pending
    return this.dirty.get(idx) ?? this.setDirty(idx, buf)
  }

  // Fetches the bytes of a file kept inline, once however many want them.
  private async loadInline (): Promise<void> {
    const fetch = this.fetchInline
    if (!fetch) return
    this.fetchingInline ??= fetch().then((bytes) => {
      // Unless a truncation to zero made them moot meanwhile.
      if (this.fetchInline !== fetch) return
      this.inline = bytes
      this.fetchInline = undefined
    }).finally(() => { this.fetchingInline = undefined })
    await this.fetchingInline
  }

  private grow (idx: number, buf: Buffer, need: number): Buffer {
    if (buf.length >= need) return buf
    // From the pages written (a small file takes 4 KiB, not more: fresh memory
    // costs page faults), doubling up to 128 KiB; past that (a large file)
    // straight to a whole chunk.
    const C = this.chunkSize
    const size = need > SMALL_CHUNK ? C : Math.min(C, Math.max(Math.ceil(need / PAGE) * PAGE, 2 * buf.length))
    const bigger = size === C ? wholeChunk(C) : Buffer.alloc(size)
    buf.copy(bigger)
    this.dirty.set(idx, bigger)
    return bigger
  }


  private setDirty (idx: number, buf: Buffer): Buffer {
    this.dirty.set(idx, buf)
    this.latest.set(idx, ++this.gen)
    return buf
  }

  private discard (idx: number): void {
    this.dirty.delete(idx)
    this.sealing.delete(idx)
    this.latest.set(idx, ++this.gen)
  }

  // Turns a dirty chunk into a ball in the background. An all-zero chunk
  // becomes a hole and takes no space.
  private seal (idx: number): void {
    const buf = this.dirty.get(idx)
    if (!buf) return
    this.dirty.delete(idx)
    const gen = ++this.gen
    this.latest.set(idx, gen)
    const length = Math.max(0, Math.min(this.chunkSize, this.size - idx * this.chunkSize))
    const data = buf.length >= length ? buf.subarray(0, length) : Buffer.concat([buf, Buffer.alloc(length - buf.length)])
    let stored = false
    const done = (async () => {
      const id = length === 0 || isZero(data) ? null : await this.store.put(data)
      stored = true
      if (id !== null) {
        this.pinned.push(id)
        this.unsynced.push(id)
      }
      if (this.latest.get(idx) !== gen) return
      while (this.balls.length <= idx) this.balls.push(null)
      this.balls[idx] = id
    })().catch((err) => {
      // Keep the bytes so a later flush can try again (e.g. once space is freed).
      if (this.latest.get(idx) === gen && !this.dirty.has(idx)) this.setDirty(idx, buf)
      this.error ??= err
    }).finally(() => {
      if (this.sealing.get(idx)?.gen === gen) this.sealing.delete(idx)
      // Nothing reads the buffer any more: readers copy from it synchronously,
      // and the store (its hash worker too) is done with it once put settled.
      if (stored && buf.length === this.chunkSize) recycle(buf)
    })
    this.sealing.set(idx, { gen, buf, done })
  }

  private throwPending (): void {
    const err = this.error
    if (err === undefined) return
    this.error = undefined
    throw err instanceof ChaacError ? err : new ChaacError('CHAAC_IO', 'could not store file data', { cause: err })
  }
}

const SMALL_CHUNK = 128 * 1024
const PAGE = 4096

// Whole-chunk buffers are reused: a new 4 MiB buffer per chunk keeps the
// garbage collector busy on large writes. They are on shared memory, so that
// a hash worker (store/hasher.ts) reads a sealed chunk without a copy.
const spareChunks: Buffer[] = []
const MAX_SPARE_CHUNKS = 8

function wholeChunk (size: number): Buffer {
  const spare = spareChunks.pop()
  if (spare === undefined || spare.length !== size) return Buffer.from(new SharedArrayBuffer(size))
  // On shared memory fill(0) is ten times slower than copying zeros in.
  for (let pos = 0; pos < size; pos += ZEROS.length) ZEROS.copy(spare, pos)
  return spare
}

function recycle (buf: Buffer): void {
  if (spareChunks.length < MAX_SPARE_CHUNKS) spareChunks.push(buf)
}

const ZEROS = Buffer.alloc(64 * 1024)
function isZero (data: Buffer): boolean {
  for (let pos = 0; pos < data.length; pos += ZEROS.length) {
    const part = data.subarray(pos, pos + ZEROS.length)
    if (!part.equals(ZEROS.subarray(0, part.length))) return false
  }
  return true
}
