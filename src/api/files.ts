// GET /api/v1/files: a directory's entries or a file's attributes, read from
// the namespace this agent holds (no FUSE involved).
import { ChaacError, isChaacError, notFound } from '../errors.ts'
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../meta/schema.ts'
import type { Stat } from '../fs/types.ts'
import type { AgentView } from './agent-view.ts'

/** The most entries one answer lists (sorted by name; `truncated` says when more exist). */
export const MAX_ENTRIES = 10_000

export type EntryType = 'dir' | 'file' | 'symlink' | 'other'

function typeOf (mode: number): EntryType {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'dir'
    case S_IFREG: return 'file'
    case S_IFLNK: return 'symlink'
    default: return 'other'
  }
}

/** Undefined when the path is absolute and names no `.`, `..` or NUL; else why it is not. */
export function badPath (path: string | null): string | undefined {
  if (path === null || path === '') return 'path is required, e.g. /api/v1/files?path=/dir'
  if (!path.startsWith('/')) return `path must be absolute (start with /): ${path}`
  if (path.includes('\0')) return 'path must not contain a NUL character'
  if (path.split('/').some((c) => c === '.' || c === '..')) return `path must not contain . or .. components: ${path}`
  return undefined
}

const attrs = (s: Stat): { size: number, ino: number, mtime: number, mode: number } => ({ size: s.size, ino: s.ino, mtime: s.mtime, mode: s.mode })

/** The listing or the attributes; throws CHAAC_NOT_FOUND for a path that names nothing. */
export function files (agent: AgentView, path: string): object {
  let ino: number
  try {
    ino = agent.fs.resolve(path)
  } catch (err) {
    // A component that is a file: nothing is found under it either.
    if (isChaacError(err, 'CHAAC_NOT_DIR')) throw notFound(path)
    throw err
  }
  const stat = agent.fs.getattr(ino)
  const type = typeOf(stat.mode)
  if (type !== 'dir') return { path, type, ...attrs(stat) }
  const names = [...agent.pool.entries(ino).entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)
  const entries = names.slice(0, MAX_ENTRIES).flatMap(([name, child]) => {
    try {
      const s = agent.fs.getattr(child)
      return [{ name, type: typeOf(s.mode), ...attrs(s) }]
    } catch (err) {
      // Removed between the listing and its stat.
      if (err instanceof ChaacError) return []
      throw err
    }
  })
  return { path, type, ...attrs(stat), entries, truncated: names.length > MAX_ENTRIES }
}
