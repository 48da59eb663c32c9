// Facts about the machine and the source a benchmark ran on, for its results file.
import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { availableParallelism, cpus, release, totalmem } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const PROJECT = resolve(import.meta.dirname, '..', '..')

/** Cores, CPU model, memory, kernel and Node version. */
export async function machineBasics (): Promise<Record<string, string>> {
  const meminfo = await readFile('/proc/meminfo', 'utf8').catch(() => '')
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(meminfo)?.[1] ?? totalmem() / 1024)
  return {
    nproc: String(availableParallelism()),
    cpu: cpus()[0]?.model ?? '?',
    memory: `${(memKb / 1024 / 1024).toFixed(1)} GiB`,
    kernel: release(),
    node: process.version
  }
}

/** The file system (type and device) holding `path`. */
export async function filesystemOf (path: string): Promise<string> {
  const out = await run('findmnt', ['-n', '-o', 'FSTYPE,SOURCE', '--target', path]).then((r) => r.stdout, () => '?')
  return out.trim().split(/\s+/).join(' on ')
}

/** The commit measured, and how many files under `paths` differed from it in the working tree. */
export async function sourceState (paths: string[]): Promise<string> {
  const commit = (await run('git', ['-C', PROJECT, 'rev-parse', '--short', 'HEAD']).then((r) => r.stdout, () => '?')).trim()
  const changed = (await run('git', ['-C', PROJECT, 'status', '--porcelain', '--', ...paths]).then((r) => r.stdout, () => ''))
    .split('\n').filter((l) => l.trim() !== '').length
  return changed > 0 ? `${commit} + uncommitted changes in ${changed} files under ${paths.join(', ')}` : commit
}

export interface SourceSnapshot {
  /** A short hash over every file, for the results. */
  fingerprint: string
  /** A hash of each file's contents, by path. */
  files: Map<string, string>
}

/**
 * The working-tree contents of the files under `paths`, tracked or not:
 * taken at a run's start and end, they tell whether (and which) source
 * changed meanwhile (agents that restart would mix two versions), which
 * sourceState cannot when the changed files were changed already.
 */
export async function sourceSnapshot (paths: string[]): Promise<SourceSnapshot> {
  const listed = await run('git', ['-C', PROJECT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', ...paths]).then((r) => r.stdout, () => '')
  const files = new Map<string, string>()
  const all = createHash('sha256')
  for (const file of [...new Set(listed.split('\0').filter((f) => f !== ''))].sort()) {
    const hash = createHash('sha256').update(await readFile(join(PROJECT, file)).catch(() => Buffer.alloc(0))).digest('hex')
    files.set(file, hash)
    all.update(`${file}\0${hash}\0`)
  }
  return { fingerprint: all.digest('hex').slice(0, 12), files }
}

/** The files added, removed or changed between two snapshots. */
export function changedFiles (before: SourceSnapshot, after: SourceSnapshot): string[] {
  return [...new Set([...before.files.keys(), ...after.files.keys()])].sort().filter((f) => before.files.get(f) !== after.files.get(f))
}

/** How the benchmark was started: the npm script when there was one, else the direct command. */
export function commandLine (file: string): string {
  const args = process.argv.slice(2).join(' ')
  const script = process.env.npm_lifecycle_event
  return script !== undefined && script !== ''
    ? `npm run ${script}${args ? ` -- ${args}` : ''}`
    : `node bin/run-ts.mjs ${file}${args ? ` ${args}` : ''}`
}
