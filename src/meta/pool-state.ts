// The data pool's records held in memory, and what each record means: the one
// place that turns a stored key and value into the namespace, the map of
// balls, the upload queue, the garbage list and the map of agents and bins.
// The data pool loads LevelDB through `apply`; a replica on another agent
// applies the pool's snapshot and change stream through it too.
import { EventEmitter } from 'node:events'
import { ChaacError } from '../errors.ts'
import type { PoolEvents } from './pool.ts'
import { decodeSettings, type ClusterSettings } from './settings.ts'
import {
  NEXT_INO_KEY, ROOT_INO, SETTINGS_KEY, decode, decodeSlices, isDir, isFile, parseDirentKey, parseSliceKey, type AgentRecord, type BallRecord, type Inode
} from './schema.ts'

export class PoolState extends EventEmitter<PoolEvents> {
  protected readonly inodes = new Map<number, Inode>()
  protected readonly dirs = new Map<number, Map<string, number>>()
  // Each directory has exactly one parent; kept for the rename loop check.
  protected readonly parents = new Map<number, number>()
  readonly balls = new Map<string, BallRecord>()
  readonly uploads = new Set<string>()
  /** Balls whose cloud copy no file referenced any more, and since when (ms). */
  readonly garbage = new Map<string, number>()
  /** The agents of the cluster, by id, as each last reported itself. */
  readonly agents = new Map<string, AgentRecord>()
  /** The cluster's settings (chaac format, or the first agent); undefined until stored. */
  settings?: ClusterSettings
  protected nextIno = ROOT_INO + 1

  // ---- reading ----

  get (ino: number): Inode | undefined {
    this.checkReachable()
    return this.inodes.get(ino)
  }

  lookup (parent: number, name: string): number | undefined {
    this.checkReachable()
    return this.dirs.get(parent)?.get(name)
  }

  entries (dir: number): Map<string, number> {
    this.checkReachable()
    const entries = this.dirs.get(dir)
    if (!entries) throw new ChaacError('CHAAC_NOT_DIR', `inode ${dir} is not a directory`)
    return entries
  }

  /** The directory that holds directory `dir` (undefined for the root). */
  parent (dir: number): number | undefined {
    return this.parents.get(dir)
  }

  /** Inodes that no directory names any more (unlinked while open). */
  orphans (): Inode[] {
    return [...this.inodes.values()].filter((n) => n.nlink === 0)
  }

  get inodeCount (): number {
    return this.inodes.size
  }

  isReferenced (ball: string): boolean {
    return (this.balls.get(ball)?.refs ?? 0) > 0
  }

  inCloud (id: string): boolean {
    return this.balls.get(id)?.cloud === true
  }

  /** Whether a file references the ball or a writer is about to: its copies are not garbage. */
  inUse (ball: string): boolean {
    const rec = this.balls.get(ball)
    return rec !== undefined && (rec.refs > 0 || (rec.writers?.length ?? 0) > 0)
  }

  /** Throws when the namespace may be stale (a replica cut off from the pool). */
  protected checkReachable (): void {}

  // ---- records ----

  /**
   * Applies one stored record (`value` undefined: deleted). Inode records
   * must come before the entries that name them; false for an entry whose
   * directory or inode is missing (a leftover the data pool repairs).
   */
  protected apply (key: string, value: Uint8Array | undefined): boolean {
    const id = key.slice(2)
    switch (key[0]) {
      case 'i': return this.applyInode(parseInt(id, 16), value)
      case 'd': return this.applyDirent(key, value)
      case 's': return this.applySlices(key, value)
      case 'b': setOrDelete(this.balls, id, value && decode<BallRecord>(value)); break
      case 'q': if (value) this.uploads.add(id); else this.uploads.delete(id); break
      case 'g': setOrDelete(this.garbage, id, value && Number(Buffer.from(value).toString())); break
      case 'a': setOrDelete(this.agents, id, value && decode<AgentRecord>(value)); break
      case 'm':
        if (key === NEXT_INO_KEY && value) this.nextIno = Number(Buffer.from(value).toString())
        if (key === SETTINGS_KEY) this.settings = value && decodeSettings(value)
        break
    }
    return true
  }

  /** Forgets every record (before a replica takes a fresh snapshot). */
  protected clear (): void {
    for (const m of [this.inodes, this.dirs, this.parents, this.balls, this.garbage, this.agents]) m.clear()
    this.uploads.clear()
    this.settings = undefined
    this.nextIno = ROOT_INO + 1
  }

  private applyInode (ino: number, value: Uint8Array | undefined): boolean {
    if (!value) {
      this.inodes.delete(ino)
      this.dirs.delete(ino)
      this.parents.delete(ino)
      return true
    }
    const node = decode<Inode>(value)
    // A file's slices are records of their own: a new inode record keeps them.
    const slices = this.inodes.get(ino)?.slices
    if (slices !== undefined && isFile(node)) node.slices = slices
    this.inodes.set(ino, node)
    if (isDir(node) && !this.dirs.has(ino)) this.dirs.set(ino, new Map())
    return true
  }

  private applySlices (key: string, value: Uint8Array | undefined): boolean {
    const { ino, chunk } = parseSliceKey(key)
    const node = this.inodes.get(ino)
    if (!node || !isFile(node)) return false
    const slices = node.slices ?? []
    while (slices.length <= chunk) slices.push(null)
    slices[chunk] = value ? decodeSlices(value) : null
    while (slices.length > 0 && slices[slices.length - 1] === null) slices.pop()
    if (slices.length > 0) node.slices = slices
    else delete node.slices
    return true
  }

  private applyDirent (key: string, value: Uint8Array | undefined): boolean {
    const { parent, name } = parseDirentKey(key)
    const dir = this.dirs.get(parent)
    if (!value) {
      const child = dir?.get(name)
      dir?.delete(name)
      if (child !== undefined && this.parents.get(child) === parent) this.parents.delete(child)
      return true
    }
    const ino = Number(Buffer.from(value).toString())
    if (!dir || !this.inodes.has(ino)) return false
    dir.set(name, ino)
    if (this.dirs.has(ino)) this.parents.set(ino, parent)
    return true
  }
}

function setOrDelete<V> (map: Map<string, V>, key: string, value: V | undefined): void {
  if (value === undefined) map.delete(key)
  else map.set(key, value)
}
