// Kernel requests -> Filesystem calls. Translation only: arguments in, exactly
// one reply out (the result, or an errno), and never later than the op's deadline.
import { constants } from 'node:os'
import { notFound } from '../errors.ts'
import type { Filesystem } from '../fs/filesystem.ts'
import type { AttrChanges, Opened, Stat } from '../fs/types.ts'
import type { FsErrors } from './fs-errors.ts'
import { binding as native, OP_NAMES, Op, SA, SetAttr, type Req, type SessionHandle } from './lowlevel.ts'

/** Milliseconds before an unanswered request gets ETIMEDOUT, by op name. */
export type OpTimeouts = { default: number } & Record<string, number>

const { ETIMEDOUT } = constants.errno
const O_ACCMODE = 3
const O_WRONLY = 1

function attrs (st: Stat): Float64Array {
  return Float64Array.of(st.ino, st.mode, st.nlink, st.uid, st.gid, st.rdev, st.size, st.blocks, st.atime, st.mtime, st.ctime, st.blksize)
}

function changes (valid: number, v: Float64Array): AttrChanges {
  const out: AttrChanges = {}
  if ((valid & SetAttr.MODE) !== 0) out.mode = v[SA.MODE]
  if ((valid & SetAttr.UID) !== 0) out.uid = v[SA.UID]
  if ((valid & SetAttr.GID) !== 0) out.gid = v[SA.GID]
  if ((valid & SetAttr.SIZE) !== 0) out.size = v[SA.SIZE]
  if ((valid & SetAttr.ATIME_NOW) !== 0) out.atime = Date.now()
  else if ((valid & SetAttr.ATIME) !== 0) out.atime = v[SA.ATIME]
  if ((valid & SetAttr.MTIME_NOW) !== 0) out.mtime = Date.now()
  else if ((valid & SetAttr.MTIME) !== 0) out.mtime = v[SA.MTIME]
  return out
}

// READ replies from this size up are made on libuv's pool (replyBufLater).
const REPLY_LATER_FROM = 128 * 1024
// The smallest directory entry the kernel accepts takes 32 bytes.
const MIN_DIRENT = 32
// An entry for inode 0: the kernel keeps "no such name" for the entry timeout.
const NO_ENTRY = new Float64Array(12)

export class FuseOps {
  private inFlight = 0
  private drainedWaiters: Array<() => void> = []
  // Requests answered later, with their deadlines: swept once a second, as a
  // timer per request costs more than many a request.
  private readonly waiting = new Set<{ deadline: number, expire: () => void }>()
  private sweeper?: NodeJS.Timeout
  /** The session whose read threads take read plans; unset before it is destroyed. */
  session?: SessionHandle
  // The read threads' bytes served when their ball reads were last noted.
  private nativeBytes = 0
  /** The largest write the kernel sent so far (how large its requests are, for /status). */
  largestWrite = 0
  /** READDIRs from the start: listings the kernel did not have cached. */
  listings = 0
  /** FLUSHes from the start: closes of handles that may have written. */
  flushes = 0
  /** Set after a takeover: a handle the previous agent gave out is adopted at its first use. */
  adoptHandles = false
  /** Called with the kernel's FUSE_INIT, once it went through: [major, minor, maxReadahead, flags, want, maxWrite]. */
  onInit?: (values: Float64Array) => void

  constructor (
    private readonly fs: Filesystem,
    /** Turns errors into errnos; logs and counts those a program sees as failures. */
    private readonly errors: FsErrors,
    private readonly timeouts: OpTimeouts,
    private readonly onStopped: () => void,
    /** Whether the kernel may remember names that do not exist (only this mount changes the namespace). */
    private readonly negativeEntries = false
  ) {}

  /** Resolves once every request received so far has been answered. */
  async drained (): Promise<void> {
    if (this.inFlight === 0) return
    await new Promise<void>((resolve) => this.drainedWaiters.push(resolve))
  }

  readonly dispatch = (op: number, req: Req | null, ino: number, ...a: any[]): void => {
    const fs = this.fs
    const r = req as Req
    switch (op) {
      case Op.LOOKUP: return this.lookup(r, ino, a[0])
      case Op.FORGET:
        fs.forget(ino, a[0]).catch((err) => this.errors.errnoOf(err, 'forget', ino))
        return
      case Op.GETATTR: return this.answer(r, op, ino, () => fs.getattr(ino), (st) => native.replyAttr(r, attrs(st)))
      case Op.SETATTR:
        return this.answer(r, op, ino, async () => await this.changing(ino, async () => await fs.setattr(ino, changes(a[0], a[1]), a[2] ?? undefined)),
          (st) => native.replyAttr(r, attrs(st)))
      case Op.READLINK: return this.answer(r, op, ino, () => fs.readlink(ino), (target) => native.replyReadlink(r, target))
      case Op.MKNOD: return this.entry(r, op, ino, async () => await fs.mknod(ino, a[0], a[1], a[2], { uid: a[3], gid: a[4] }))
      case Op.MKDIR: return this.entry(r, op, ino, async () => await fs.mkdir(ino, a[0], a[1], { uid: a[2], gid: a[3] }))
      case Op.UNLINK: return this.done(r, op, ino, async () => await fs.unlink(ino, a[0]))
      case Op.RMDIR: return this.done(r, op, ino, async () => await fs.rmdir(ino, a[0]))
      case Op.SYMLINK: return this.entry(r, op, ino, async () => await fs.symlink(a[1], ino, a[0], { uid: a[2], gid: a[3] }))
      case Op.RENAME: return this.done(r, op, ino, async () => await fs.rename(ino, a[0], a[1], a[2]))
      case Op.LINK: return this.entry(r, op, ino, async () => await fs.link(ino, a[0], a[1]))
      case Op.OPEN:
        // A handle only read commits nothing at a close (its release still stores lazy changes): no FLUSH round trip.
        return this.answer(r, op, ino, async () => await this.open(ino, a[0]), (o) => native.replyOpen(r, o.fd, o.keepCache, (a[0] & O_ACCMODE) === 0),
          async (o) => {
            this.dropPlans(ino)
            await fs.release(o.fd)
          })
      case Op.READ:
        return this.answer(r, op, ino, async () => {
          const fh = this.fh(a[0], ino)
          const view = await fs.readView(fh, a[1], a[2])
          if (view) return { buf: view, n: view.length }
          const buf = Buffer.allocUnsafe(a[1])
          return { buf, n: await fs.read(fh, buf, a[1], a[2]) }
        }, ({ buf, n }) => {
          // A small reply costs less than the hop to the pool and back (a small file read after another waits for it).
          if (n < REPLY_LATER_FROM) return native.replyBuf(r, buf, n)
          // Made on a thread of the pool; the session stays until it is.
          const replied = native.replyBufLater(r, buf, n)
          this.inFlight++
          void replied.finally(() => this.ended())
          return 0
        })
      case Op.WRITE:
        if (a[1].length > this.largestWrite) this.largestWrite = a[1].length
        return this.answer(r, op, ino, async () => await fs.write(this.fh(a[0], ino), a[1], a[2]), (n) => native.replyWrite(r, n))
      case Op.FLUSH:
        this.flushes++
        return this.done(r, op, ino, async () => await fs.flush(this.fh(a[0], ino)))
      case Op.RELEASE: return this.done(r, op, ino, async () => await fs.release(this.fh(a[0], ino)))
      case Op.FSYNC: return this.done(r, op, ino, async () => await fs.fsync(this.fh(a[0], ino)))
      case Op.OPENDIR:
        return this.answer(r, op, ino, async () => await fs.opendir(ino), (o) => native.replyOpendir(r, o.fd, o.keepCache), (o) => fs.releasedir(o.fd))
      case Op.READDIR:
        if (a[2] === 0) this.listings++
        return this.answer(r, op, ino, () => fs.readdir(this.fh(a[0], ino), a[2], Math.ceil(a[1] / MIN_DIRENT)), (list) => {
          const inoModes = new Float64Array(list.length * 2)
          list.forEach((e, i) => { inoModes[2 * i] = e.ino; inoModes[2 * i + 1] = e.mode })
          native.replyDirents(r, a[1], list.map((e) => e.name), inoModes, a[2])
          return 0
        })
      case Op.RELEASEDIR: return this.done(r, op, ino, () => fs.releasedir(a[0]))
      case Op.FSYNCDIR: return this.done(r, op, ino, async () => await fs.syncMetadata())
      case Op.STATFS:
        return this.answer(r, op, ino, () => fs.statfs(), (s) => native.replyStatfs(r, Float64Array.of(
          s.bsize, s.frsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.favail, s.fsid, s.flag, s.namemax)))
      case Op.CREATE:
        return this.answer(r, op, ino, async () => {
          const c = await fs.create(ino, a[0], a[1], a[2], { uid: a[3], gid: a[4] })
          // Another agent's file of that name may have been opened (and truncated, or reloaded) instead.
          this.dropPlans(c.stat.ino)
          return c
        },
          (c) => native.replyCreate(r, attrs(c.stat), c.fd, false),
          async (c) => {
            await fs.release(c.fd)
            await fs.forget(c.stat.ino, 1)
          })
      case Op.STOPPED: return this.onStopped()
      case Op.BALL_READS: return fs.noteBallReads(a[0], a[1], this.nativeBytesSince())
      case Op.INIT: return this.onInit?.(a[0])
      default:
        native.replyErr(r, constants.errno.ENOSYS)
    }
  }

  // An open answers with a read plan installed when the file is simple
  // enough for the binding's read threads. The plan is made and installed
  // within the open's own turn of the event loop after the file's content
  // epoch is checked, so no change can come in between.
  private async open (ino: number, flags: number): Promise<Opened> {
    const o = await this.changing(ino, async () => await this.fs.openFile(ino, flags))
    const session = this.session
    if (!session || (flags & O_ACCMODE) === O_WRONLY) return o
    try {
      const plan = await this.fs.readPlan(o.fd)
      if (plan && this.session === session && this.fs.isOpen(o.fd) && this.fs.epochOf(ino) === plan.epoch) {
        native.setReadPlan(session, o.fd, ino, plan.size, plan.chunkSize, plan.skipCache, plan.chunks)
      }
    } catch {
      // Only a speed-up (a ball header unreadable, say): the JS path serves the handle's reads.
    }
    return o
  }

  // Runs work that may change an open file's bytes (a truncate, a reload of
  // a version committed elsewhere): if it did, the read plans of the file's
  // handles go before the answer, so that no read after it sees old bytes.
  // (The binding drops them itself when a write or a truncation arrives.)
  private async changing<T> (ino: number, work: () => Promise<T>): Promise<T> {
    const epoch = this.fs.epochOf(ino)
    try {
      return await work()
    } finally {
      if (this.fs.epochOf(ino) !== epoch) this.dropPlans(ino)
    }
  }

  // A process keeps using a descriptor it opened under the previous agent.
  private fh (fh: number, ino: number): number {
    if (this.adoptHandles && !this.fs.isOpen(fh)) this.fs.adopt(fh, ino)
    return fh
  }

  private dropPlans (ino: number): void {
    if (this.session) native.dropReadPlans(this.session, ino)
  }

  /** [reads served by the read threads, ball reads, bytes, reads handed to JS, blocks verified] */
  // Bytes the read threads served since the last call: the notes of ball reads carry counts only.
  private nativeBytesSince (): number {
    const bytes = this.readStats()?.[2] ?? this.nativeBytes
    const since = bytes - this.nativeBytes
    this.nativeBytes = bytes
    return since
  }

  readStats (): Float64Array | undefined {
    return this.session ? native.readStats(this.session) : undefined
  }

  private lookup (req: Req, parent: number, name: string): void {
    this.answer(req, Op.LOOKUP, parent, () => {
      const st = this.fs.lookup(parent, name)
      if (st === undefined && !this.negativeEntries) throw notFound(name)
      return st ?? null
    }, (st) => native.replyEntry(req, st === null ? NO_ENTRY : attrs(st)), async (st) => { if (st !== null) await this.fs.forget(st.ino, 1) })
  }

  private sweep (): void {
    const now = Date.now()
    for (const w of this.waiting) if (w.deadline <= now) w.expire()
    if (this.waiting.size === 0) {
      clearInterval(this.sweeper)
      this.sweeper = undefined
    }
  }

  // Ops that answer with an entry give the kernel a reference to the inode.
  private entry (req: Req, op: number, ino: number, work: () => Stat | Promise<Stat>): void {
    this.answer(req, op, ino, work, (st) => native.replyEntry(req, attrs(st)), async (st) => await this.fs.forget(st.ino, 1))
  }

  private done (req: Req, op: number, ino: number, work: () => void | Promise<void>): void {
    this.answer(req, op, ino, work, () => native.replyErr(req, 0))
  }

  // One request (or its reply made later) less in flight.
  private ended (): void {
    if (--this.inFlight === 0) for (const wake of this.drainedWaiters.splice(0)) wake()
  }

  /**
   * Runs `work` and replies with its result or its errno, once. A result the
   * kernel did not take (the request was interrupted, or timed out first) is
   * handed to `undo`, so that handles and references do not leak.
   */
  private answer<T> (req: Req, op: number, ino: number, work: () => T | Promise<T>, reply: (value: T) => number, undo?: (value: T) => unknown): void {
    const name = OP_NAMES[op]
    let answered = false
    let timeout: { deadline: number, expire: () => void } | undefined
    this.inFlight++
    const settle = (): void => {
      answered = true
      if (timeout) this.waiting.delete(timeout)
      this.ended()
    }
    const fail = (err: unknown): void => {
      if (answered) return
      settle()
      native.replyErr(req, this.errors.errnoOf(err, name, ino))
    }
    const succeed = (value: T): void => {
      let rc = -1
      if (!answered) {
        // Settled after the reply, which may leave work of its own in flight (replyBufLater).
        try {
          rc = reply(value)
        } finally {
          settle()
        }
      }
      if (rc !== 0) Promise.resolve(undo?.(value)).catch((err) => this.errors.errnoOf(err, name, ino))
    }
    try {
      const result = work()
      if (result instanceof Promise) {
        const ms = this.timeouts[name] ?? this.timeouts.default
        timeout = {
          deadline: Date.now() + ms,
          expire: () => {
            this.errors.timedOut(name, ino, ms)
            settle()
            native.replyErr(req, ETIMEDOUT)
          }
        }
        this.waiting.add(timeout)
        this.sweeper ??= setInterval(() => this.sweep(), 1000).unref()
        result.then(succeed, fail)
      } else {
        succeed(result)
      }
    } catch (err) {
      fail(err)
    }
  }
}
