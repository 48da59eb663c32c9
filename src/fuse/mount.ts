// Mounting the chaac path: the mount options that decide performance and
// consistency, stale-mount cleanup after a crash, and a lazy unmount.
import { execFile } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import Fuse from '../../native/fuse/index.cjs'
import type { Filesystem } from '../fs/filesystem.ts'
import { fuseOps, type OpLog } from './fuse-ops.ts'

const exec = promisify(execFile)

export interface MountOptions {
  /** Seconds the kernel may trust attributes and names before asking again. */
  attrTimeout: number
}

/** True when something is mounted at `dir` (by /proc/self/mountinfo, which never touches the mount). */
export async function isMounted (dir: string): Promise<boolean> {
  const target = resolve(dir).replace(/ /g, '\\040')
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  return info.split('\n').some((line) => line.split(' ')[4] === target)
}

export async function lazyUnmount (dir: string): Promise<void> {
  await exec('fusermount', ['-uz', resolve(dir)]).catch(async () => await exec('umount', ['-l', resolve(dir)]))
}

export class ChaacMount {
  private fuse?: Fuse

  constructor (readonly dir: string, private readonly fs: Filesystem, private readonly log: OpLog, private readonly opts: MountOptions) {}

  async mount (): Promise<void> {
    await mkdir(this.dir, { recursive: true })
    // A previous agent that died leaves its mount behind ("transport endpoint is not connected").
    if (await isMounted(this.dir)) await lazyUnmount(this.dir)
    const fuse = new Fuse(this.dir, fuseOps(this.fs, this.log), {
      fsname: 'chaac',
      subtype: 'chaac',
      allowOther: true,
      defaultPermissions: true,
      bigWrites: true,
      maxWrite: 1024 * 1024,
      maxRead: 1024 * 1024,
      maxReadahead: 1024 * 1024,
      useIno: true,
      // No hard_remove: libfuse 2 answers fstat of an unlinked open file with
      // ENOENT under it. Instead libfuse renames such a file to .fuse_hiddenN
      // and unlinks it at the last close, so it stays readable until then.
      // Re-reads come from the kernel's page cache until the file's mtime or size changes.
      autoCache: true,
      attrTimeout: this.opts.attrTimeout,
      entryTimeout: this.opts.attrTimeout,
      negativeTimeout: 0,
      // Shorter than any client's patience; longer than the agent's own network deadlines.
      timeout: { default: 30_000, flush: 120_000, fsync: 120_000, release: 120_000, write: 60_000 }
    })
    await new Promise<void>((resolve, reject) => fuse.mount((err) => err ? reject(err) : resolve()))
    this.fuse = fuse
  }

  async unmount (): Promise<void> {
    const fuse = this.fuse
    if (!fuse) return
    this.fuse = undefined
    await new Promise<void>((resolve) => fuse.unmount((err) => {
      if (err) this.log.error({ err }, 'unmount failed; unmounting lazily')
      resolve()
    }))
    if (await isMounted(this.dir)) await lazyUnmount(this.dir)
  }
}
