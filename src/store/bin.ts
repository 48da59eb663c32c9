// A bin: one directory of ball files with a hard capacity, on a level
// (`mem`: tmpfs, `disk`). Balls are immutable, so open descriptors are cached
// and any copy can be checked by its name.
import { randomUUID } from 'node:crypto'
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { ChaacError } from '../errors.ts'
import { writeDirect } from './direct-write.ts'
import { Lru } from './lru.ts'
import type { BallSource } from './verified-reader.ts'

export type Level = 'mem' | 'disk'
export const LEVELS: readonly Level[] = ['mem', 'disk']

export interface BinSpec {
  level: Level
  dir: string
  capacity: number
}

export interface BallEntry {
  bytes: number
  /** Logical time of the last use (a counter, not a clock). */
  lastUse: number
  uses: number
  /** A cache: a copy kept after a read, or in the memory level, which never counts as one of the ball's replicas. */
  cached: boolean
}

export type EvictionPolicy = 'lru' | 'lfu'

const ID_FILE = '.chaac-bin'
/** Ball files a bin keeps open: enough for random reads over a few GiB without reopening. */
export const OPEN_BALL_FILES = 1024
let useClock = 0

export class Bin implements BallSource {
  readonly level: Level
  readonly dir: string
  readonly capacity: number
  id = ''
  /** Being emptied before it is removed: new balls go elsewhere. */
  draining = false
  readonly entries = new Map<string, BallEntry>()
  used = 0
  private reserved = 0
  // A ball deleted and written again at once: the rename must come after the unlink.
  private readonly deleting = new Map<string, Promise<void>>()
  private readonly subdirs = new Set<string>()
  // New balls are written with O_DIRECT until the bin's filesystem refuses it.
  private direct = true
  private readonly fds = new Lru<string, Promise<FileHandle>>(OPEN_BALL_FILES, (_, fh) => {
    fh.then(async (h) => await h.close()).catch(() => {})
  })

  constructor (spec: BinSpec) {
    this.level = spec.level
    this.dir = spec.dir
    this.capacity = spec.capacity
  }

  /** Creates the directory or indexes what it already holds; leftovers of interrupted writes go. */
  async open (): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    try {
      this.id = (await readFile(join(this.dir, ID_FILE), 'utf8')).trim()
    } catch {
      this.id = randomUUID()
      await writeFile(join(this.dir, ID_FILE), this.id + '\n')
    }
    for (const sub of await readdir(this.dir)) {
      if (!/^[0-9a-f]{2}$/.test(sub)) continue
      for (const name of await readdir(join(this.dir, sub))) {
        const path = join(this.dir, sub, name)
        if (!/^[0-9a-f]{64}$/.test(name)) {
          await rm(path, { force: true })
          continue
        }
        const { size } = await stat(path)
        // Which copies are caches is kept in the map of balls; the store reconciles it at start.
        this.entries.set(name, { bytes: size, lastUse: ++useClock, uses: 0, cached: false })
        this.used += size
      }
    }
  }

  get free (): number {
    return Math.max(0, this.capacity - this.used - this.reserved)
  }

  has (id: string): boolean {
    return this.entries.has(id)
  }

  /** Claims room for a ball about to be written; false when the bin lacks it. */
  tryReserve (bytes: number): boolean {
    if (bytes > this.free) return false
    this.reserved += bytes
    return true
  }

  release (bytes: number): void {
    this.reserved -= bytes
  }

  /**
   * Writes a ball into room reserved with tryReserve. It is safe from an
   * agent crash on return; `sync` makes it safe from a power loss too.
   */
  async write (id: string, header: Buffer, data: Buffer, cached = false): Promise<void> {
    await this.store(id, header.length + data.length, cached, async (tmp) => {
      if (this.direct) {
        if (await writeDirect(tmp, [header, data])) return
        this.direct = false
      }
      const fh = await open(tmp, 'w')
      try {
        await fh.writev([header, data])
      } finally {
        await fh.close()
      }
    })
  }

  /**
   * Copies a ball from another bin into room reserved with tryReserve (a
   * cache copy). The kernel copies the bytes; they are checked when read,
   * like those of any copy.
   */
  async copyFrom (source: Bin, id: string, bytes: number): Promise<void> {
    await this.store(id, bytes, true, async (tmp) => await copyFile(source.pathOf(id), tmp))
  }

  // Fills a temporary file, then renames it into place: a ball file is whole or absent.
  private async store (id: string, bytes: number, cached: boolean, fill: (tmp: string) => Promise<void>): Promise<void> {
    const path = this.pathOf(id)
    const tmp = `${path}.${process.pid}.${++useClock}.tmp`
    try {
      const sub = id.slice(0, 2)
      if (!this.subdirs.has(sub)) {
        await mkdir(join(this.dir, sub), { recursive: true })
        this.subdirs.add(sub)
      }
      await fill(tmp)
      await this.deleting.get(id)
      await rename(tmp, path)
    } catch (err) {
      await rm(tmp, { force: true })
      throw new ChaacError((err as NodeJS.ErrnoException).code === 'ENOSPC' ? 'CHAAC_NO_SPACE' : 'CHAAC_IO',
        `bin ${this.dir}: cannot write ball ${id}`, { cause: err, ball: id })
    } finally {
      this.reserved -= bytes
    }
    if (!this.entries.has(id)) this.used += bytes
    this.entries.set(id, { bytes, lastUse: ++useClock, uses: 1, cached })
  }

  /** Flushes balls to stable storage (fsync of the files and of their directories). */
  async sync (ids: string[]): Promise<void> {
    const held = ids.filter((id) => this.entries.has(id))
    await Promise.all(held.map(async (id) => {
      const fh = await open(this.pathOf(id), 'r')
      try {
        await fh.datasync()
      } finally {
        await fh.close()
      }
    }))
    await Promise.all([...new Set(held.map((id) => id.slice(0, 2)))].map(async (sub) => {
      const dir = await open(join(this.dir, sub), 'r')
      try {
        await dir.sync()
      } finally {
        await dir.close()
      }
    }))
  }

  /** Counts reads of a ball made outside readRaw; the ball's uses now. */
  noteUses (id: string, reads: number): number {
    const entry = this.entries.get(id)
    if (!entry) return 0
    entry.lastUse = ++useClock
    entry.uses += reads
    return entry.uses
  }

  async readRaw (id: string, start: number, length: number, into?: Buffer): Promise<Buffer> {
    const entry = this.entries.get(id)
    if (!entry) throw new ChaacError('CHAAC_BALL_MISSING', `bin ${this.dir}: no ball ${id}`, { ball: id })
    entry.lastUse = ++useClock
    entry.uses++
    let fh = this.fds.get(id)
    if (!fh) {
      fh = open(this.pathOf(id), 'r')
      this.fds.set(id, fh)
    }
    try {
      const n = Math.max(0, Math.min(length, entry.bytes - start))
      const buf = into ?? Buffer.allocUnsafe(n)
      const { bytesRead } = await (await fh).read(buf, 0, n, start)
      return buf.subarray(0, bytesRead)
    } catch (err) {
      this.fds.delete(id)
      // Only a file that is gone is a missing ball; other failures may pass and leave the copy good.
      const gone = (err as NodeJS.ErrnoException).code === 'ENOENT'
      throw new ChaacError(gone ? 'CHAAC_BALL_MISSING' : 'CHAAC_IO', `bin ${this.dir}: cannot read ball ${id}`, { cause: err, ball: id })
    }
  }

  async delete (id: string): Promise<void> {
    const entry = this.entries.get(id)
    if (!entry) return
    this.entries.delete(id)
    this.fds.delete(id)
    const gone = unlink(this.pathOf(id)).catch(() => {}).finally(() => this.deleting.delete(id))
    this.deleting.set(id, gone)
    await gone
    // The room counts as free once the file is gone, so the directory never holds more than the capacity.
    this.used -= entry.bytes
  }

  /** Balls to drop, least valuable first, until `bytes` are free; only those `evictable` allows. */
  victims (bytes: number, policy: EvictionPolicy, evictable: (id: string) => boolean): string[] {
    const need = bytes - this.free
    if (need <= 0) return []
    const order = [...this.entries].filter(([id]) => evictable(id))
    order.sort(policy === 'lru'
      ? (a, b) => a[1].lastUse - b[1].lastUse
      : (a, b) => a[1].uses - b[1].uses || a[1].lastUse - b[1].lastUse)
    const out: string[] = []
    let freed = 0
    for (const [id, entry] of order) {
      if (freed >= need) break
      out.push(id)
      freed += entry.bytes
    }
    return freed >= need ? out : []
  }

  async close (): Promise<void> {
    this.fds.clear()
  }

  /** The ball's file in this bin. */
  pathOf (id: string): string {
    return join(this.dir, id.slice(0, 2), id)
  }
}
