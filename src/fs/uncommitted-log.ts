// Which files hold writes the agent acknowledged and has not committed yet.
// Those writes live only in the agent's memory: when it dies, they are lost.
// After a takeover the processes that made them still hold their
// descriptors, and must learn it (EIO, as a local disk reports a lost
// writeback), never read the old bytes as if their writes had been kept. A
// line is appended when a file gets its first change after a commit and
// when a commit leaves it clean; it reaches the page cache before the write
// is answered, so it survives the agent (not the host, as the writes
// themselves would not either).
import { closeSync, openSync, renameSync, writeSync } from 'node:fs'
import { readFile } from 'node:fs/promises'

// Lines after which the log is rewritten with only the files still uncommitted.
const COMPACT_AFTER = 100_000

// The log is written with plain system calls on the agent's thread: a line
// into the page cache takes a few microseconds, less than a hop through the
// thread pool, and two come with every write + fsync of a database.
export class UncommittedLog {
  private readonly marked = new Set<number>()
  private lines = 0

  private constructor (private readonly file: string, private fd: number, private readonly compactAfter: number) {}

  /** Opens the log afresh; `previous` holds the files an earlier agent left uncommitted. */
  static async open (file: string, compactAfter = COMPACT_AFTER): Promise<{ log: UncommittedLog, previous: Set<number> }> {
    const previous = new Set<number>()
    const text = await readFile(file, 'utf8').catch(() => '')
    for (const line of text.split('\n')) {
      const ino = Number(line.slice(1))
      if (!Number.isSafeInteger(ino) || ino <= 0) continue
      if (line[0] === '+') previous.add(ino)
      else if (line[0] === '-') previous.delete(ino)
    }
    return { log: new UncommittedLog(file, openSync(file, 'w'), compactAfter), previous }
  }

  /** The file has changes not committed yet; written down when this returns. */
  mark (ino: number): void {
    if (this.marked.has(ino)) return
    this.marked.add(ino)
    this.append(`+${ino}\n`)
  }

  /** The file's changes are all committed. */
  clear (ino: number): void {
    if (!this.marked.delete(ino)) return
    this.append(`-${ino}\n`)
  }

  close (): void {
    closeSync(this.fd)
  }

  private append (line: string): void {
    if (++this.lines > this.compactAfter) this.compact()
    writeSync(this.fd, line)
  }

  private compact (): void {
    const tmp = this.file + '.tmp'
    const fresh = openSync(tmp, 'w')
    writeSync(fresh, [...this.marked].map((ino) => `+${ino}\n`).join(''))
    renameSync(tmp, this.file)
    closeSync(this.fd)
    this.fd = fresh
    this.lines = this.marked.size
  }
}
