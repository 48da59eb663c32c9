// A throwaway S3 object store on loopback, for tests and benchmarks: a Ceph
// cluster of one monitor and one OSD keeping its objects in RAM (memstore),
// with a RADOS Gateway in front. Everything lives in a private folder with its
// own ceph.conf, fsid and ports, so several can run side by side and nothing
// touches /etc/ceph, /var/lib/ceph or /var/log/ceph. The daemons are children
// of this process, killed by PID on stop.
// Needs the Debian packages ceph-mon, ceph-osd and radosgw, and root.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes, randomUUID } from 'node:crypto'
import { mkdir, mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises'
import { connect, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)
const GiB = 1024 ** 3

export interface CephOptions {
  /** The gateway's port on 127.0.0.1; a free one by default. */
  port?: number
  /**
   * Folder for the cluster's config, logs and metadata; must not hold a
   * cluster already. Kept on stop. By default a fresh temporary folder,
   * removed on stop.
   */
  dir?: string
  /** What the OSD may store, all of it in RAM (memstore); default 4 GiB. */
  memstoreBytes?: number
  /** Deadline for the start; default 60 s. */
  timeoutMs?: number
  /** Progress lines. */
  log?: (s: string) => void
}

export interface CephGateway {
  /** http://127.0.0.1:PORT; S3 clients need path-style requests. */
  endpoint: string
  region: string
  accessKeyId: string
  secretAccessKey: string
  dir: string
  /** The daemons running now: monitor, OSD and the gateway unless stopped. */
  readonly pids: number[]
  /** Kills every daemon, then removes a temporary folder. Safe to call twice. */
  stop: () => Promise<void>
  /** Kills the gateway alone: the object store goes down, the cluster keeps its data. */
  stopGateway: () => Promise<void>
  /** Starts the gateway again on the same port and waits until it answers. */
  startGateway: () => Promise<void>
}

interface Daemon {
  name: string
  child: ChildProcess
  exited: Promise<void>
  gone: boolean
}

export async function startCeph (opts: CephOptions = {}): Promise<CephGateway> {
  const t0 = performance.now()
  const timeoutMs = opts.timeoutMs ?? 60_000
  const deadline = Date.now() + timeoutMs
  const log = opts.log ?? (() => {})
  const since = (): string => `${((performance.now() - t0) / 1000).toFixed(1)} s`
  const memstoreBytes = opts.memstoreBytes ?? 4 * GiB
  if (!Number.isSafeInteger(memstoreBytes) || memstoreBytes <= 0) throw new RangeError(`memstoreBytes must be a positive integer, not ${memstoreBytes}`)
  // A port taken by another server would answer the gateway's readiness probe.
  const [monPort, port] = await freePorts([0, opts.port ?? 0])
  const temporary = opts.dir === undefined
  const dir = opts.dir ?? await mkdtemp(join(tmpdir(), 'chaac-ceph-'))
  const conf = join(dir, 'ceph.conf')
  const endpoint = `http://127.0.0.1:${port}`
  const accessKeyId = randomBytes(10).toString('hex').toUpperCase()
  const secretAccessKey = randomBytes(20).toString('hex')
  const fsid = randomUUID()
  const daemons: Daemon[] = []
  let gateway: Daemon | undefined
  const running = (): Daemon[] => [...daemons, ...(gateway ? [gateway] : [])]

  // A command of the start, killed at the deadline.
  const run = async (cmd: string, args: string[]): Promise<string> =>
    (await execFileP(cmd, args, { timeout: Math.max(1000, deadline - Date.now()) })).stdout
  const runGateway = async (by: number): Promise<void> => {
    await freePorts([port])
    const gw = await spawnDaemon(dir, 'rgw', 'radosgw', ['-c', conf, '-f', '-n', 'client.rgw'])
    gateway = gw
    await until('the gateway to answer HTTP', by, [...daemons, gw], async () =>
      await fetch(endpoint, { signal: AbortSignal.timeout(1000) }).then(async (res) => {
        await res.body?.cancel()
        return true
      }, () => undefined))
  }

  try {
    for (const sub of ['mon', 'osd', 'log', 'run', 'rgw', 'crash']) await mkdir(join(dir, sub), { recursive: true })
    // 'wx': a folder holding a cluster already would mix two clusters' state.
    await writeFile(conf, config({ dir, fsid, monPort, port, memstoreBytes }), { flag: 'wx' })

    const monmap = join(dir, 'monmap')
    await run('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, monmap])
    await run('ceph-mon', ['-c', conf, '--mkfs', '-i', 'a', '--monmap', monmap])
    daemons.push(await spawnDaemon(dir, 'mon', 'ceph-mon', ['-c', conf, '-f', '-i', 'a']))
    // A TCP probe: the ceph CLI is a Python program, costly to start again and again.
    await until('the monitor to listen', deadline, daemons, async () => await connects(monPort))
    log(`ceph: monitor up after ${since()}`)

    const osdUuid = randomUUID()
    const id = (await run('ceph', ['-c', conf, 'osd', 'new', osdUuid])).trim()
    await run('ceph-osd', ['-c', conf, '--mkfs', '-i', id, '--osd-uuid', osdUuid])
    daemons.push(await spawnDaemon(dir, 'osd', 'ceph-osd', ['-c', conf, '-f', '-i', id]))
    // The gateway starts alongside the OSD's boot: it waits for its pools to be writable.
    await runGateway(deadline)
    // After the gateway has set up its zone and pools, so the two do not race to.
    await run('radosgw-admin', ['-c', conf, 'user', 'create', '--uid', 'chaac', '--display-name', 'Chaac tests',
      '--access-key', accessKeyId, '--secret-key', secretAccessKey])
    log(`ceph: gateway ${endpoint} up after ${since()}`)
  } catch (err) {
    await Promise.all(running().map(kill))
    const tails = await logTails(dir)
    if (temporary) await rm(dir, { recursive: true, force: true })
    throw new Error(`Ceph did not start in ${dir}${temporary ? ' (now removed)' : ''}: ${(err as Error).message}\n${tails}`)
  }

  let stopped = false
  return {
    endpoint,
    // Any region signs; radosgw does not check it against its zonegroup.
    region: 'us-east-1',
    accessKeyId,
    secretAccessKey,
    dir,
    get pids () {
      return running().filter((d) => !d.gone).map((d) => d.child.pid as number)
    },
    stop: async () => {
      if (stopped) return
      stopped = true
      await Promise.all(running().map(kill))
      if (temporary) await rm(dir, { recursive: true, force: true })
    },
    stopGateway: async () => {
      if (gateway) await kill(gateway)
      gateway = undefined
    },
    startGateway: async () => {
      if (gateway) throw new Error('the gateway is running already')
      try {
        await runGateway(Date.now() + timeoutMs)
      } catch (err) {
        if (gateway) await kill(gateway)
        gateway = undefined
        throw new Error(`the gateway did not start again: ${(err as Error).message}\n${await logTails(dir)}`)
      }
    }
  }
}

function config (c: { dir: string, fsid: string, monPort: number, port: number, memstoreBytes: number }): string {
  return `[global]
fsid = ${c.fsid}
mon host = [v2:127.0.0.1:${c.monPort}]
ms bind msgr1 = false
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
# Without it radosgw hangs at start when auth is off.
ms mon client mode = crc secure
# The monitor commits changes every 0.1 s, not every 1 s: the start takes about 3 s instead of 13.
paxos propose interval = 0.1
run dir = ${c.dir}/run
admin socket = ${c.dir}/run/$name.asok
log file = ${c.dir}/log/$name.log
mon cluster log file = default=${c.dir}/log/cluster.$channel.log cluster=${c.dir}/log/cluster.log
keyring = ${c.dir}/keyring
crash dir = ${c.dir}/crash
mon data = ${c.dir}/mon
osd data = ${c.dir}/osd
rgw data = ${c.dir}/rgw
# The monitor would shut itself down on a nearly full temp folder.
mon data avail crit = 0
osd objectstore = memstore
memstore device bytes = ${c.memstoreBytes}
# Objects in plain buffers, not page sets: the OSD gives their RAM back once deleted.
memstore page set = false
# One OSD: pools of one copy in one placement group; no mgr to autoscale them.
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 1
osd pool default pgp num = 1
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
# A killed gateway's watches expire in 3 s, not 30: until they do, a
# restarted gateway waits on them to create a bucket.
osd client watch timeout = 3

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:${c.port}
# The data of deleted and overwritten objects is freed by the garbage
# collector, by default after 2 hours; until then memstore holds it in RAM.
rgw gc obj min wait = 5
rgw gc processor period = 5
`
}

async function spawnDaemon (dir: string, name: string, cmd: string, args: string[]): Promise<Daemon> {
  // Output before the daemon opens its log file, and crashes, land here.
  const out = await open(join(dir, 'log', `${name}.out`), 'a')
  try {
    // setpriv --pdeathsig: the daemon dies with this process even when that
    // is SIGKILLed (a test timing out), so no cluster is left holding RAM.
    // detached: a Ctrl-C on the terminal reaches this process only; on
    // SIGINT an OSD would first write all its memstore to disk.
    const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', cmd, ...args], { stdio: ['ignore', out.fd, out.fd], detached: true })
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve)
      child.once('error', reject)
    })
    const daemon: Daemon = { name, child, gone: false, exited: Promise.resolve() }
    daemon.exited = new Promise((resolve) => child.once('exit', () => {
      daemon.gone = true
      resolve()
    }))
    return daemon
  } finally {
    await out.close()
  }
}

/** SIGKILL: the data is thrown away anyway, and a clean OSD shutdown would save its memstore to disk. */
async function kill (d: Daemon): Promise<void> {
  if (d.gone) return
  d.child.kill('SIGKILL')
  let timer: NodeJS.Timeout | undefined
  await Promise.race([d.exited, new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${d.name} (pid ${d.child.pid}) did not exit after SIGKILL`)), 10_000)
  })]).finally(() => clearTimeout(timer))
}

/** Polls `probe` until it returns a value; fails at the deadline or as soon as one of `daemons` exits. */
async function until<T> (what: string, deadline: number, daemons: Daemon[], probe: () => Promise<T | undefined>): Promise<T> {
  for (;;) {
    const dead = daemons.find((d) => d.gone)
    if (dead) throw new Error(`${dead.name} exited (${dead.child.exitCode ?? dead.child.signalCode}) while waiting for ${what}`)
    const value = await probe()
    if (value !== undefined) return value
    if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
async function connects (port: number): Promise<true | undefined> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.setTimeout(1000)
    const done = (ok: boolean): void => {
      socket.destroy()
      resolve(ok || undefined)
    }
    socket.once('connect', () => done(true))
    socket.once('error', () => done(false))
    socket.once('timeout', () => done(false))
  })
}

/**
 * Ports free on 127.0.0.1 now, all different: bound together, then released.
 * 0 asks for any free port; another number fails if that port is taken.
 */
async function freePorts (ports: number[]): Promise<number[]> {
  const servers: Server[] = []
  try {
    for (const port of ports) {
      const server = createServer()
      servers.push(server)
      await new Promise<void>((resolve, reject) => {
        server.once('error', (err) => reject(new Error(`port ${port} on 127.0.0.1 is taken: ${err.message}`)))
        server.listen(port, '127.0.0.1', resolve)
      })
    }
    return servers.map((s) => (s.address() as { port: number }).port)
  } finally {
    await Promise.all(servers.map(async (s) => await new Promise((resolve) => s.close(resolve))))
  }
}

/** The last lines of every daemon's log, the last started first, for an error message. */
async function logTails (dir: string, lines = 15): Promise<string> {
  const files = ['rgw.out', 'client.rgw.log', 'client.admin.log', 'osd.out', 'osd.0.log', 'mon.out', 'mon.a.log']
  const tails = await Promise.all(files.map(async (f) => {
    const text = await readFile(join(dir, 'log', f), 'utf8').catch(() => '')
    return text.trim() === '' ? '' : `--- ${f}\n${text.trimEnd().split('\n').slice(-lines).join('\n')}\n`
  }))
  return tails.join('')
}
