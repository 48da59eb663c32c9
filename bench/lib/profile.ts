// Reads the V8 CPU profiles (`node --cpu-prof`) an agent left in a folder and
// names the functions that took the most time on its main thread. tsx runs a
// loader thread with a profile of its own: of each process's profiles (files
// CPU.<date>.<pid>.<thread>.<n>.cpuprofile) the largest is the main thread's.
import { readFile, readdir, stat } from 'node:fs/promises'
import { join, relative } from 'node:path'

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }

interface CpuProfile {
  nodes: Array<{ id: number, callFrame: CallFrame, children?: number[] }>
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

export interface ProfileEntry {
  fn: string
  where: string
  ms: number
  share: number
}

export interface ProfileSummary {
  files: string[]
  /** Wall time covered by the profiles, ms. */
  totalMs: number
  /** Time not idle and not loading modules, ms. */
  busyMs: number
  /** Module loading at the agent's start (tsx compiling TypeScript), ms; left out of busyMs. */
  startupMs: number
  /** Functions by self time. */
  top: ProfileEntry[]
  /** Functions of the project (src/) by the time spent in them and in what they call outside src/. */
  project: ProfileEntry[]
}

/** Frames that load code: the agent's start-up under tsx, not its work. */
function isStartup (cf: CallFrame): boolean {
  return /^node:internal\/(modules|source_map|bootstrap)\//.test(cf.url) || cf.url.includes('/node_modules/tsx/') ||
    ['makeSyncRequest', 'waitForWorker'].includes(cf.functionName)
}

/** The main-thread profile of each process in `dir`: the largest file per PID. */
async function mainThreadProfiles (dir: string): Promise<string[]> {
  const byPid = new Map<string, { file: string, size: number }>()
  for (const name of await readdir(dir).catch(() => [] as string[])) {
    if (!name.endsWith('.cpuprofile')) continue
    const pid = name.split('.')[3] ?? name
    const size = (await stat(join(dir, name))).size
    const best = byPid.get(pid)
    if (best === undefined || size > best.size) byPid.set(pid, { file: join(dir, name), size })
  }
  return [...byPid.values()].map((x) => x.file)
}

/** Self time per function over the main-thread profiles in `dir`, the `n` largest first. */
export async function summarizeProfiles (dir: string, project: string, n = 8): Promise<ProfileSummary | null> {
  const files = await mainThreadProfiles(dir)
  if (files.length === 0) return null
  const self = new Map<string, { fn: string, where: string, ms: number }>()
  const inProject = new Map<string, { fn: string, where: string, ms: number }>()
  const add = (map: typeof self, cf: CallFrame, ms: number): void => {
    const url = cf.url.replace(/^file:\/\//, '')
    const file = url.startsWith(project) ? relative(project, url) : url.replace(/^.*node_modules\//, 'node_modules/')
    // tsx hands node each TypeScript module as one line of JavaScript: there, only the column tells functions apart.
    const where = url === '' ? '' : cf.lineNumber === 0 && url.endsWith('.ts') ? `${file} (col ${cf.columnNumber + 1})` : `${file}:${cf.lineNumber + 1}`
    const fn = cf.functionName === '' ? '(anonymous)' : cf.functionName
    const key = `${fn} ${where}`
    const entry = map.get(key) ?? { fn, where, ms: 0 }
    entry.ms += ms
    map.set(key, entry)
  }
  let totalMs = 0
  let startupMs = 0
  let busyMs = 0
  for (const file of files) {
    const p = JSON.parse(await readFile(file, 'utf8')) as CpuProfile
    totalMs += (p.endTime - p.startTime) / 1000
    const nodes = new Map(p.nodes.map((node) => [node.id, node]))
    const parent = new Map<number, number>()
    for (const node of p.nodes) for (const c of node.children ?? []) parent.set(c, node.id)
    for (let i = 0; i < p.samples.length; i++) {
      const cf = nodes.get(p.samples[i])?.callFrame
      if (cf === undefined || cf.functionName === '(idle)') continue
      const ms = (p.timeDeltas[i] ?? 0) / 1000
      // The sample's stack: loading code anywhere on it makes it start-up time.
      const stack: CallFrame[] = []
      for (let id: number | undefined = p.samples[i]; id !== undefined; id = parent.get(id)) {
        const frame = nodes.get(id)?.callFrame
        if (frame !== undefined) stack.push(frame)
      }
      if (stack.some(isStartup)) {
        startupMs += ms
        continue
      }
      busyMs += ms
      add(self, cf, ms)
      const own = stack.find((f) => f.url.includes('/src/'))
      if (own !== undefined) add(inProject, own, ms)
    }
  }
  const rank = (map: typeof self): ProfileEntry[] => [...map.values()].sort((a, b) => b.ms - a.ms).slice(0, n)
    .map((e) => ({ ...e, share: busyMs > 0 ? e.ms / busyMs : 0 }))
  return { files: files.map((f) => relative(dir, f)), totalMs, busyMs, startupMs, top: rank(self), project: rank(inProject) }
}
