// Mounting the chaac path: the mount options that decide performance and
// consistency, stale-mount cleanup after a crash, and the unmount.
import { execFile } from 'node:child_process'
import { mkdir, readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { ChaacError } from '../errors.ts'
import type { Filesystem } from '../fs/filesystem.ts'
import type { Pool } from '../meta/pool.ts'
import { parseInodeKey } from '../meta/schema.ts'
import { FsErrors, type ErrorLog } from './fs-errors.ts'
import { FuseOps } from './fuse-ops.ts'
import { binding, type SessionHandle } from './lowlevel.ts'

const exec = promisify(execFile)

export interface MountOptions {
  /** Seconds the kernel may trust attributes and names before asking again. */
  attrTimeout: number
  /**
   * Whether the kernel may also trust that a name does not exist: true when
   * only this mount changes the namespace (a single agent). In a cluster
   * another agent may create the name at any time.
   */
  negativeEntries: boolean
  /** Microseconds /dev/fuse is read again after every request was answered, before the agent sleeps (0: never). */
  busyPollUs: number
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

// How long an unmount waits for the kernel to end the session; a lazy unmount
// with files still open elsewhere ends it only when they are closed.
const STOP_WAIT_MS = 5_000

/** Reads served by the binding's read threads (native-reads.c), without JS. */
export interface NativeReads {
  reads: number
  /** Ball reads among them: local cache hits, like those of the JS path. */
  balls: number
  bytes: number
  /** Reads the threads handed to the JS path (a failed check, a ball file gone, ...). */
  handedBack: number
  /** Blocks checked against their hash. */
  blocksVerified: number
}

export class ChaacMount {
  private session?: SessionHandle
  private stopped?: Promise<void>
  private ops?: FuseOps
  // The counts of the last session, once it is gone.
  private lastStats: Float64Array = new Float64Array(5)

  /** Failures programs saw (EIO, ETIMEDOUT), logged and counted; for /metrics and /status. */
  readonly errors: FsErrors

  constructor (readonly dir: string, private readonly fs: Filesystem, private readonly log: ErrorLog, private readonly opts: MountOptions) {
    this.errors = new FsErrors(log, (ino) => fs.pathOf(ino))
  }

  async mount (): Promise<void> {
    // A previous agent that died leaves its mount behind ("transport endpoint is not connected"):
    // it goes first, as even mkdir fails on it with ENOTCONN.
    if (await isMounted(this.dir)) await lazyUnmount(this.dir)
    try {
      await mkdir(this.dir, { recursive: true })
    } catch (err) {
      throw new ChaacError('CHAAC_NOT_DIR', `the chaac path ${this.dir} cannot be a mount point (${(err as Error).message})`, { cause: err })
    }
    let onStopped = (): void => {}
    this.stopped = new Promise<void>((resolve) => { onStopped = resolve })
    const ops = new FuseOps(this.fs, this.errors, {
      // Shorter than any client's patience; longer than the agent's own network deadlines.
      default: 30_000, flush: 120_000, fsync: 120_000, release: 120_000, write: 60_000
    }, () => onStopped(), this.opts.negativeEntries)
    this.ops = ops
    const mountOptions = [
      'fsname=chaac', 'subtype=chaac',
      // Other users and containers reach the mount; the kernel checks modes and owners.
      'allow_other', 'default_permissions',
      // The default chaac path (mount/) keeps a placeholder file so it exists in a fresh clone.
      'nonempty',
      'max_read=1048576'
    ].join(',')
    const session = binding.mount(resolve(this.dir), mountOptions, 'max_write=1048576,max_readahead=1048576',
      this.opts.attrTimeout, this.opts.attrTimeout, ops.dispatch, this.opts.busyPollUs)
    this.session = session
    ops.session = session
    // Once the kernel ended the session, free it as soon as no request waits for a reply.
    void this.stopped.then(async () => {
      await ops.drained()
      if (this.session === session) this.session = undefined
      this.lastStats = binding.readStats(session)
      ops.session = undefined
      binding.destroy(session)
    })
  }

  /**
   * Keeps the kernel's cached attributes true to changes made by other
   * agents: it forgets those of every inode such a change touched, so the
   * next stat, or a read past the size it knew, asks again. (Cached pages
   * go at the next open, by its keep-cache answer.)
   */
  followChanges (pool: Pool, agentId: string): void {
    pool.on('change', (_seq, ops, origin) => {
      if (origin !== agentId) this.invalidate(ops.map((op) => parseInodeKey(op.key)))
    })
    pool.on('synced', () => this.invalidate(this.fs.knownInodes()))
  }

  // Read plans of a file changed elsewhere go too, though its open handles
  // keep reading the version they opened (close-to-open) either way.
  private invalidate (inos: Iterable<number | undefined>): void {
    const session = this.session
    if (!session) return
    for (const ino of inos) {
      if (ino === undefined) continue
      binding.dropReadPlans(session, ino)
      if (this.fs.knows(ino)) binding.invalAttrs(session, ino)
    }
  }

  /** Reads served by the binding's read threads so far. */
  nativeReads (): NativeReads {
    const s = this.ops?.readStats() ?? this.lastStats
    return { reads: s[0], balls: s[1], bytes: s[2], handedBack: s[3], blocksVerified: s[4] }
  }

  async unmount (): Promise<void> {
    if (!this.session || !this.stopped) return
    const dir = resolve(this.dir)
    await exec('fusermount', ['-u', dir]).catch(async (err) => {
      this.log.error({ err: (err as Error).message }, 'unmount failed (files still open?); unmounting lazily')
      await lazyUnmount(dir)
    })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.stopped, new Promise((resolve) => { timer = setTimeout(resolve, STOP_WAIT_MS) })])
    clearTimeout(timer)
  }
}
