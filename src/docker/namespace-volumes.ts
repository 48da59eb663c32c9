// Docker volumes as folders of the chaac namespace: volume NAME is the folder
// /volumes/NAME (on the host: <chaac path>/volumes/NAME); its creation time
// and options are a small file /volumes/.info/NAME.json beside it, and the
// mount ids of the containers using it through agent A are the file
// /volumes/.mounts/NAME/A (names Docker's rules never give a volume; each
// agent writes only its own). All are in the data pool, so every agent of a
// cluster sees the same volumes and who uses them, across restarts.
//
// The agent changes the namespace here through the data pool, never through
// its own mount (that could deadlock it). The kernel then learns of the
// change as of one made by another agent: within --attr-timeout.
import { join } from 'node:path'
import { ChaacError, isChaacError } from '../errors.ts'
import type { Filesystem } from '../fs/filesystem.ts'
import type { Pool } from '../meta/pool.ts'
import { ROOT_INO, S_IFDIR, S_IFREG, isDir } from '../meta/schema.ts'
import { checkVolumeName, type VolumeInfo, type VolumeStore } from './volume-driver.ts'

/** The folder at the root of the namespace that holds the volumes. */
export const VOLUMES_DIR = 'volumes'
const INFO_DIR = '.info'
const MOUNTS_DIR = '.mounts'
const ROOT_OWNED = { uid: 0, gid: 0 }

export interface NamespaceVolumesOptions {
  pool: Pool
  fs: Filesystem
  /** The chaac path on the host. */
  chaacPath: string
  chunkSize: number
  /** This agent, whose mounts it records. */
  agentId: string
  /** Whether another agent is alive: the mounts of one that is gone are not counted. */
  isAlive: (agentId: string) => boolean
}

interface StoredInfo { createdAt: number, options: Record<string, string> }

export class NamespaceVolumes implements VolumeStore {
  private readonly pool: Pool
  private readonly fs: Filesystem

  constructor (private readonly opts: NamespaceVolumesOptions) {
    this.pool = opts.pool
    this.fs = opts.fs
  }

  mountpoint (name: string): string {
    return join(this.opts.chaacPath, VOLUMES_DIR, name)
  }

  async create (name: string, options: Record<string, string>): Promise<void> {
    await this.pool.revalidate()
    const volumes = await this.folder(ROOT_INO, VOLUMES_DIR)
    if (this.volumeIno(volumes, name) !== undefined) return
    // The info first: a crash in between leaves an info file that the next create of the name replaces.
    const info: StoredInfo = { createdAt: Date.now(), options }
    await this.writeSmall(await this.folder(volumes, INFO_DIR), infoName(name), Buffer.from(JSON.stringify(info) + '\n'))
    await this.folder(volumes, name)
  }

  async mounts (name: string): Promise<{ here: string[], elsewhere: number }> {
    await this.pool.revalidate()
    const dir = this.mountsDir(name)
    let here: string[] = []
    let elsewhere = 0
    for (const [agent, ino] of dir === undefined ? [] : [...this.pool.entries(dir)]) {
      if (agent === this.opts.agentId) here = await this.readJson(ino, isIdList) ?? []
      else if (this.opts.isAlive(agent)) elsewhere += (await this.readJson(ino, isIdList) ?? []).length
    }
    return { here, elsewhere }
  }

  async recordMounts (name: string, ids: string[]): Promise<void> {
    const volumes = await this.folder(ROOT_INO, VOLUMES_DIR)
    const dir = await this.folder(await this.folder(volumes, MOUNTS_DIR), name)
    if (ids.length > 0) await this.writeSmall(dir, this.opts.agentId, Buffer.from(JSON.stringify(ids) + '\n'))
    else if (this.pool.lookup(dir, this.opts.agentId) !== undefined) await this.fs.unlink(dir, this.opts.agentId)
  }

  private mountsDir (name: string): number | undefined {
    const volumes = this.pool.lookup(ROOT_INO, VOLUMES_DIR)
    const mounts = volumes === undefined ? undefined : this.pool.lookup(volumes, MOUNTS_DIR)
    return mounts === undefined ? undefined : this.pool.lookup(mounts, name)
  }

  async remove (name: string): Promise<void> {
    await this.pool.revalidate()
    const volumes = this.pool.lookup(ROOT_INO, VOLUMES_DIR)
    const ino = volumes === undefined ? undefined : this.volumeIno(volumes, name)
    if (volumes === undefined || ino === undefined) throw new ChaacError('CHAAC_NOT_FOUND', `no volume named ${name}`)
    await this.removeTree(ino)
    await this.fs.rmdir(volumes, name)
    const info = this.pool.lookup(volumes, INFO_DIR)
    if (info !== undefined && this.pool.lookup(info, infoName(name)) !== undefined) await this.fs.unlink(info, infoName(name))
    // What agents that are gone had recorded.
    const mounts = this.mountsDir(name)
    if (mounts !== undefined) {
      await this.removeTree(mounts)
      await this.fs.rmdir(this.pool.lookup(volumes, MOUNTS_DIR) as number, name)
    }
  }

  async get (name: string): Promise<VolumeInfo | undefined> {
    await this.pool.revalidate()
    const volumes = this.pool.lookup(ROOT_INO, VOLUMES_DIR)
    const ino = volumes === undefined ? undefined : this.volumeIno(volumes, name)
    return volumes === undefined || ino === undefined ? undefined : await this.info(volumes, name, ino)
  }

  async list (): Promise<VolumeInfo[]> {
    await this.pool.revalidate()
    const volumes = this.pool.lookup(ROOT_INO, VOLUMES_DIR)
    if (volumes === undefined) return []
    const found: VolumeInfo[] = []
    for (const [name, ino] of [...this.pool.entries(volumes)]) {
      if (isVolumeName(name) && this.isFolder(ino)) found.push(await this.info(volumes, name, ino))
    }
    return found.sort((a, b) => a.name.localeCompare(b.name))
  }

  /** The folder of volume `name`; undefined when there is none. A non-folder of that name is an error: Docker would mount it. */
  private volumeIno (volumes: number, name: string): number | undefined {
    const ino = this.pool.lookup(volumes, name)
    if (ino !== undefined && !this.isFolder(ino)) {
      throw new ChaacError('CHAAC_NOT_DIR', `/${VOLUMES_DIR}/${name} in the chaac namespace is not a folder: move it away to use the name for a volume`)
    }
    return ino
  }

  private isFolder (ino: number): boolean {
    const node = this.pool.get(ino)
    return node !== undefined && isDir(node)
  }

  /** The folder `name` in `parent`, made (root's, mode 755) when missing, also when another agent makes it at the same moment. */
  private async folder (parent: number, name: string): Promise<number> {
    const ino = this.pool.lookup(parent, name)
    if (ino !== undefined) return ino
    try {
      // Not Filesystem.mkdir: that counts a reference of the kernel, which never looked the folder up.
      return (await this.pool.create(parent, name, { mode: S_IFDIR | 0o755, ...ROOT_OWNED })).ino
    } catch (err) {
      const raced = isChaacError(err, 'CHAAC_EXISTS') ? this.pool.lookup(parent, name) : undefined
      if (raced === undefined) throw err
      return raced
    }
  }

  // A few hundred bytes at most: kept inline in the data pool, with no ball.
  private async writeSmall (dir: number, name: string, bytes: Buffer): Promise<void> {
    const ino = this.pool.lookup(dir, name) ?? (await this.pool.create(dir, name, { mode: S_IFREG | 0o644, ...ROOT_OWNED })).ino
    await this.pool.commitFile(ino, { size: bytes.length, balls: [], chunkSize: this.opts.chunkSize, inline: bytes, mtime: Date.now() })
  }

  // A folder made by hand in /volumes is a volume too: it has no info, and is as old as its last change.
  private async info (volumes: number, name: string, ino: number): Promise<VolumeInfo> {
    const infoDir = this.pool.lookup(volumes, INFO_DIR)
    const file = infoDir === undefined ? undefined : this.pool.lookup(infoDir, infoName(name))
    const stored = file === undefined ? undefined : await this.readJson(file, isInfo)
    return { name, createdAt: stored?.createdAt ?? this.pool.get(ino)?.ctime ?? Date.now(), options: stored?.options ?? {} }
  }

  private async readJson<T> (ino: number, valid: (x: unknown) => x is T): Promise<T | undefined> {
    if (this.pool.get(ino)?.inline === undefined) return undefined
    try {
      const value: unknown = JSON.parse((await this.pool.readInline(ino)).toString('utf8'))
      return valid(value) ? value : undefined
    } catch {
      return undefined // written by hand or damaged: the volume is still there
    }
  }

  // Through the Filesystem, which frees the balls of each file (unless a container elsewhere still holds it open).
  private async removeTree (dir: number): Promise<void> {
    for (const [name, ino] of [...this.pool.entries(dir)]) {
      if (this.isFolder(ino)) {
        await this.removeTree(ino)
        await this.fs.rmdir(dir, name)
      } else {
        await this.fs.unlink(dir, name)
      }
    }
  }
}

function infoName (name: string): string {
  return `${name}.json`
}

function isInfo (x: unknown): x is StoredInfo {
  const info = x as StoredInfo
  return typeof x === 'object' && x !== null && typeof info.createdAt === 'number' && typeof info.options === 'object' && info.options !== null
}

function isIdList (x: unknown): x is string[] {
  return Array.isArray(x) && x.every((id) => typeof id === 'string')
}

function isVolumeName (name: string): boolean {
  try {
    checkVolumeName(name)
    return true
  } catch {
    return false
  }
}
