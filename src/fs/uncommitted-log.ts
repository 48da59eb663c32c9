// Which files hold writes the agent acknowledged and has not committed yet.
// Those writes live only in the agent's memory: when it dies, they are lost.
// After a takeover the processes that made them still hold their
// descriptors, and must learn it (EIO, as a local disk reports a lost
// writeback), never read the old bytes as if their writes had been kept. A
// line is appended when a file gets its first change after a commit and
// when a commit leaves it clean; it reaches the page cache before the write
// is answered, so it survives the agent (not the host, as the writes
// themselves would not either).
import { open, rename, readFile, type FileHandle } from 'node:fs/promises'

// Lines after which the log is rewritten with only the files still uncommitted.
const COMPACT_AFTER = 100_000

export class UncommittedLog {
  private readonly marked = new Set<number>()
  private chain: Promise<unknown> = Promise.resolve()
  private lines = 0

  private constructor (private readonly file: string, private fh: FileHandle, private readonly compactAfter: number) {}

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
    return { log: new UncommittedLog(file, await open(file, 'w'), compactAfter), previous }
  }

  /** The file has changes not committed yet; resolves once that is written down. */
  async mark (ino: number): Promise<void> {
    if (this.marked.has(ino)) return
    this.marked.add(ino)
    await this.append(`+${ino}\n`)
  }

  /** The file's changes are all committed. */
  async clear (ino: number): Promise<void> {
    if (!this.marked.delete(ino)) return
    await this.append(`-${ino}\n`)
  }

  async close (): Promise<void> {
    await this.chain.catch(() => {})
    await this.fh.close()
  }

  private async append (line: string): Promise<void> {
    const run = this.chain.then(async () => {
      if (++this.lines > this.compactAfter) await this.compact()
      await this.fh.write(line)
    })
    this.chain = run.catch(() => {})
    await run
  }

  private async compact (): Promise<void> {
    const tmp = this.file + '.tmp'
    const fresh = await open(tmp, 'w')
    await fresh.write([...this.marked].map((ino) => `+${ino}\n`).join(''))
    await rename(tmp, this.file)
    await this.fh.close()
    this.fh = fresh
    this.lines = this.marked.size
  }
}
