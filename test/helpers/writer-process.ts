// A writer process of the concurrent-writers stress test (test/helpers/writers.py),
// driven from the test: commands out, result lines in, each wait bounded.
import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { PROJECT } from './agent.ts'
import { withDeadline } from './wait.ts'

const SCRIPT = join(PROJECT, 'test', 'helpers', 'writers.py')

export type Mode = 'buf' | 'direct' | 'mmap'
export type Op = Array<string | number>

export interface RunResult {
  /** Ops finished, each acknowledged on its own line. */
  done: number
  /** "e I ERRNO message" when op I failed (the writer stops its ops there). */
  error?: string
}

export class WriterProcess {
  private readonly child: ChildProcess
  private readonly lines: string[] = []
  private wake?: () => void
  private stderr = ''
  private closed = false
  private readonly gone: Promise<void>

  constructor (readonly name: string) {
    this.child = spawn('python3', [SCRIPT], { stdio: ['pipe', 'pipe', 'pipe'] })
    let partial = ''
    this.child.stdout?.on('data', (d) => {
      const parts = (partial + String(d)).split('\n')
      partial = parts.pop() as string
      this.lines.push(...parts)
      this.wake?.()
    })
    this.child.stderr?.on('data', (d) => { this.stderr += String(d) })
    // A writer that died (e.g. SIGBUS from a mapping when the mount died) must not fail the test on EPIPE.
    this.child.stdin?.on('error', () => {})
    this.gone = new Promise((resolve) => this.child.on('close', () => {
      this.closed = true
      this.wake?.()
      resolve()
    }))
  }

  send (cmd: object): void {
    if (!this.closed) this.child.stdin?.write(JSON.stringify(cmd) + '\n')
  }

  async line (timeoutMs = 120_000): Promise<string> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const next = this.lines.shift()
      if (next !== undefined) return next
      if (this.closed) throw new Error(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}): ${this.stderr}`)
      await withDeadline(new Promise<void>((resolve) => { this.wake = resolve }), Math.max(1, deadline - Date.now()), `a line from ${this.name}`)
    }
  }

  async open (paths: string[], mode: Mode, readonly = false): Promise<void> {
    this.send({ cmd: 'open', paths, mode, readonly })
    await this.expectOk('open')
  }

  async close (): Promise<void> {
    this.send({ cmd: 'close' })
    await this.expectOk('close')
  }

  /** Runs `ops` in order; `onDone` hears of each finished op as its line comes. */
  async run (ops: Op[], onDone?: (i: number) => void): Promise<RunResult> {
    this.send({ cmd: 'run', ops })
    const result: RunResult = { done: 0 }
    for (;;) {
      const line = await this.line()
      if (line === 'end') return result
      if (line.startsWith('d ')) {
        result.done++
        onDone?.(Number(line.slice(2)))
      } else {
        result.error = line
      }
    }
  }

  /** Size and SHA-256 of file `file` read through the descriptor this writer holds. */
  async read (file: number): Promise<{ size: number, sha: string }> {
    this.send({ cmd: 'read', file })
    const line = await this.line()
    const m = /^r (\d+) ([0-9a-f]+)$/.exec(line)
    if (!m) throw new Error(`${this.name} could not read: ${line}`)
    return { size: Number(m[1]), sha: m[2] }
  }

  /** Asks the writer to exit; kills it if it does not within the deadline. */
  async quit (timeoutMs = 20_000): Promise<void> {
    this.send({ cmd: 'quit' })
    this.child.stdin?.end()
    try {
      await withDeadline(this.gone, timeoutMs, `${this.name} to exit`)
    } catch (err) {
      this.child.kill('SIGKILL')
      await withDeadline(this.gone, 10_000, `${this.name} to exit after SIGKILL`)
      throw err
    }
  }

  /** For teardown: gone, however. */
  async kill (): Promise<void> {
    if (!this.closed) this.child.kill('SIGKILL')
    await withDeadline(this.gone, 10_000, `${this.name} to exit after SIGKILL`)
  }

  private async expectOk (what: string): Promise<void> {
    const line = await this.line()
    if (line !== 'ok') throw new Error(`${this.name} ${what}: ${line}`)
  }
}

/** The whole content of a file on the mount, read by `cat` in a child process; the error when it cannot be read. */
export async function readFromChild (path: string, timeoutMs = 60_000): Promise<{ data: Buffer, error?: string }> {
  return await new Promise((resolve) => {
    const child = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'pipe'] })
    const parts: Buffer[] = []
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => parts.push(d))
    child.stderr.on('data', (d) => { stderr += String(d) })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      const data = Buffer.concat(parts)
      resolve(code === 0 ? { data } : { data, error: `cat ${path}: ${signal ?? code} ${stderr.trim()}` })
    })
  })
}
