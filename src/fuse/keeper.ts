// The keeper: a tiny detached process that only holds a copy of the mount's
// /dev/fuse descriptor. The kernel keeps a FUSE connection for as long as
// any descriptor of it is open, so when the agent dies (kill -9, a crash)
// the mount stays: processes using it wait, instead of failing with
// ENOTCONN, until the next agent takes the connection over (native
// takeover.c). What that agent needs is in keeper.json in the data folder.
import { spawn } from 'node:child_process'
import { readFile, readlink, rename, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'

/** The kernel's FUSE_INIT, as the binding reports it: what a new session must be told it said. */
export interface InitParams {
  major: number
  minor: number
  maxReadahead: number
  flags: number
}

export interface KeeperRecord {
  /** The keeper's process id. */
  pid: number
  /** The keeper's descriptor that holds /dev/fuse. */
  fd: number
  mountpoint: string
  /** What the kernel sent in FUSE_INIT. */
  init: InitParams
  /** What the agent that mounted asked for (FUSE_CAP_* of libfuse 2.9) and its largest write. */
  negotiated: { want: number, maxWrite: number }
  /** The agent serving the mount now, and when it started to. */
  agentPid: number
  since: number
}

const FILE = 'keeper.json'
const KEEPER_FD = 3
// In the keeper's environment: a process that reuses the pid of a dead keeper is not taken for it.
const MARK = 'CHAAC_KEEPER'

// Longer than any host runs (68 years); `sleep infinity` is not in every busybox.
const FOREVER = '2147483647'

/**
 * Starts a keeper of `fd` (the session's /dev/fuse descriptor) for the
 * mount at `mountpoint`; returns its pid. `closeOnExec` marks the agent's
 * other descriptors close-on-exec first (LevelDB opens its files without),
 * so the keeper holds /dev/fuse only.
 */
export async function startKeeper (fd: number, mountpoint: string, closeOnExec: () => number): Promise<{ pid: number, fd: number }> {
  closeOnExec()
  // Its own session: a Ctrl-C or a hangup meant for the agent does not reach it.
  const child = spawn('sleep', [FOREVER], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', fd],
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', [MARK]: resolve(mountpoint) }
  })
  const started = new Promise<number>((resolve, reject) => {
    child.once('spawn', () => resolve(child.pid as number))
    child.once('error', reject)
  })
  // Nothing else of the child is used: a later error (none is expected) must not end the agent.
  child.on('error', () => {})
  child.unref()
  return { pid: await started, fd: KEEPER_FD }
}

/** Written atomically: a reader sees the old record or the new one. */
export async function saveKeeper (data: string, record: KeeperRecord): Promise<void> {
  const file = join(data, FILE)
  await writeFile(file + '.tmp', JSON.stringify(record, null, 2) + '\n')
  await rename(file + '.tmp', file)
}

export async function loadKeeper (data: string): Promise<KeeperRecord | undefined> {
  try {
    return JSON.parse(await readFile(join(data, FILE), 'utf8')) as KeeperRecord
  } catch {
    return undefined
  }
}

export async function removeKeeperRecord (data: string): Promise<void> {
  await rm(join(data, FILE), { force: true })
}

/** Ends a keeper (by pid, only if it is still ours). */
export async function killKeeper (record: Pick<KeeperRecord, 'pid' | 'mountpoint'>): Promise<void> {
  if (await isKeeper(record)) process.kill(record.pid, 'SIGKILL')
}

async function isKeeper ({ pid, mountpoint }: Pick<KeeperRecord, 'pid' | 'mountpoint'>): Promise<boolean> {
  try {
    const env = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0')
    return env.includes(`${MARK}=${resolve(mountpoint)}`)
  } catch {
    return false
  }
}

/**
 * Why the connection of `record` cannot be taken over for the chaac path
 * `mountpoint`, or undefined when it can: the keeper lives, still holds
 * /dev/fuse, and the chaac path is still a FUSE mount of Chaac.
 */
export async function whyNotTakeOver (record: KeeperRecord, mountpoint: string): Promise<string | undefined> {
  if (resolve(record.mountpoint) !== resolve(mountpoint)) return `it kept the mount at ${record.mountpoint}, not at ${mountpoint}`
  if (!await isKeeper(record)) return `its keeper (pid ${record.pid}) is gone`
  const target = await readlink(`/proc/${record.pid}/fd/${record.fd}`).catch(() => '')
  if (target !== '/dev/fuse') return `its keeper (pid ${record.pid}) holds no /dev/fuse descriptor`
  if (!await isChaacMount(mountpoint)) return `${mountpoint} is no longer a Chaac mount`
  return undefined
}

/** True when the top mount at `dir` is a FUSE mount of Chaac (/proc/self/mountinfo: it never touches the mount). */
export async function isChaacMount (dir: string): Promise<boolean> {
  const target = resolve(dir).replace(/ /g, '\\040')
  const info = await readFile('/proc/self/mountinfo', 'utf8')
  const at = info.split('\n').filter((line) => line.split(' ')[4] === target)
  const top = at[at.length - 1]
  if (top === undefined) return false
  const after = top.split(' - ')[1]?.split(' ') ?? []
  return after[0] === 'fuse.chaac' && after[1] === 'chaac'
}
