// A ball's way over bins in a temp directory, for the unit tests of balls/.
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { Balls } from '../../src/balls/balls.ts'
import { LocalBalls } from '../../src/balls/local.ts'
import type { WritePolicy } from '../../src/balls/types.ts'
import { DirCloud } from '../../src/cloud/dir-cloud.ts'
import { Bin, type EvictionPolicy, type Level } from '../../src/store/bin.ts'

export const KiB = 1024

export interface Setup {
  root: string
  store: Balls
  bins: Bin[]
  cloud?: DirCloud
  /** Balls the cloud tier holds, as the data pool would record them. */
  inCloud: Set<string>
}

export async function setup (t: Test, opts: { bins: Array<[Level, number]>, cloud?: boolean, writePolicy?: WritePolicy, eviction?: EvictionPolicy, promoteAfterReads?: number }): Promise<Setup> {
  const root = await mkdtemp(join(tmpdir(), 'chaac-unit-store-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  const bins = opts.bins.map(([level, capacity], i) => new Bin({ level, dir: join(root, `bin${i}`), capacity }))
  await Promise.all(bins.map(async (b) => await b.open()))
  const cloud = opts.cloud === true ? new DirCloud(join(root, 'cloud')) : undefined
  await cloud?.open()
  const inCloud = new Set<string>()
  const local = new LocalBalls({ bins, eviction: opts.eviction ?? 'lru', inCloud: (id) => inCloud.has(id) })
  const store = new Balls({
    local,
    cloud,
    writePolicy: opts.writePolicy ?? 'through',
    inCloud: (id) => inCloud.has(id),
    // Most tests watch the caching itself: every disk read promotes.
    promoteAfterReads: opts.promoteAfterReads ?? 1
  })
  store.writer.on('uploaded', (id) => inCloud.add(id))
  t.teardown(async () => await store.close())
  return { root, store, bins, cloud, inCloud }
}

export const ballPath = (bin: Bin, id: string): string => join(bin.dir, id.slice(0, 2), id)

/** Bytes of ball files actually in a bin's directory. */
export async function bytesOnDisk (bin: Bin): Promise<number> {
  let sum = 0
  for (const sub of await readdir(bin.dir)) {
    if (!/^[0-9a-f]{2}$/.test(sub)) continue
    for (const name of await readdir(join(bin.dir, sub))) sum += (await stat(join(bin.dir, sub, name))).size
  }
  return sum
}

/** Resolves when `local` next emits a copy event for `bin`. */
export function nextCopyInto (local: LocalBalls, bin: Bin): Promise<string> {
  return new Promise((resolve) => {
    const on = (binId: string, ballId: string, _bytes: number, present: boolean): void => {
      if (binId !== bin.id || !present) return
      local.off('copy', on)
      resolve(ballId)
    }
    local.on('copy', on)
  })
}
