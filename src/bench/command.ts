// `chaac bench [PATH]`: a short run of the benchmark workloads on any folder
// (usually the chaac path), with a progress bar on the terminal and a summary
// table at the end. Everything happens in a fresh subfolder that is removed
// afterwards, even on failure or Ctrl-C.
import cliProgress from 'cli-progress'
import { Command, InvalidArgumentError, Option } from 'commander'
import { randomBytes } from 'node:crypto'
import { mkdir, rm, stat, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { formatSize, parseSize } from '../units.ts'
import { SMALL_FILE_PHASES, randomReads, seqRead, seqWrite, smallFiles, type SmallFilePhase } from './workloads.ts'

export const BENCH_GROUPS = ['seq', 'random', 'small-files'] as const
type Group = typeof BENCH_GROUPS[number]

export interface BenchResult {
  id: string
  label: string
  value: number
  unit: string
}

export interface BenchOptions {
  size: number
  seconds: number
  files: number
  fileSize: number
  only: Group[]
  dropCaches: boolean
  progress: boolean
}

interface Flags {
  size: string
  seconds: string
  files: string
  fileSize: string
  only: string
  dropCaches?: boolean
  json?: boolean
  progress: boolean
}

function positive (flag: string, text: string, integer: boolean): number {
  const n = Number(text)
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new InvalidArgumentError(`${flag} must be a positive ${integer ? 'integer' : 'number'}`)
  }
  return n
}

function sizeFlag (flag: string, text: string): number {
  try {
    const n = parseSize(text)
    if (n <= 0) throw new RangeError('must be above zero')
    return n
  } catch (err) {
    throw new InvalidArgumentError(`${flag}: ${(err as Error).message}`)
  }
}

export function benchCommand (): Command {
  return new Command('bench')
    .description('measure a folder (e.g. the chaac path): sequential write/read, 4 KiB random reads, small files')
    .argument('[path]', 'the folder to measure; a temporary subfolder is made in it and removed afterwards', '.')
    .addOption(new Option('--size <size>', 'size of the sequential file').default('256MiB'))
    .addOption(new Option('--seconds <s>', 'how long the 4 KiB random reads run').default('5'))
    .addOption(new Option('--files <n>', 'how many small files').default('1000'))
    .addOption(new Option('--file-size <size>', 'size of each small file').default('4KiB'))
    .addOption(new Option('--only <list>', `comma-separated workloads: ${BENCH_GROUPS.join(', ')}`).default(BENCH_GROUPS.join(',')))
    .option('--drop-caches', 'drop the kernel caches before the first read (root only: writes /proc/sys/vm/drop_caches)')
    .option('--json', 'print the results as JSON instead of a table')
    .option('--no-progress', 'no progress bar')
    .action(async (path: string, flags: Flags) => {
      const only = flags.only.split(',').map((s) => s.trim()).filter((s) => s !== '')
      for (const g of only) {
        if (!(BENCH_GROUPS as readonly string[]).includes(g)) throw new InvalidArgumentError(`--only: unknown workload '${g}' (${BENCH_GROUPS.join(', ')})`)
      }
      const opts: BenchOptions = {
        size: sizeFlag('--size', flags.size),
        seconds: positive('--seconds', flags.seconds, false),
        files: positive('--files', flags.files, true),
        fileSize: sizeFlag('--file-size', flags.fileSize),
        only: only as Group[],
        dropCaches: flags.dropCaches === true,
        progress: flags.progress && flags.json !== true && process.stderr.isTTY === true
      }
      const results = await runBench(resolve(path), opts)
      if (flags.json === true) console.log(JSON.stringify({ path: resolve(path), options: opts, results }, null, 2))
      else console.log(summaryTable(resolve(path), opts, results))
    })
}

/** A progress bar on stderr for one step, or nothing when there is no terminal. */
function stepBar (enabled: boolean, label: string, total: number, unit: string): { update: (n: number) => void, stop: () => void } {
  if (!enabled) return { update: () => {}, stop: () => {} }
  const bar = new cliProgress.SingleBar({
    format: `${label.padEnd(22)} [{bar}] {percentage}% | {shown} of {totalShown}`,
    hideCursor: true,
    stopOnComplete: false,
    barsize: 30
  }, cliProgress.Presets.shades_classic)
  const show = (n: number): string => unit === 'bytes' ? formatSize(n) : unit === 's' ? `${n.toFixed(1)} s` : `${Math.round(n)} ${unit}`
  bar.start(total, 0, { shown: show(0), totalShown: show(total) })
  return {
    update: (n: number) => bar.update(n, { shown: show(n) }),
    stop: () => bar.stop()
  }
}

async function dropKernelCaches (): Promise<void> {
  await writeFile('/proc/sys/vm/drop_caches', '3')
}

/** Runs the chosen workloads in a fresh subfolder of `path` and removes it afterwards. */
export async function runBench (path: string, opts: BenchOptions): Promise<BenchResult[]> {
  if (!(await stat(path)).isDirectory()) throw new Error(`${path} is not a folder`)
  const dir = join(path, `.chaac-bench-${process.pid}-${randomBytes(4).toString('hex')}`)
  await mkdir(dir)
  const results: BenchResult[] = []
  const MB = 1e6
  // Ctrl-C: remove the folder, then exit as interrupted.
  const onSignal = (): void => {
    rm(dir, { recursive: true, force: true }).finally(() => process.exit(130))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  try {
    const want = (g: Group): boolean => opts.only.includes(g)
    const seqFile = join(dir, 'seq.bin')
    if (want('seq') || want('random')) {
      let bar = stepBar(opts.progress, 'sequential write', opts.size, 'bytes')
      const w = await seqWrite(seqFile, opts.size, bar.update)
      bar.stop()
      if (want('seq')) {
        results.push({ id: 'seqWrite', label: `sequential write ${formatSize(opts.size)} + fsync`, value: w / MB, unit: 'MB/s' })
        if (opts.dropCaches) await dropKernelCaches()
        bar = stepBar(opts.progress, 'sequential read', opts.size, 'bytes')
        const first = await seqRead(seqFile, bar.update)
        bar.stop()
        bar = stepBar(opts.progress, 'sequential re-read', opts.size, 'bytes')
        const hot = await seqRead(seqFile, bar.update)
        bar.stop()
        results.push({ id: 'seqRead', label: `sequential read${opts.dropCaches ? ' (kernel caches dropped)' : ''}`, value: first / MB, unit: 'MB/s' })
        results.push({ id: 'seqReadHot', label: 'sequential re-read (hot)', value: hot / MB, unit: 'MB/s' })
      }
      if (want('random')) {
        bar = stepBar(opts.progress, '4 KiB random reads', opts.seconds, 's')
        const iops = await randomReads(seqFile, opts.seconds, bar.update)
        bar.stop()
        results.push({ id: 'randRead', label: `4 KiB random reads, ${opts.seconds} s`, value: iops, unit: 'IOPS' })
      }
      await rm(seqFile, { force: true })
    }
    if (want('small-files')) {
      const bars = new Map<SmallFilePhase, ReturnType<typeof stepBar>>()
      const rates = await smallFiles(join(dir, 'small'), opts.files, opts.fileSize, (phase, done) => {
        let bar = bars.get(phase)
        if (bar === undefined) {
          for (const b of bars.values()) b.stop()
          bar = stepBar(opts.progress, `small files: ${phase}`, opts.files, 'files')
          bars.set(phase, bar)
        }
        bar.update(done)
      })
      for (const b of bars.values()) b.stop()
      for (const phase of SMALL_FILE_PHASES) {
        results.push({ id: phase, label: `${opts.files} files of ${formatSize(opts.fileSize)}: ${phase}`, value: rates[phase], unit: phase === 'list' ? 'entries/s' : 'ops/s' })
      }
    }
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
    await rm(dir, { recursive: true, force: true })
  }
  return results
}

function formatValue (v: number): string {
  return v >= 100 ? Math.round(v).toLocaleString('en-US') : v.toPrecision(3)
}

export function summaryTable (path: string, opts: BenchOptions, results: BenchResult[]): string {
  const width = Math.max(8, ...results.map((r) => r.label.length))
  const vw = Math.max(5, ...results.map((r) => formatValue(r.value).length))
  const lines = [
    `chaac bench: ${path}`,
    '',
    `${'workload'.padEnd(width)}  ${'value'.padStart(vw)}  unit`,
    `${'-'.repeat(width)}  ${'-'.repeat(vw)}  ----`,
    ...results.map((r) => `${r.label.padEnd(width)}  ${formatValue(r.value).padStart(vw)}  ${r.unit}`),
    '',
    'MB = 10^6 bytes. Single runs: repeat for a median, or use `npm run bench` to compare with the local disk, bindfs, GlusterFS and MooseFS.'
  ]
  if (!opts.dropCaches) lines.push('The first read may come from caches (kernel, agent); --drop-caches (root) empties the kernel\'s.')
  return lines.join('\n')
}
