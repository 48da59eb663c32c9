// Mount propagation of the folder that holds the chaac path. Docker accepts
// `-v SRC:DST:rslave` only when SRC lies on a shared (or slave) mount, and
// only then does a container that binds the folder see each new mount of the
// chaac path (after a clean restart of the agent). Where the host's mounts
// are private, the agent makes that folder a shared mount of its own, as a
// user would by hand (`mount --bind F F && mount --make-shared F`).
import { execFile } from 'node:child_process'
import { readFile, realpath } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { promisify } from 'node:util'

const exec = promisify(execFile)

export type Propagation = 'shared' | 'slave' | 'private'

interface MountLine { mountpoint: string, propagation: Propagation }

function unescape (field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

function parse (info: string): MountLine[] {
  return info.split('\n').filter((l) => l !== '').map((line) => {
    const [before] = line.split(' - ')
    const fields = before.split(' ')
    const optional = fields.slice(6)
    const propagation: Propagation = optional.some((f) => f.startsWith('shared:'))
      ? 'shared'
      : optional.some((f) => f.startsWith('master:')) ? 'slave' : 'private'
    return { mountpoint: unescape(fields[4]), propagation }
  })
}

/** The mount a path lies on (the last mounted of those at the longest mount point above it). */
async function mountOf (path: string): Promise<MountLine> {
  const lines = parse(await readFile('/proc/self/mountinfo', 'utf8'))
  let best: MountLine = { mountpoint: '/', propagation: 'private' }
  for (const l of lines) {
    const above = l.mountpoint === '/' || path === l.mountpoint || path.startsWith(l.mountpoint + '/')
    if (above && l.mountpoint.length >= best.mountpoint.length) best = l
  }
  return best
}

/**
 * Makes the folder that holds `chaacPath` a shared mount unless it lies on
 * a shared or slave one already. Returns the folder and what was done.
 * Submounts under the folder come along (`--rbind`), so nothing mounted
 * there is hidden.
 */
export async function shareParent (chaacPath: string): Promise<{ folder: string, done: 'nothing' | 'made-shared' | 'bound-and-shared', was: Propagation }> {
  const folder = await realpath(dirname(resolve(chaacPath)))
  const on = await mountOf(folder)
  if (on.propagation !== 'private') return { folder, done: 'nothing', was: on.propagation }
  if (on.mountpoint !== folder) await exec('mount', ['--rbind', folder, folder])
  await exec('mount', ['--make-shared', folder])
  return { folder, done: on.mountpoint === folder ? 'made-shared' : 'bound-and-shared', was: 'private' }
}
