// `chaac bench` on a plain temporary folder, tiny sizes: the summary names
// every workload with a positive rate, and the folder is left as it was.
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'

const CLI = resolve(import.meta.dirname, '..', '..', 'bin', 'chaac.mjs')

async function chaac (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => { stdout += String(d) })
    child.stderr.on('data', (d) => { stderr += String(d) })
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000)
    child.on('error', reject)
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })
}

t.test('chaac bench - a summary table of every workload on a temp folder', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-bench-test-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const r = await chaac(['bench', dir, '--size', '2MiB', '--seconds', '0.2', '--files', '20'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, `chaac bench: ${dir}`)
  const rows = [
    /sequential write 2\.0 MiB \+ fsync\s+[\d,.]+\s+MB\/s/,
    /sequential read\s+[\d,.]+\s+MB\/s/,
    /sequential re-read \(hot\)\s+[\d,.]+\s+MB\/s/,
    /4 KiB random reads, 0\.2 s\s+[\d,.]+\s+IOPS/,
    /20 files of 4\.0 KiB: create\s+[\d,.]+\s+ops\/s/,
    /20 files of 4\.0 KiB: stat\s+[\d,.]+\s+ops\/s/,
    /20 files of 4\.0 KiB: read\s+[\d,.]+\s+ops\/s/,
    /20 files of 4\.0 KiB: list\s+[\d,.]+\s+entries\/s/,
    /20 files of 4\.0 KiB: delete\s+[\d,.]+\s+ops\/s/
  ]
  for (const row of rows) t.match(r.stdout, row)
  t.same(await readdir(dir), [], 'its temporary subfolder is gone')
})

t.test('chaac bench --json --only small-files - machine-readable rates', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-bench-test-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const r = await chaac(['bench', dir, '--only', 'small-files', '--files', '10', '--file-size', '100', '--json'])
  t.equal(r.code, 0, r.stderr)
  const out = JSON.parse(r.stdout) as { results: Array<{ id: string, value: number, unit: string }> }
  t.same(out.results.map((x) => x.id), ['create', 'stat', 'read', 'list', 'delete'])
  for (const x of out.results) t.ok(x.value > 0 && Number.isFinite(x.value), `${x.id}: ${x.value} ${x.unit}`)
  t.same(await readdir(dir), [])
})

t.test('chaac bench - bad flags and paths fail with a message', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-bench-test-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const bad = await chaac(['bench', dir, '--only', 'nope'])
  t.not(bad.code, 0)
  t.match(bad.stderr, /--only: unknown workload 'nope'/)
  const missing = await chaac(['bench', join(dir, 'absent')])
  t.not(missing.code, 0)
  t.match(missing.stderr, /ENOENT|no such file/)
})
