// The content of one regular file while handles have it open: the committed
// chunks (a base ball each, with slices laid over it) plus dirty chunks not
// yet sealed. Writes land in chunk buffers at once, without reading what the
// chunk held: a dirty chunk knows which ranges were written. flush, fsync and
// close seal the dirty chunks and commit the new chunk list in one batch. A
// chunk's small overwrite is sealed as slices (balls of only the bytes
// written), so an 8 KiB write and fsync stores 8 KiB; a chunk written at
// large, or one that gathered many slices, is sealed whole again (its old
// content read back once). Readers on this host see the writes at once; other
// hosts see them at the next commit (close-to-open consistency). A file no
// larger than the inline limit is committed as its bytes instead of balls:
// one metadata batch, no ball file, which is what makes small files cheap.
import { ChaacError, isChaacError } from '../errors.ts'
import type { Inode } from '../meta/schema.ts'
import { MAX_POOLED_SLICE, pieces, type Slice } from '../meta/slices.ts'
import { encodeBall } from '../store/ball-codec.ts'
import type { Balls } from '../balls/balls.ts'
import { Ranges } from './ranges.ts'

/** Dirty chunks kept before the oldest is sealed, and seals in flight per file. */
const MAX_DIRTY = 8
const MAX_SEALING = 2
// Balls fetched ahead of a sequential reader, or of one that missed the local cache.
const READ_AHEAD_BALLS = 4
/** Slices of a chunk that start merging it into a whole ball in the background. */
export const COMPACT_AT = 192
/** Slices a chunk may gather at most: past them its next seal merges it (each slice costs a read). */
export const MAX_SLICES = 256
// A chunk this short is sealed whole: slices would save next to nothing.
const SMALL_WHOLE = 64 * 1024
// Written ranges of a chunk whose bytes are all at hand are merged across gaps this small.
const SLICE_GAP = 4096

// One chunk's bytes in memory. When `loaded`, `buf` holds the chunk's whole
// content from its first byte (zeros past its end); otherwise only the bytes
// in `ranges` are there (the rest is the stored content), and `buf` starts at
// the first page written, so that a small write into a large chunk takes a
// few pages, not a whole chunk.
interface Chunk {
  buf: Buffer
  /** The chunk offset of buf[0]: 0 when loaded. */
  origin: number
  loaded: boolean
  /** Bytes written since the chunk was last sealed. */
  ranges: Ranges
  /** Must be sealed whole (cut by a truncate, or grown out of inline bytes). */
  whole: boolean
  loading?: Promise<void>
  /** Reads waiting on the store that will copy from `buf` afterwards: it is not reused meanwhile. */
  readers: number
}

interface Sealing { gen: number, chunk: Chunk, done: Promise<void> }

export interface Snapshot {
  size: number
  balls: Array<string | null>
  /** Slices over each chunk's ball, by chunk index. */
  slices: Array<Slice[] | null>
  chunkSize: number
  mtime?: number
  /** Balls written for this snapshot that the writer holds pinned. */
  pinned: string[]
  /** Balls written since the last fsync. */
  unsynced: string[]
  /** The file's bytes when it is kept inline (then `balls` is empty). */
  inline?: Buffer
  /** The bytes of the pooled slices sealed since the last commit. */
  pooled: Array<{ id: string, data: Buffer }>
}

export interface OpenFileOptions {
  chunkSize: number
  store: Balls
  /** Files up to this size are committed inline. */
  inlineMax: number
  /** The bytes of a file kept inline. */
  fetchInline?: () => Promise<Buffer>
  /** The bytes of a slice kept in the data pool. */
  readPooled: (id: string) => Promise<Buffer>
}

export class OpenFile {
  handles = 0
  /** The last handle is being released: what it did not commit is not the file's. */
  closing = false
  /** The stored version this state was loaded from or committed as (the file system's stamp of it). */
  base = ''
  size: number
  mtime: number
  readonly chunkSize: number
  private balls: Array<string | null>
  private slices: Array<Slice[] | null>
  // How often `balls` and `slices` name each ball: worked out when first
  // asked after a reload, then kept up by every change of a chunk (asked
  // for every ball a commit lets go, of every open file).
  private refs?: Map<string, number>
  // The bytes of a file kept inline (chunk 0): fetched from the data pool
  // when first needed (an open served from the kernel's cache needs none),
  // until a write copies them into a dirty chunk.
  private inline?: Buffer
  private fetchInline?: () => Promise<Buffer>
  private fetchingInline?: Promise<void>
  private readonly dirty = new Map<number, Chunk>()
  private readonly sealing = new Map<number, Sealing>()
  // Chunks being merged into a whole ball in the background.
  private readonly compacting = new Map<number, Promise<void>>()
  // The newest generation of each chunk: an older seal finishing late is ignored.
  private readonly latest = new Map<number, number>()
  private gen = 0
  // The ball the last read from the store touched, to tell a sequential reader.
  private lastBallRead = -2
  private pinned: string[] = []
  private unsynced: string[] = []
  // Pooled slices sealed and not yet committed: their bytes go with the commit.
  private readonly pooled = new Map<string, { data: Buffer, chunks: Set<number> }>()
  private readonly store: Balls
  private readonly inlineMax: number
  private readonly readPooled: (id: string) => Promise<Buffer>
  private error: unknown
  /** Bumped by every change of the bytes a reader sees (write, truncate, reload): a read plan of an older epoch is stale. */
  epoch = 0
  /** Bumped by every change; a commit clears `changed` only if nothing came after it. */
  private version = 0
  private committedVersion = 0
  private commitChain: Promise<unknown> = Promise.resolve()

  constructor (readonly ino: number, node: Inode, opts: OpenFileOptions) {
    this.size = node.size
    this.mtime = node.mtime
    this.balls = [...(node.balls ?? [])]
    this.slices = [...(node.slices ?? [])]
    this.refs = undefined
    this.chunkSize = node.chunkSize ?? opts.chunkSize
    this.store = opts.store
    this.inlineMax = opts.inlineMax
    this.fetchInline = opts.fetchInline
    this.readPooled = opts.readPooled
  }

  /** Takes the stored version `node` (committed elsewhere) as this file's content; only when not busy. */
  reload (node: Inode, fetchInline?: () => Promise<Buffer>): void {
    this.size = node.size
    this.mtime = node.mtime
    this.balls = [...(node.balls ?? [])]
    this.slices = [...(node.slices ?? [])]
    this.refs = undefined
    this.inline = undefined
    this.fetchInline = fetchInline
    this.lastBallRead = -2
    this.epoch++
  }

  get changed (): boolean {
    return this.version !== this.committedVersion
  }

  get busy (): boolean {
    return this.dirty.size > 0 || this.sealing.size > 0 || this.changed
  }

  /**
   * Writes `data` at `offset`. `data` may be the kernel's buffer, lent only
   * for this call: every byte is copied into chunk buffers before the first await.
   */
  async write (data: Buffer, offset: number): Promise<void> {
    this.throwPending()
    this.epoch++
    const C = this.chunkSize
    for (let pos = 0; pos < data.length;) {
      const abs = offset + pos
      const idx = Math.floor(abs / C)
      const within = abs - idx * C
      const n = Math.min(C - within, data.length - pos)
      // The size first: sealing a chunk cuts the ball at the file's size.
      if (abs + n > this.size) this.size = abs + n
      this.place(idx, this.dirtyChunk(idx), within, data.subarray(pos, pos + n))
      pos += n
    }
    this.mtime = Date.now()
    this.version++
    if (this.dirty.size > MAX_DIRTY) this.seal(Math.min(...this.dirty.keys()))
    while (this.sealing.size > MAX_SEALING) await Promise.race([...this.sealing.values()].map((s) => s.done))
    this.throwPending()
  }

  // Copies bytes into a chunk; a chunk a writer filled up to its end is sealed.
  private place (idx: number, chunk: Chunk, within: number, bytes: Buffer): void {
    const end = within + bytes.length
    const at = this.grow(chunk, within, end)
    bytes.copy(chunk.buf, at)
    chunk.ranges.add(within, end)
    if (chunk.ranges.size === 1 && chunk.ranges.bytes === this.chunkSize) chunk.loaded = true
    if (end === this.chunkSize && chunk.loaded && 2 * chunk.ranges.bytes >= this.chunkSize) this.seal(idx)
  }

  async read (target: Buffer, length: number, offset: number, skipCache: boolean): Promise<number> {
    const end = Math.min(this.size, offset + length)
    if (offset >= end) return 0
    const C = this.chunkSize
    for (let pos = offset; pos < end;) {
      const idx = Math.floor(pos / C)
      const within = pos - idx * C
      const n = Math.min(C - within, end - pos)
      const into = target.subarray(pos - offset, pos - offset + n)
      const chunk = this.dirty.get(idx) ?? this.sealing.get(idx)?.chunk
      if (chunk?.loaded === true) {
        copyOut(chunk.buf, within, into)
      } else if (chunk) {
        chunk.readers++
        try {
          await this.readStored(idx, within, into, skipCache)
        } finally {
          chunk.readers--
        }
        // Bytes written but not sealed when the read began are newer than the stored ones.
        for (const r of chunk.ranges.upTo(within + n)) {
          const from = Math.max(r.start, within)
          if (r.end > from) chunk.buf.copy(into, from - within, from - chunk.origin, r.end - chunk.origin)
        }
      } else {
        await this.readStored(idx, within, into, skipCache)
      }
      pos += n
    }
    return end - offset
  }

  /**
   * The bytes of a read that falls within one chunk stored as one ball (no
   * slices, nothing written since), as the reader gives them: a view of a
   * ball fetched a moment ago rather than a copy of it. Undefined where the
   * read needs more (read then does it). The bytes must not be changed.
   */
  async readView (length: number, offset: number, skipCache: boolean): Promise<Buffer | undefined> {
    const end = Math.min(this.size, offset + length)
    const C = this.chunkSize
    const idx = Math.floor(offset / C)
    const base = this.balls[idx] ?? null
    if (offset >= end || Math.floor((end - 1) / C) !== idx || base === null || (this.slices[idx] ?? []).length > 0 ||
      this.dirty.has(idx) || this.sealing.has(idx) || (idx === 0 && (this.inline !== undefined || this.fetchInline !== undefined))) return undefined
    this.readingOn(idx, base, skipCache)
    let data: Buffer
    try {
      data = await this.store.read(base, offset - idx * C, end - offset, skipCache)
    } catch (err) {
      // A seal that replaced the chunk meanwhile may have let its ball go: read reads the new one.
      if (isChaacError(err, 'CHAAC_BALL_MISSING') && (this.balls[idx] !== base || (this.slices[idx] ?? []).length > 0)) return undefined
      throw err
    }
    // A ball shorter than its chunk's part of the file (the file grew over a hole) reads as zeros past its end.
    return data.length === end - offset ? data : undefined
  }

  // The stored content of [within, within + into.length) of chunk idx: its
  // ball (or the inline bytes) with its slices over it.
  private async readStored (idx: number, within: number, into: Buffer, skipCache: boolean): Promise<void> {
    if (idx === 0 && (this.inline !== undefined || this.fetchInline !== undefined)) {
      await this.loadInline()
      if (this.inline !== undefined) copyOut(this.inline, within, into)
      else into.fill(0)
      return
    }
    for (let tries = 0; ; tries++) {
      const base = this.balls[idx] ?? null
      const list = this.slices[idx] ?? []
      try {
        const parts = pieces(list, within, within + into.length)
        // The ball under many slices is read in one go and the slices copied
        // over it: its blocks are checked once, not once for every gap
        // between slices (a merge of 192 slices read the ball five times over).
        const once = base !== null && parts.filter((p) => p.slice < 0).length > 1
        if (once) await this.readBase(idx, base, within, into, skipCache)
        await Promise.all(parts.map(async (p) => {
          const part = into.subarray(p.from - within, p.to - within)
          if (p.slice >= 0) {
            const s = list[p.slice]
            if (s.pooled === true) (await this.pooledBytes(s.ball)).copy(part, 0, p.from - s.at)
            else await this.readBall(s.ball, p.from - s.at, part, true)
          } else if (base === null) {
            part.fill(0)
          } else if (!once) {
            await this.readBase(idx, base, p.from, part, skipCache)
          }
        }))
        return
      } catch (err) {
        // A seal that replaced the chunk meanwhile may have let its old balls go: read the new ones.
        const moved = this.balls[idx] !== base || (this.slices[idx] ?? []) !== list
        if (tries > 0 || !moved || !isChaacError(err, 'CHAAC_BALL_MISSING')) throw err
      }
    }
  }

  private async readBase (idx: number, base: string, offset: number, into: Buffer, skipCache: boolean): Promise<void> {
    this.readingOn(idx, base, skipCache)
    await this.readBall(base, offset, into, skipCache)
  }

  // Moving on to the next ball reads on sequentially: keep the fetches ahead of it going.
  private readingOn (idx: number, base: string, skipCache: boolean): void {
    if (!skipCache && (idx === this.lastBallRead + 1 || !this.store.isLocal(base))) this.readAhead(idx)
    this.lastBallRead = idx
  }

  private async readBall (id: string, offset: number, into: Buffer, skipCache: boolean): Promise<void> {
    const data = await this.store.read(id, offset, into.length, skipCache, into)
    const inPlace = data.buffer === into.buffer && data.byteOffset === into.byteOffset
    if (!inPlace) data.copy(into)
    if (data.length < into.length) into.fill(0, data.length)
  }

  // The checked bytes of a pooled slice: at hand until committed, then from the data pool.
  private async pooledBytes (id: string): Promise<Buffer> {
    const held = this.pooled.get(id)
    if (held) return held.data
    const data = await this.readPooled(id)
    if (encodeBall(data).id !== id) throw new ChaacError('CHAAC_BALL_CORRUPT', `ball ${id}: the data pool's bytes of a slice fail their hash`)
    return data
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
    this.epoch++
    const C = this.chunkSize
    const keep = Math.ceil(size / C)
    for (const idx of [...this.dirty.keys(), ...this.sealing.keys()]) {
      if (idx >= keep) this.discard(idx)
    }
    this.balls.length = Math.min(this.balls.length, keep)
    this.slices.length = Math.min(this.slices.length, keep)
    this.refs = undefined
    if (keep === 0) {
      this.inline = undefined
      this.fetchInline = undefined
    }
    const cut = size % C
    if (size < this.size && cut !== 0) {
      // Bytes past the new end must read as zeros if the file grows again:
      // the chunk is sealed whole, cut at the new size, and its slices go.
      const chunk = await this.loadedChunk(keep - 1)
      if (chunk.buf.length > cut) chunk.buf.fill(0, cut)
      chunk.whole = true
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
        if (held === -1) this.dirtyChunk(0).whole = true
        else if (this.changed) await this.loadInline()
      }
      for (const idx of [...this.dirty.keys()]) if (idx !== held) this.seal(idx)
      while (this.sealing.size > 0) await Promise.all([...this.sealing.values()].map((s) => s.done))
      this.throwPending()
      if (held === -1 || this.size <= this.inlineMax) break
      held = -1
    }
    const inline = held === 0 ? await this.takeInline() : undefined
    const pinned = this.pinned
    this.pinned = []
    // Bytes of slices no longer named (covered by newer ones, or merged) are of no use; a read that
    // still wanted them finds the chunk's list moved and reads again.
    for (const [id, held] of this.pooled) {
      if (![...held.chunks].some((idx) => this.slices[idx]?.some((s) => s.ball === id) === true)) this.pooled.delete(id)
    }
    return {
      pooled: [...this.pooled].map(([id, held]) => ({ id, data: held.data })),
      size: this.size,
      balls: [...this.balls],
      // Lists are never changed in place: the commit tells an unchanged chunk by its list.
      slices: Array.from(this.slices, (list) => list ?? null),
      chunkSize: this.chunkSize,
      mtime: this.mtime,
      pinned,
      unsynced: this.unsynced,
      inline
    }
  }

  // The bytes of a small file whose first chunk was written (or is inline
  // already), exactly `size` long; they replace its ball list. A file whose
  // ball nobody touched stays as it is.
  private async takeInline (): Promise<Buffer | undefined> {
    if (this.size === 0) return undefined
    if (!this.dirty.has(0) && this.inline === undefined) return undefined
    const source = this.dirty.has(0) ? (await this.loadedChunk(0)).buf : this.inline as Buffer
    const bytes = Buffer.alloc(this.size)
    source.copy(bytes, 0, 0, Math.min(source.length, this.size))
    if (this.dirty.delete(0)) this.latest.set(0, ++this.gen)
    this.inline = bytes
    this.balls = []
    this.slices = []
    this.refs = undefined
    return bytes
  }

  /** Gives up the balls still pinned (the last commit failed): the caller unpins them. */
  takePins (): string[] {
    const pinned = this.pinned
    this.pinned = []
    return pinned
  }

  /**
   * The chunks whose bytes are exactly one ball's, when the whole content is
   * stored and simple: nothing pending, not inline, no slices anywhere.
   * Holes are left out (their reads stay on the JS path); undefined otherwise.
   */
  plainBalls (): Array<{ index: number, ball: string, length: number }> | undefined {
    if (this.busy || this.closing || this.compacting.size > 0 || this.inline !== undefined || this.fetchInline !== undefined) return undefined
    if (this.slices.some((list) => list !== null && list.length > 0)) return undefined
    const out: Array<{ index: number, ball: string, length: number }> = []
    const chunks = Math.ceil(this.size / this.chunkSize)
    for (let i = 0; i < Math.min(chunks, this.balls.length); i++) {
      const ball = this.balls[i]
      if (ball != null) out.push({ index: i, ball, length: Math.min(this.chunkSize, this.size - i * this.chunkSize) })
    }
    return out
  }

  /** Whether the file's current content (committed or not) uses the ball. */
  refersTo (id: string): boolean {
    // Asked for every ball a commit lets go, of every open file: once per change, not per question.
    if (this.refs === undefined) {
      this.refs = new Map()
      for (let idx = 0; idx < Math.max(this.balls.length, this.slices.length); idx++) this.count(idx, 1)
    }
    return this.refs.has(id)
  }

  // Adds (or takes away) the references of chunk `idx` to the counts.
  private count (idx: number, by: 1 | -1): void {
    const ball = this.balls[idx]
    if (ball != null) this.recount([{ ball }], by)
    this.recount(this.slices[idx] ?? [], by)
  }

  private recount (named: Array<{ ball: string }>, by: 1 | -1): void {
    const refs = this.refs
    if (refs === undefined) return
    for (const { ball } of named) {
      const n = (refs.get(ball) ?? 0) + by
      if (n > 0) refs.set(ball, n)
      else refs.delete(ball)
    }
  }

  // Gives chunk `idx` a new ball and slice list, keeping the counts up.
  private setChunk (idx: number, ball: string | null, list: Slice[] | null): void {
    this.count(idx, -1)
    while (this.balls.length <= idx) this.balls.push(null)
    this.balls[idx] = ball
    if (list !== null || this.slices[idx] != null) {
      while (this.slices.length <= idx) this.slices.push(null)
      this.slices[idx] = list
    }
    this.count(idx, 1)
  }

  /** After a commit: the data pool holds the pooled slices of that snapshot. */
  markPooled (snap: Snapshot): void {
    for (const { id, data } of snap.pooled) if (this.pooled.get(id)?.data === data) this.pooled.delete(id)
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

  // The dirty chunk idx, made without waiting: a copy of the chunk being
  // sealed (its writes with it, as that seal no longer counts), an empty
  // loaded one for a hole, or an empty one that knows only what is written
  // into it from now on. Buffers start small and grow, so small files never
  // take a whole chunk.
  private dirtyChunk (idx: number): Chunk {
    const had = this.dirty.get(idx)
    if (had) return had
    const sealing = this.sealing.get(idx)?.chunk
    if (sealing) {
      const copy = { buf: Buffer.from(sealing.buf), origin: sealing.origin, loaded: sealing.loaded, ranges: sealing.ranges.copy(), whole: sealing.whole, readers: 0 }
      return this.setDirty(idx, copy)
    }
    const inlineBase = idx === 0 && (this.inline !== undefined || this.fetchInline !== undefined)
    if (inlineBase && this.inline !== undefined) {
      const buf = Buffer.from(this.inline)
      this.inline = undefined
      // Its stored content is the inline bytes, which slices cannot lie over: sealed whole (or kept inline).
      return this.setDirty(0, { buf, origin: 0, loaded: true, ranges: new Ranges(), whole: true, readers: 0 })
    }
    const hole = !inlineBase && (this.balls[idx] ?? null) === null && (this.slices[idx]?.length ?? 0) === 0
    return this.setDirty(idx, { buf: Buffer.alloc(0), origin: 0, loaded: hole, ranges: new Ranges(), whole: false, readers: 0 })
  }

  // The dirty chunk idx with all of its content at hand.
  private async loadedChunk (idx: number): Promise<Chunk> {
    for (;;) {
      const chunk = this.dirtyChunk(idx)
      if (chunk.loaded) return chunk
      await this.load(idx, chunk)
    }
  }

  // Reads the stored content of a chunk under the bytes written into it, once however many want it.
  private async load (idx: number, chunk: Chunk): Promise<void> {
    chunk.loading ??= (async () => {
      const buf = wholeChunk(this.chunkSize)
      await this.readStored(idx, 0, buf, false)
      // Writes may have come meanwhile: the chunk's own bytes win.
      for (const r of chunk.ranges.upTo(this.chunkSize)) chunk.buf.copy(buf, r.start, r.start - chunk.origin, r.end - chunk.origin)
      chunk.buf = buf
      chunk.origin = 0
      chunk.loaded = true
    })().finally(() => { chunk.loading = undefined })
    await chunk.loading
  }

  // Fetches the bytes of a file kept inline, once however many want them.
  private async loadInline (): Promise<void> {
    // Again when a truncation or a reload put other bytes in place meanwhile.
    for (let fetch = this.fetchInline; fetch !== undefined; fetch = this.fetchInline) {
      const mine = fetch
      this.fetchingInline ??= mine().then((bytes) => {
        if (this.fetchInline !== mine) return
        this.inline = bytes
        this.fetchInline = undefined
      }).finally(() => { this.fetchingInline = undefined })
      await this.fetchingInline
    }
  }

  // Makes the chunk's buffer hold [start, end); returns where `start` is in it.
  private grow (chunk: Chunk, start: number, end: number): number {
    const have = chunk.buf.length
    if (start >= chunk.origin && end <= chunk.origin + have) return start - chunk.origin
    // From the pages written (a small file takes 4 KiB, not more: fresh memory
    // costs page faults), doubling up to 128 KiB; past that (a large file)
    // straight to a whole chunk.
    const C = this.chunkSize
    const origin = chunk.loaded ? 0 : Math.min(have === 0 ? C : chunk.origin, start - start % PAGE)
    const need = Math.max(end, chunk.origin + have) - origin
    const size = origin === 0 && need > SMALL_CHUNK ? C : Math.min(C - origin, Math.max(Math.ceil(need / PAGE) * PAGE, 2 * have))
    // Only the ranges written count in a chunk not loaded: its other bytes need no zeros.
    const bigger = size === C ? wholeChunk(C, chunk.loaded) : chunk.loaded ? Buffer.alloc(size) : Buffer.allocUnsafe(size)
    if (have > 0) chunk.buf.copy(bigger, chunk.origin - origin)
    chunk.buf = bigger
    chunk.origin = origin
    return start - origin
  }

  private setDirty (idx: number, chunk: Chunk): Chunk {
    this.dirty.set(idx, chunk)
    this.latest.set(idx, ++this.gen)
    return chunk
  }

  private discard (idx: number): void {
    this.dirty.delete(idx)
    this.sealing.delete(idx)
    this.latest.set(idx, ++this.gen)
  }

  // How a dirty chunk of `length` bytes is sealed: as slices of the ranges
  // written, or whole (undefined) when that is cheaper to keep and to read.
  private sliceRanges (idx: number, chunk: Chunk, length: number): Array<{ start: number, end: number }> | undefined {
    if (chunk.whole || length <= SMALL_WHOLE) return undefined
    if (idx === 0 && (this.inline !== undefined || this.fetchInline !== undefined)) return undefined
    // With the whole chunk at hand, the bytes between two close ranges are known: one slice for both.
    const ranges = (chunk.loaded ? chunk.ranges.coalesced(SLICE_GAP) : chunk.ranges).upTo(length)
    const bytes = ranges.reduce((sum, r) => sum + r.end - r.start, 0)
    const list = this.slices[idx] ?? []
    const sliced = list.reduce((sum, s) => sum + s.len, 0)
    if (4 * bytes >= length || list.length + ranges.length > MAX_SLICES || 2 * (sliced + bytes) >= length) return undefined
    return ranges
  }

  // Turns a dirty chunk into balls in the background: slices of what was
  // written, or a whole ball (an all-zero chunk becomes a hole and takes no space).
  private seal (idx: number): void {
    const chunk = this.dirty.get(idx)
    if (!chunk) return
    this.dirty.delete(idx)
    const gen = ++this.gen
    this.latest.set(idx, gen)
    const length = Math.max(0, Math.min(this.chunkSize, this.size - idx * this.chunkSize))
    const ranges = this.sliceRanges(idx, chunk, length)
    let stored = false
    const done = (async () => {
      if (ranges) {
        // A buffer smaller than a chunk is never reused nor written again once
        // sealed (a write meanwhile copies it): its slices may keep it rather
        // than a copy each, when they are most of it.
        const bytes = ranges.reduce((sum, r) => sum + r.end - r.start, 0)
        const lend = chunk.buf.length < this.chunkSize && 2 * bytes >= chunk.buf.length
        const made = await Promise.all(ranges.map(async (r) => await this.putSlice(idx, chunk.buf.subarray(r.start - chunk.origin, r.end - chunk.origin), r.start, lend)))
        stored = true
        if (this.latest.get(idx) !== gen) return
        // No other seal of the chunk ended meanwhile (the generation says so); a merge may have.
        const { list, gone } = this.overlay(idx, made)
        this.slices[idx] = list
        this.recount(gone, -1)
        this.recount(made, 1)
        if (list.length >= COMPACT_AT) this.compact(idx)
        return
      }
      if (!chunk.loaded) await this.load(idx, chunk)
      const data = chunk.buf.length >= length ? chunk.buf.subarray(0, length) : Buffer.concat([chunk.buf, Buffer.alloc(length - chunk.buf.length)])
      const id = length === 0 || isZero(data) ? null : await this.put(data)
      stored = true
      if (this.latest.get(idx) !== gen) return
      this.setChunk(idx, id, null)
      // A file that grew out of its inline bytes: they are in the ball now, and no longer the chunk's content.
      if (idx === 0) {
        this.inline = undefined
        this.fetchInline = undefined
      }
    })().catch((err) => {
      // Keep the bytes so a later flush can try again (e.g. once space is freed).
      if (this.latest.get(idx) === gen && !this.dirty.has(idx)) this.setDirty(idx, chunk)
      this.error ??= err
    }).finally(() => {
      if (this.sealing.get(idx)?.gen === gen) this.sealing.delete(idx)
      // Nothing reads the buffer any more: readers copy from it synchronously,
      // and the store (its hash worker too) is done with it once put settled.
      if (stored && chunk.readers === 0 && chunk.buf.length === this.chunkSize) recycle(chunk.buf)
    })
    this.sealing.set(idx, { gen, chunk, done })
  }

  // The chunk's slices with new ones over them. An older slice wholly under a
  // new one holds no byte a read can see: it goes, so that a page written
  // again and again (a database's log) stays one slice. Not while a merge of
  // the chunk runs: its list must stay as the merge took it.
  private overlay (idx: number, made: Slice[]): { list: Slice[], gone: Slice[] } {
    const list = this.slices[idx] ?? []
    if (this.compacting.has(idx)) return { list: [...list, ...made], gone: [] }
    const kept: Slice[] = []
    const gone: Slice[] = []
    for (const s of list) (made.some((m) => m.at <= s.at && s.at + s.len <= m.at + m.len) ? gone : kept).push(s)
    return { list: [...kept, ...made], gone }
  }

  // Merges a chunk's ball and slices into one ball in the background, so that
  // reads need not put it together from many pieces. The chunk list takes the
  // new ball (and keeps the slices that came meanwhile) at the next commit,
  // unless a seal replaced the chunk first. A failure leaves the slices as
  // they are: the next seal of the chunk tries again.
  private compact (idx: number): void {
    if (this.compacting.has(idx)) return
    const base = this.balls[idx] ?? null
    const list = this.slices[idx] ?? []
    const length = Math.max(0, Math.min(this.chunkSize, this.size - idx * this.chunkSize))
    const buf = wholeChunk(this.chunkSize)
    const job = (async () => {
      const data = buf.subarray(0, length)
      await this.readStored(idx, 0, data, false)
      if (isZero(data)) return this.install(idx, base, list, null)
      // The store pins the ball; the pin goes to the next commit only once the
      // ball is in the chunk list (or not wanted), so no commit lets it go before.
      const id = await this.store.put(data)
      let synced = true
      try {
        // On stable storage here, in the background, rather than in the fsync that commits it.
        await this.store.sync([id])
      } catch {
        synced = false
      }
      this.install(idx, base, list, id)
      this.pinned.push(id)
      if (!synced) this.unsynced.push(id)
    })().catch(() => {}).finally(() => {
      this.compacting.delete(idx)
      recycle(buf)
    })
    this.compacting.set(idx, job)
  }

  // A merged ball replaces the chunk's ball and the slices it was made from,
  // unless a seal replaced the chunk meanwhile; slices that came since stay over it.
  private install (idx: number, base: string | null, list: Slice[], id: string | null): void {
    const now = this.slices[idx] ?? []
    if ((this.balls[idx] ?? null) !== base || now.length < list.length || list.some((s, i) => now[i] !== s)) return
    this.setChunk(idx, id, now.length > list.length ? now.slice(list.length) : null)
    // The same bytes in fewer pieces: a change the next commit records.
    this.version++
  }

  /** Waits for the merges in the background (before the last handle lets go of the file). */
  async drain (): Promise<void> {
    while (this.compacting.size > 0) await Promise.all(this.compacting.values())
  }

  // A small slice stays in memory until the commit takes it to the data pool
  // (one write makes it and the chunk list durable); a larger one is a ball in bins.
  // `kept`: the bytes are the slice's for good (else they are copied).
  private async putSlice (idx: number, bytes: Buffer, at: number, kept: boolean): Promise<Slice> {
    if (bytes.length > MAX_POOLED_SLICE) return { at, len: bytes.length, ball: await this.put(bytes) }
    const data = kept ? bytes : Buffer.from(bytes)
    const { id } = encodeBall(data)
    // The same bytes may be a slice of several chunks.
    const held = this.pooled.get(id)
    if (held) held.chunks.add(idx)
    else this.pooled.set(id, { data, chunks: new Set([idx]) })
    return { at, len: data.length, ball: id, pooled: true }
  }

  // Stores a ball pinned until its commit; it must reach stable storage at the next fsync.
  private async put (data: Buffer): Promise<string> {
    const id = await this.store.put(data)
    this.pinned.push(id)
    this.unsynced.push(id)
    return id
  }

  private throwPending (): void {
    const err = this.error
    if (err === undefined) return
    this.error = undefined
    throw err instanceof ChaacError ? err : new ChaacError('CHAAC_IO', 'could not store file data', { cause: err })
  }
}

// Copies [within, within + into.length) of a chunk's bytes; past them, zeros.
function copyOut (buf: Buffer, within: number, into: Buffer): void {
  const copied = within < buf.length ? buf.copy(into, 0, within, within + into.length) : 0
  if (copied < into.length) into.fill(0, copied)
}

const SMALL_CHUNK = 128 * 1024
const PAGE = 4096

// Whole-chunk buffers are reused: a new 4 MiB buffer per chunk keeps the
// garbage collector busy on large writes. They are on shared memory, so that
// a hash worker (store/hasher.ts) reads a sealed chunk without a copy.
const spareChunks: Buffer[] = []
const MAX_SPARE_CHUNKS = 8

function wholeChunk (size: number, zeroed = true): Buffer {
  const spare = spareChunks.pop()
  if (spare === undefined || spare.length !== size) return Buffer.from(new SharedArrayBuffer(size))
  // On shared memory fill(0) is ten times slower than copying zeros in.
  if (zeroed) for (let pos = 0; pos < size; pos += ZEROS.length) ZEROS.copy(spare, pos)
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
