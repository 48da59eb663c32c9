// Real etcd members on loopback, for tests and `npm run cluster`: one member
// per address (127.0.0.5, 127.0.0.6, ...), each its own process with its own
// data folder and log file under one root, started, killed, restarted and
// stopped by PID. Needs Debian's etcd-server and etcd-client (etcd, etcdctl).
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, open, readFile } from 'node:fs/promises'
import { request } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { createServer } from 'node:net'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)

export interface EtcdOptions {
  /** One member per address, named m0, m1, ... in this order. */
  hosts: string[]
  /**
   * Holds each member's data folder (m0/) and log (m0.log); created if
   * missing. Members whose data folder holds a cluster already start again with it.
   */
  root: string
  /** Every member's client port on its own address; default 2379. */
  clientPort?: number
  /** Every member's peer port on its own address; default 2380. */
  peerPort?: number
  /** Deadline for the start; default 30 s. */
  timeoutMs?: number
  /** Progress lines. */
  log?: (line: string) => void
  /**
   * Clients must speak TLS with a certificate the CA signed (PEM files): the
   * members serve https with `cert`, and etcdctl and the health checks present it too.
   */
  tls?: { ca: string, cert: string, key: string }
}

export interface EtcdMember {
  name: string
  host: string
  /** http://HOST:CLIENT_PORT */
  clientUrl: string
  /** http://HOST:PEER_PORT */
  peerUrl: string
  dataDir: string
  logFile: string
  /** The running process; undefined once killed or stopped. */
  readonly pid: number | undefined
}

export interface EtcdCluster {
  members: EtcdMember[]
  /** HOST:PORT of every member, as etcdctl and the --meta URL take them. */
  endpoints: string[]
  /** The member the running members agree is the leader, polled until they do (default 15 s). */
  leader: (timeoutMs?: number) => Promise<EtcdMember>
  /** Signals the member (SIGKILL by default) and waits until its process is gone. */
  kill: (member: EtcdMember, signal?: NodeJS.Signals) => Promise<void>
  /** Starts a killed member again on its data folder and waits until it answers healthy (default 30 s). */
  restart: (member: EtcdMember, timeoutMs?: number) => Promise<void>
  /** Waits until a leader exists and a put through etcdctl succeeds (default 30 s). */
  waitHealthy: (timeoutMs?: number) => Promise<void>
  /** SIGTERM to every member, SIGKILL to those still there after 1 s. Safe to call twice; keeps the root. */
  stop: () => Promise<void>
}

// The engine batches many operations in one transaction; heartbeat and
// election timeout are etcd's defaults, written out because failover times depend on them.
const TUNING = [
  '--max-txn-ops', '16384', '--max-request-bytes', '10485760', '--quota-backend-bytes', '8589934592',
  '--heartbeat-interval', '100', '--election-timeout', '1000',
  '--logger', 'zap', '--log-outputs', 'stderr'
]

interface Running {
  child: ChildProcess
  exited: Promise<void>
  gone: boolean
}

export async function startEtcd (opts: EtcdOptions): Promise<EtcdCluster> {
  const t0 = performance.now()
  const { hosts, root, clientPort = 2379, peerPort = 2380, timeoutMs = 30_000, log = () => {}, tls } = opts
  const scheme = tls === undefined ? 'http' : 'https'
  const tlsFlags = tls === undefined ? [] : ['--cert-file', tls.cert, '--key-file', tls.key, '--trusted-ca-file', tls.ca, '--client-cert-auth']
  const ctlTls = tls === undefined ? [] : [`--cacert=${tls.ca}`, `--cert=${tls.cert}`, `--key=${tls.key}`]
  if (hosts.length === 0 || new Set(hosts).size !== hosts.length) throw new RangeError(`etcd needs distinct hosts, not [${hosts.join(', ')}]`)
  const members: EtcdMember[] = []
  const running = new Map<EtcdMember, Running>()
  for (const [i, host] of hosts.entries()) {
    const name = `m${i}`
    const member: EtcdMember = {
      name,
      host,
      clientUrl: `${scheme}://${host}:${clientPort}`,
      peerUrl: `http://${host}:${peerPort}`,
      dataDir: join(root, name),
      logFile: join(root, `${name}.log`),
      get pid () {
        const r = running.get(member)
        return r === undefined || r.gone ? undefined : r.child.pid
      }
    }
    members.push(member)
  }
  const endpoints = members.map((m) => `${m.host}:${clientPort}`)
  const initialCluster = members.map((m) => `${m.name}=${m.peerUrl}`).join(',')
  const token = `chaac-${randomBytes(8).toString('hex')}`

  const launch = async (m: EtcdMember, state: 'new' | 'existing'): Promise<Running> => {
    const r = await spawnMember(m.logFile, [
      '--name', m.name, '--data-dir', m.dataDir,
      '--listen-client-urls', m.clientUrl, '--advertise-client-urls', m.clientUrl,
      '--listen-peer-urls', m.peerUrl, '--initial-advertise-peer-urls', m.peerUrl,
      '--initial-cluster', initialCluster, '--initial-cluster-state', state, '--initial-cluster-token', token,
      ...TUNING, ...tlsFlags
    ])
    running.set(m, r)
    return r
  }
  const kill = async (m: EtcdMember, signal: NodeJS.Signals = 'SIGKILL', graceMs = 10_000): Promise<void> => {
    const r = running.get(m)
    if (r === undefined || r.gone) return
    r.child.kill(signal)
    if (await settles(r.exited, graceMs)) return
    if (signal === 'SIGKILL') throw new Error(`etcd ${m.name} (pid ${r.child.pid}) did not exit after SIGKILL`)
    await kill(m, 'SIGKILL')
  }
  const until = async <T>(what: string, deadline: number, watched: EtcdMember[], probe: () => Promise<T | undefined>): Promise<T> => {
    for (;;) {
      const dead = watched.find((m) => running.get(m)?.gone !== false)
      if (dead) throw new Error(`etcd ${dead.name} exited while waiting for ${what}\n${await logTail(dead.logFile)}`)
      const value = await probe()
      if (value !== undefined) return value
      if (Date.now() >= deadline) throw new Error(`timed out waiting for ${what}`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
  const live = (): EtcdMember[] => members.filter((m) => m.pid !== undefined)
  const ctl = async (args: string[], callMs = 3_000): Promise<string> => {
    // No endpoints would make etcdctl dial 127.0.0.1:2379, perhaps the system's etcd.
    if (live().length === 0) throw new Error('no etcd member is running')
    return (await execFileP('etcdctl', [`--endpoints=${live().map((m) => `${scheme}://${m.host}:${clientPort}`).join(',')}`, `--command-timeout=${callMs}ms`, ...ctlTls, ...args],
      { timeout: callMs + 1_000 })).stdout
  }
  const leader = async (timeoutMs = 15_000): Promise<EtcdMember> =>
    await until('the members to agree on a leader', Date.now() + timeoutMs, [], async () => {
      const statuses = await ctl(['endpoint', 'status', '-w', 'json']).then(parseStatus, () => undefined)
      // Every running member must answer and name the same leader, itself one of them.
      if (statuses === undefined || statuses.length !== live().length) return undefined
      const ids = new Set(statuses.map((s) => s.leader))
      const self = statuses.find((s) => s.id === s.leader)
      if (ids.size !== 1 || self === undefined) return undefined
      return live().find((m) => [`${m.host}:${clientPort}`, m.clientUrl].includes(self.endpoint))
    })

  await mkdir(root, { recursive: true })
  try {
    // All checked before any starts: a member started alone would keep a half cluster in its data folder.
    for (const m of members) await ensureFree(m.host, [clientPort, peerPort])
    await Promise.all(members.map(async (m) => await launch(m, 'new')))
    const deadline = Date.now() + timeoutMs
    await Promise.all(members.map(async (m) => await until(`${m.name} to answer healthy`, deadline, members, async () => await healthy(m.clientUrl, tls))))
    log(`etcd: ${members.length} members healthy on ${endpoints.join(',')} after ${((performance.now() - t0) / 1000).toFixed(2)} s`)
  } catch (err) {
    await Promise.all(members.map(async (m) => await kill(m)))
    throw new Error(`etcd did not start under ${root}: ${(err as Error).message}\n${(await Promise.all(members.map(async (m) => await logTail(m.logFile)))).join('')}`)
  }

  let stopping: Promise<void> | undefined
  return {
    members,
    endpoints,
    leader,
    kill: async (m, signal = 'SIGKILL') => await kill(m, signal),
    restart: async (m, timeoutMs = 30_000) => {
      if (m.pid !== undefined) throw new Error(`etcd ${m.name} is running already (pid ${m.pid})`)
      const t1 = performance.now()
      // On a data folder with a WAL etcd rejoins with what it has; the state says it is no newcomer.
      await ensureFree(m.host, [clientPort, peerPort])
      await launch(m, 'existing')
      await until(`${m.name} to answer healthy again`, Date.now() + timeoutMs, [m], async () => await healthy(m.clientUrl, tls))
      log(`etcd: ${m.name} healthy again after ${((performance.now() - t1) / 1000).toFixed(2)} s`)
    },
    waitHealthy: async (timeoutMs = 30_000) => {
      const deadline = Date.now() + timeoutMs
      await leader(timeoutMs)
      await until('a put through etcdctl', deadline, [], async () =>
        await ctl(['put', '/_harness/probe', String(Date.now())]).then(() => true, () => undefined))
    },
    stop: async () => {
      // A leader stopped hands its leadership over first and waits up to 7 s
      // for a member that is stopping too; nothing is lost by cutting that short.
      stopping ??= Promise.all(members.map(async (m) => await kill(m, 'SIGTERM', 1_000))).then(() => {})
      await stopping
    }
  }
}

async function spawnMember (logFile: string, args: string[]): Promise<Running> {
  const out = await open(logFile, 'a')
  try {
    // setpriv --pdeathsig: the member dies with this process even when that
    // is SIGKILLed (a test timing out). detached: a process group of its own,
    // so a Ctrl-C on the terminal reaches the script only, which stops members by PID.
    const child = spawn('setpriv', ['--pdeathsig', 'SIGKILL', '--', 'etcd', ...args], { stdio: ['ignore', out.fd, out.fd], detached: true })
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve)
      child.once('error', reject)
    })
    const r: Running = { child, gone: false, exited: Promise.resolve() }
    r.exited = new Promise((resolve) => child.once('exit', () => {
      r.gone = true
      resolve()
    }))
    return r
  } finally {
    await out.close()
  }
}

/** Whether `promise` settles within `ms`. */
async function settles (promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), ms) })
  try {
    return await Promise.race([promise.then(() => true), expired])
  } finally {
    clearTimeout(timer)
  }
}

/** Fails with a clear message when something listens on one of the ports of `host` already. */
async function ensureFree (host: string, ports: number[]): Promise<void> {
  for (const port of ports) {
    const server = createServer()
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new Error(`${host}:${port} is taken, etcd cannot listen there: ${err.message}`)))
      server.listen(port, host, resolve)
    })
    await new Promise((resolve) => server.close(resolve))
  }
}

/** GET /health answers {"health":"true"} (a leader known, the member serving); undefined otherwise. */
async function healthy (clientUrl: string, tls?: { ca: string, cert: string, key: string }): Promise<true | undefined> {
  const creds = tls === undefined ? {} : { ca: await readFile(tls.ca), cert: await readFile(tls.cert), key: await readFile(tls.key) }
  return await new Promise((resolve) => {
    // node:http rather than fetch: fetch keeps connections alive past a killed member.
    const req = (tls === undefined ? request : httpsRequest)(`${clientUrl}/health`, { timeout: 1_000, agent: false, ...creds }, (res) => {
      let body = ''
      res.on('data', (d) => { body += String(d) })
      res.on('end', () => resolve(/"health"\s*:\s*"true"/.test(body) || undefined))
      res.on('error', () => resolve(undefined))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
    req.end()
  })
}

interface Status { endpoint: string, id: string, leader: string }

/** `etcdctl endpoint status -w json`; member ids are 64-bit, kept as text rather than rounded to doubles. */
function parseStatus (text: string): Status[] {
  const list = JSON.parse(text.replace(/("(?:member_id|leader)"\s*:\s*)(\d+)/g, '$1"$2"')) as Array<{ Endpoint: string, Status: { header: { member_id: string }, leader: string } }>
  return list.map((s) => ({ endpoint: s.Endpoint, id: s.Status.header.member_id, leader: s.Status.leader }))
}

async function logTail (file: string, lines = 10): Promise<string> {
  const text = await readFile(file, 'utf8').catch(() => '')
  return text.trim() === '' ? '' : `--- ${file}\n${text.trimEnd().split('\n').slice(-lines).join('\n')}\n`
}
