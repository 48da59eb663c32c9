// `npm run cluster`: a three-agent cluster on this machine, for trying it out.
// The pool agent on 127.0.0.2, two agents joining it on 127.0.0.3 and
// 127.0.0.4; with `-- --meta etcd`, three etcd members on 127.0.0.5-7 first
// and three equal agents on 127.0.0.2-4 keeping the metadata there. Each
// agent has its data folder and chaac path under cluster/ in the project
// (git-ignored), one generated cluster secret, and one cloud tier directory
// shared by all with write-through, so that every agent reads the others'
// balls. Ctrl-C stops the agents (the pool last), then the etcd members.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { PROJECT_DIR } from '../src/config.ts'
import { startEtcd, type EtcdCluster } from './lib/etcd.ts'

const ROOT = join(PROJECT_DIR, 'cluster')
const CLI = join(PROJECT_DIR, 'bin', 'chaac.mjs')
const PEER_PORT = 7071
const HTTP_PORT = 7070

interface Member { name: string, host: string, args: string[] }

const metaAt = process.argv.indexOf('--meta')
const engine = metaAt === -1 ? 'leveldb' : process.argv[metaAt + 1]
if (engine !== 'leveldb' && engine !== 'etcd') {
  console.error(`chaac cluster: --meta takes leveldb or etcd, not ${engine ?? 'nothing'}`)
  process.exit(2)
}
const ETCD_HOSTS = ['127.0.0.5', '127.0.0.6', '127.0.0.7']
const etcdUrl = `etcd://${ETCD_HOSTS.map((h) => `${h}:2379`).join(',')}/chaac`
const pool: Member = { name: 'a', host: '127.0.0.2', args: engine === 'etcd' ? ['--meta', etcdUrl] : ['--pool'] }
// The host's Docker has one volume driver named chaac: agent a's (the volumes are the cluster's, seen from every agent).
const joined: Member[] = ['b', 'c'].map((name, i) => ({
  name, host: `127.0.0.${3 + i}`, args: [...(engine === 'etcd' ? ['--meta', etcdUrl] : ['--join', `ws://${pool.host}:${PEER_PORT}`]), '--volume-driver', 'none']
}))
let etcd: EtcdCluster | undefined

const secret = process.env.CHAAC_SECRET ?? randomBytes(24).toString('base64url')
const children: ChildProcess[] = []

async function start (m: Member): Promise<void> {
  const dir = join(ROOT, m.name)
  await mkdir(dir, { recursive: true })
  // A process group of its own: Ctrl-C reaches this script only, which stops the agents in order.
  const child = spawn(process.execPath, [
    CLI, 'agent', ...m.args,
    '--data', join(dir, 'data'), '--mount', join(dir, 'mount'),
    '--listen', `${m.host}:${PEER_PORT}`, '--http', `${m.host}:${HTTP_PORT}`,
    '--cloud', join(ROOT, 'cloud'), '--write', 'through'
  ], { env: { ...process.env, CHAAC_SECRET: secret }, stdio: ['ignore', 'pipe', 'inherit'], detached: true })
  children.push(child)
  let out = ''
  child.stdout?.on('data', (d) => {
    out += String(d)
    process.stdout.write(String(d).replace(/^(?=.)/gm, `[${m.name}] `))
  })
  child.on('exit', (code, signal) => {
    console.log(`[${m.name}] exited (${signal ?? code})`)
    if (!stopping) stop(1)
  })
  // The next agent starts once this one serves its chaac path.
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', () => { if (out.includes('is running')) resolve() })
    child.on('exit', () => reject(new Error(`agent ${m.name} did not start`)))
  })
}

let stopping = false
function stop (code: number): void {
  if (stopping) return
  stopping = true
  // The joined agents first: they commit their open files through the pool.
  const [first, ...rest] = children
  const exited = (c: ChildProcess): Promise<void> => new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) resolve()
    else c.on('exit', () => resolve())
  })
  for (const c of rest) c.kill('SIGTERM')
  void Promise.all(rest.map(exited)).then(async () => {
    first?.kill('SIGTERM')
    if (first) await exited(first)
    await etcd?.stop()
    process.exit(code)
  })
}

process.on('SIGINT', () => stop(0))
process.on('SIGTERM', () => stop(0))
// Should this script end another way, the agents end with it.
process.on('exit', () => { for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM') })

try {
  if (engine === 'etcd') {
    etcd = await startEtcd({ hosts: ETCD_HOSTS, root: join(ROOT, 'etcd'), log: (line) => console.log(`[etcd] ${line}`) })
  }
  for (const m of [pool, ...joined]) await start(m)
} catch (err) {
  console.error(`chaac cluster: ${(err as Error).message}`)
  stop(1)
}
if (!stopping) {
  console.log(`
A cluster of three agents is running (cluster secret: ${secret}).
${[pool, ...joined].map((m) => `  ${m.name}: chaac path ${join(ROOT, m.name, 'mount')}   status http://${m.host}:${HTTP_PORT}/status`).join('\n')}
${engine === 'etcd' ? `The metadata is in ${etcdUrl} (three etcd members, logs under ${join(ROOT, 'etcd')}): kill any agent or member and the others go on.\n` : ''}Write a file under one chaac path and read it under another; GET /api/v1/bins on any agent lists every bin.
Press Ctrl-C to stop all three.`)
}
