// Mounting the chaac path: the mount options that decide performance and
// consistency, taking the mount over from an agent that died (its keeper
// held the connection), stale-mount cleanup when that cannot be, and the unmount.
import { execFile } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { ChaacError } from '../errors.ts'
import type { Filesystem } from '../fs/filesystem.ts'
import type { Pool } from '../meta/pool.ts'
import { parseInodeKey } from '../meta/schema.ts'
import { FsErrors, type ErrorLog } from './fs-errors.ts'
import { FuseOps } from './fuse-ops.ts'
import { killKeeper, loadKeeper, removeKeeperRecord, saveKeeper, startKeeper, whyNotTakeOver, type KeeperRecord } from './keeper.ts'
import { binding, type SessionHandle } from './lowlevel.ts'
import { shareParent } from './propagation.ts'

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
  /**
   * The agent's data folder, where the record of the mount's keeper is kept
   * (keeper.json); without it no keeper is started and a mount left by a
   * dead agent is unmounted, as after any crash.
   */
  keeperDir?: string
  /** Make the folder that holds the chaac path a shared mount when it is not (default true). */
  shareFolder?: boolean
}

export type MountLog = ErrorLog & { info: (obj: object, msg: string) => void }

/** How this agent came by the mount it serves, when it took it over from an agent that died. */
export interface Takeover {
  /** The keeper that held the connection meanwhile (it goes on holding it). */
  keeper: number
  /** The agent that served it before. */
  previousAgent: number
  at: number
  /** Requests the dead agent had read and not answered, sent again by the kernel (counted as they arrive). */
  resent: number
}

const MOUNT_OPTIONS = [
  'fsname=chaac', 'subtype=chaac',
  // Other users and containers reach the mount; the kernel checks modes and owners.
  'allow_other', 'default_permissions',
  // The default chaac path (mount/) keeps a placeholder file so it exists in a fresh clone.
  'nonempty',
  'max_read=1048576'
].join(',')
const SESSION_OPTIONS = 'max_write=1048576,max_readahead=1048576'
// The mount's readahead window in largest requests: as many as the binding has read threads (native-reads.c).
const READAHEAD_REQUESTS = 4
// When the requests sent again after a takeover have been read, for the log line that counts them.
const RESENT_LOG_MS = 1_000

/** True when something is mounted at `dir` (by /proc/self/mountinfo, which never touches the mount). */
export async function isMounted (dir: string): Promise<boolean> {
  return await mountDevice(dir) !== undefined
}

// The device number ("major:minor") of the top mount at `dir`, which names its
// backing device info in /sys/class/bdi; by /proc/self/mountinfo, which never touches the mount.
async function mountDevice (dir: string): Promise<string | undefined> {
  const target = resolve(dir).replace(/ /g, '\\040')
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  // The last line of the folder is the mount on top.
  return info.split('\n').map((line) => line.split(' ')).reverse().find((fields) => fields[4] === target)?.[2]
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
  // The previous agent's connection, looked up once: null when there is none to take over.
  private previous?: KeeperRecord | null
  /** The keeper of the connection this agent serves. */
  keeper?: KeeperRecord
  /** Set when this agent took the mount over from one that died. */
  takenOver?: Omit<Takeover, 'resent'>
  private resentSoFar = 0
  private handedOver = false
  /** The folder that holds the chaac path, and whether this agent made it a shared mount. */
  folder?: { path: string, madeShared: boolean }
  /** The largest write (and read) request the kernel sends this mount, once its INIT went through. */
  maxRequest?: number
  /** The mount's readahead window in KiB, once this agent widened it (to READAHEAD_REQUESTS largest requests). */
  readaheadKb?: number

  /** Failures programs saw (EIO, ETIMEDOUT), logged and counted; for /metrics and /status. */
  readonly errors: FsErrors

  constructor (readonly dir: string, private readonly fs: Filesystem, private readonly log: MountLog, private readonly opts: MountOptions) {
    this.errors = new FsErrors(log, (ino) => fs.pathOf(ino))
  }

  /**
   * The connection an agent that died left with its keeper, when this agent
   * can take it over; looked up once (the agent skips what must wait for it,
   * such as deleting files unlinked while open, which a process may still hold).
   */
  async takeoverCandidate (): Promise<KeeperRecord | undefined> {
    if (this.previous !== undefined) return this.previous ?? undefined
    this.previous = null
    const data = this.opts.keeperDir
    const record = data === undefined ? undefined : await loadKeeper(data)
    if (data === undefined || record === undefined) return undefined
    const why = await isAgent(record.agentPid) ? `the agent that served it (pid ${record.agentPid}) is still running` : await whyNotTakeOver(record, this.dir)
    if (why === undefined) {
      this.previous = record
      return record
    }
    this.log.warn({ keeper: record.pid, reason: why }, `cannot take over the previous agent's mount (${why}); mounting anew`)
    await this.dropKeeper(record)
    return undefined
  }

  async mount (): Promise<void> {
    let onStopped = (): void => {}
    this.stopped = new Promise<void>((resolve) => { onStopped = resolve })
    const ops = new FuseOps(this.fs, this.errors, {
      // Shorter than any client's patience; longer than the agent's own network deadlines.
      default: 30_000, flush: 120_000, fsync: 120_000, release: 120_000, write: 60_000
    }, () => onStopped(), this.opts.negativeEntries)
    this.ops = ops
    const previous = await this.takeoverCandidate()
    let session = previous && this.takeOver(previous, ops)
    if (session) await this.shareFolder()
    else session = await this.mountAnew(ops)
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

  // Serves the connection the keeper held; undefined (keeper gone, mount left for mountAnew to clean up) when that fails.
  private takeOver (previous: KeeperRecord, ops: FuseOps): SessionHandle | undefined {
    const { init } = previous
    let session: SessionHandle
    try {
      session = binding.takeover(previous.pid, previous.fd, Float64Array.of(init.major, init.minor, init.maxReadahead, init.flags),
        SESSION_OPTIONS, this.opts.attrTimeout, this.opts.attrTimeout, ops.dispatch, this.opts.busyPollUs)
    } catch (err) {
      this.log.warn({ keeper: previous.pid, err: (err as Error).message }, `could not take over the previous agent's mount (${(err as Error).message}); mounting anew`)
      this.previous = null
      return undefined
    }
    ops.adoptHandles = true
    this.takenOver = { keeper: previous.pid, previousAgent: previous.agentPid, at: Date.now() }
    this.keeper = { ...previous, agentPid: process.pid, since: Date.now() }
    this.maxRequest = previous.negotiated.maxWrite
    void this.widenReadahead(previous.mountpoint, this.maxRequest)
    this.log.info({ keeper: previous.pid, previousAgent: previous.agentPid }, `took over the mount ${this.dir} from the previous agent (pid ${previous.agentPid}) that its keeper (pid ${previous.pid}) held`)
    this.record(this.keeper)
    setTimeout(() => {
      const resent = this.takeover()?.resent ?? 0
      this.log.info({ resent }, `${resent} requests the previous agent had not answered were sent again`)
    }, RESENT_LOG_MS).unref()
    return session
  }

  private async mountAnew (ops: FuseOps): Promise<SessionHandle> {
    // A previous agent that died leaves its mount behind ("transport endpoint is not connected"):
    // it goes first, as even mkdir fails on it with ENOTCONN. Its keeper first, or the connection lives on.
    if (this.opts.keeperDir !== undefined) await this.dropKeeper(await loadKeeper(this.opts.keeperDir))
    if (await isMounted(this.dir)) await lazyUnmount(this.dir)
    try {
      await mkdir(this.dir, { recursive: true })
    } catch (err) {
      throw new ChaacError('CHAAC_NOT_DIR', `the chaac path ${this.dir} cannot be a mount point (${(err as Error).message})`, { cause: err })
    }
    await this.shareFolder()
    const mountpoint = resolve(this.dir)
    ops.onInit = (v) => {
      this.maxRequest = v[5]
      void this.widenReadahead(mountpoint, v[5])
      if (this.opts.keeperDir !== undefined) void this.startKeeper(mountpoint, v)
    }
    return binding.mount(mountpoint, MOUNT_OPTIONS, SESSION_OPTIONS, this.opts.attrTimeout, this.opts.attrTimeout, ops.dispatch, this.opts.busyPollUs)
  }

  // The kernel sizes the READs of a sequential reader by the mount's readahead
  // window, which starts at 128 KiB for a FUSE mount whatever the largest
  // request is: a cold read of a large file took eight round trips per MiB,
  // one or two at a time. A window of READAHEAD_REQUESTS largest requests
  // keeps the binding's read threads busy at once (a cold 1 GiB read here:
  // 600-700 MB/s with 128 KiB or 1 MiB, 700-1,100 with 4 MiB, no better
  // with 8 or 16). The window is the mount's own setting (it goes with the
  // mount, and a takeover keeps it); it needs root, and without it reads
  // only stay smaller.
  private async widenReadahead (mountpoint: string, maxRequest: number): Promise<void> {
    const kb = Math.floor(READAHEAD_REQUESTS * maxRequest / 1024)
    try {
      const device = await mountDevice(mountpoint)
      if (device === undefined || kb <= 128) return
      await writeFile(`/sys/class/bdi/${device}/read_ahead_kb`, String(kb))
      this.readaheadKb = kb
    } catch (err) {
      this.log.info({ err: (err as Error).message }, `the mount's readahead window stays as the kernel set it (${(err as Error).message})`)
    }
  }

  // Before the mount, so that the mount is shared too (a new mount under a shared one is).
  private async shareFolder (): Promise<void> {
    if (this.opts.shareFolder === false) return
    try {
      const { folder, done } = await shareParent(this.dir)
      this.folder = { path: folder, madeShared: done !== 'nothing' }
      if (done !== 'nothing') this.log.info({ folder }, `made ${folder} a shared mount, so that containers can bind-mount it with rslave`)
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not make the folder that holds the chaac path a shared mount (docker -v ...:rslave will refuse it)')
    }
  }

  // The kernel's INIT went through: from now on a keeper holds the connection, for the next agent should this one die.
  private async startKeeper (mountpoint: string, v: Float64Array): Promise<void> {
    const session = this.session
    if (session === undefined || this.keeper !== undefined) return
    try {
      const { pid, fd } = await startKeeper(binding.sessionFd(session), mountpoint, binding.closeOnExec)
      if (this.session !== session) {
        // Unmounted meanwhile.
        process.kill(pid, 'SIGKILL')
        return
      }
      this.keeper = {
        pid,
        fd,
        mountpoint,
        init: { major: v[0], minor: v[1], maxReadahead: v[2], flags: v[3] },
        negotiated: { want: v[4], maxWrite: v[5] },
        agentPid: process.pid,
        since: Date.now()
      }
      this.record(this.keeper)
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'could not start the keeper of the mount: a crash of the agent will leave the mount unusable until the next start')
    }
  }

  private record (keeper: KeeperRecord): void {
    saveKeeper(this.opts.keeperDir as string, keeper).catch((err) => this.log.warn({ err: (err as Error).message }, 'could not save the record of the keeper'))
  }

  private async dropKeeper (record: KeeperRecord | undefined): Promise<void> {
    if (record !== undefined) await killKeeper(record)
    if (this.opts.keeperDir !== undefined) await removeKeeperRecord(this.opts.keeperDir)
  }

  /**
   * For a start that failed after a takeover: this agent stops reading
   * requests and leaves the mount and its keeper to the next agent, instead
   * of unmounting what programs are waiting on.
   */
  handOver (): void {
    if (!this.session || !this.takenOver) return
    binding.detach(this.session)
    this.handedOver = true
  }

  /** The takeover this agent made, with the requests sent again so far. */
  takeover (): Takeover | undefined {
    if (!this.takenOver) return undefined
    // Once the session is gone its count is too: the requests were answered long before.
    if (this.session) this.resentSoFar = binding.resent(this.session)
    return { ...this.takenOver, resent: this.resentSoFar }
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
      // A directory's cached listings go too: a handle kept open and rewound lists from them.
      if (this.fs.knows(ino)) binding.invalAttrs(session, ino, this.fs.isDirectory(ino))
    }
  }

  /** The largest request the kernel may send, the readahead window set for it, the largest write it sent, the listings and flushes it asked for. */
  requests (): { max: number | null, readaheadKb: number | null, largestWrite: number, listings: number, flushes: number } {
    return {
      max: this.maxRequest ?? null,
      readaheadKb: this.readaheadKb ?? null,
      largestWrite: this.ops?.largestWrite ?? 0,
      listings: this.ops?.listings ?? 0,
      flushes: this.ops?.flushes ?? 0
    }
  }

  /** Reads served by the binding's read threads so far. */
  nativeReads (): NativeReads {
    const s = this.ops?.readStats() ?? this.lastStats
    return { reads: s[0], balls: s[1], bytes: s[2], handedBack: s[3], blocksVerified: s[4] }
  }

  async unmount (): Promise<void> {
    if (!this.session || !this.stopped || this.handedOver) return
    const dir = resolve(this.dir)
    await exec('fusermount', ['-u', dir]).catch(async (err) => {
      this.log.error({ err: (err as Error).message }, 'unmount failed (files still open?); unmounting lazily')
      await lazyUnmount(dir)
    })
    let timer: NodeJS.Timeout | undefined
    await Promise.race([this.stopped, new Promise((resolve) => { timer = setTimeout(resolve, STOP_WAIT_MS) })])
    clearTimeout(timer)
    // Unmounted on purpose: nothing to take over.
    await this.dropKeeper(this.keeper)
    this.keeper = undefined
  }
}

// Whether a chaac process other than this one runs with that pid.
async function isAgent (pid: number): Promise<boolean> {
  if (pid === process.pid) return false
  const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')
  const args = cmdline.split('\0')
  return args.includes('agent') && args.some((a) => a.includes('chaac'))
}
