// Databases on the mount: PostgreSQL under pgbench with several clients, then
// a kill -9 of the agent in the middle of single-row commits (crash recovery
// must succeed and keep every commit reported); SQLite in WAL mode written by
// two processes at once, then the same crash. Both fsync their logs from
// several processes into one file, the case that once lost data.
// PostgreSQL runs as the postgres user (initdb refuses root) on a unix socket
// in a local temp folder, never on the mount, and without TCP.
import { spawn, type ChildProcess } from 'node:child_process'
import { chmod, chown, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { cleanupAgent, sh, shOk, startAgent, unmountLazily, type RunningAgent } from '../helpers/agent.ts'
import { waitFor, withDeadline } from '../helpers/wait.ts'

const PG = '/usr/lib/postgresql/15/bin'
// A port of its own (it names the socket file and the shared memory key), so a second run beside this one does not meet it.
const PORT = 20_000 + process.pid % 10_000
const OPTS = { timeout: 120_000 }

const pgUser = process.getuid?.() === 0 ? await uidsOf('postgres') : undefined
if (pgUser === undefined) throw new Error('run as root with a postgres user (npm test installs postgresql)')

async function uidsOf (name: string): Promise<{ uid: number, gid: number } | undefined> {
  const line = (await readFile('/etc/passwd', 'utf8')).split('\n').find((l) => l.startsWith(`${name}:`))
  if (line === undefined) return undefined
  const [, , uid, gid] = line.split(':')
  return { uid: Number(uid), gid: Number(gid) }
}

const asPostgres = ['setpriv', '--reuid=postgres', '--regid=postgres', '--init-groups']

/** A long-lived child process whose output is kept; stopped by PID. */
class Proc {
  readonly child: ChildProcess
  private output = ''
  readonly exited: Promise<number | null>

  constructor (cmd: string, args: string[], opts: { cwd?: string } = {}) {
    this.child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    this.child.stdout?.on('data', (d) => { this.output += String(d) })
    this.child.stderr?.on('data', (d) => { this.output += String(d) })
    this.exited = new Promise((resolve) => this.child.on('close', (code) => resolve(code)))
  }

  get out (): string { return this.output }
  get running (): boolean { return this.child.exitCode === null && this.child.signalCode === null }

  async kill (): Promise<void> {
    if (this.running) this.child.kill('SIGKILL')
    await withDeadline(this.exited, 10_000, `pid ${this.child.pid} to exit`)
  }
}

/** Children of `pid`, from /proc (the backends of a postmaster). */
async function childrenOf (pid: number): Promise<number[]> {
  const out: number[] = []
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '')
    if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name))
  }
  return out
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/** A postmaster on the mount: `postgres` started directly (setpriv execs it), so the child's PID is the postmaster's. */
class Postgres {
  proc?: Proc
  constructor (readonly data: string, readonly socket: string) {}

  get conn (): string { return `-h ${this.socket} -p ${PORT} -U postgres` }

  async start (): Promise<void> {
    this.proc = new Proc(asPostgres[0], [...asPostgres.slice(1), join(PG, 'postgres'), '-D', this.data, '-p', String(PORT),
      '-k', this.socket, '-c', 'listen_addresses='], { cwd: this.socket })
    const proc = this.proc
    await waitFor(async () => {
      if (!proc.running) throw new Error(`postgres exited:\n${proc.out}`)
      return (await sh(`${PG}/pg_isready -q ${this.conn}`, { timeoutMs: 10_000 })).code === 0
    }, { timeoutMs: 60_000, what: 'postgres to accept connections' })
  }

  /** kill -9 of the postmaster and its backends, by PID (after the agent's death they may be stuck in nothing but errors). */
  async kill (): Promise<void> {
    const pid = this.proc?.child.pid
    if (pid === undefined || this.proc === undefined) return
    const backends = await childrenOf(pid)
    await this.proc.kill()
    this.proc = undefined
    for (const b of backends) if (alive(b)) process.kill(b, 'SIGKILL')
    await waitFor(() => !backends.some(alive), { timeoutMs: 10_000, what: 'the backends to exit' })
  }

  async psql (sql: string, timeoutMs = 30_000): Promise<string> {
    return (await shOk(`${PG}/psql ${this.conn} -X -q -At -v ON_ERROR_STOP=1 -c "${sql}" postgres`, { timeoutMs })).trim()
  }

  /** pg_amcheck of every database (heap and B-tree indexes, with every heap tuple in its indexes); '' when clean. */
  async amcheck (t: Test): Promise<void> {
    const r = await sh(`${PG}/pg_amcheck ${this.conn} --install-missing --heapallindexed --all`, { timeoutMs: 60_000 })
    t.equal(r.code, 0, 'pg_amcheck exits 0', { output: r.stdout + r.stderr })
    t.equal(r.stdout.trim(), '', 'pg_amcheck reports nothing')
  }
}

let agent: RunningAgent | undefined = await startAgent()
const procs: Proc[] = []
let pg: Postgres | undefined
const socket = await mkdtemp(join(tmpdir(), 'chaac-pg-'))
t.teardown(async () => {
  for (const p of procs) await p.kill()
  await pg?.kill()
  await cleanupAgent(agent)
  await rm(socket, { recursive: true, force: true })
})
await chown(socket, pgUser.uid, pgUser.gid)
// The postgres user walks to the mount through the test's temp folder (0700 from mkdtemp).
await chmod(agent.root, 0o711)
const mnt = agent.mount

/** Restart after a kill -9 of the agent: the stale mount goes, a new agent serves the same data folder. */
async function restartAgent (): Promise<void> {
  const data = agent?.data as string
  await unmountLazily(agent?.mount as string)
  agent = await startAgent({ data })
}

t.test('postgresql - pgbench with 4 clients runs without an error and pg_amcheck finds nothing wrong', OPTS, async (t) => {
  await shOk(`mkdir ${mnt}/pg && chown postgres:postgres ${mnt}/pg`)
  const init = await sh(`${asPostgres.join(' ')} ${PG}/initdb -D ${mnt}/pg/data -A trust -U postgres`, { cwd: socket, timeoutMs: 60_000 })
  t.equal(init.code, 0, 'initdb exits 0', { output: init.stdout + init.stderr })
  pg = new Postgres(`${mnt}/pg/data`, socket)
  await pg.start()
  await shOk(`${PG}/pgbench ${pg.conn} -i -s 2 -q postgres`, { timeoutMs: 60_000 })
  const bench = await sh(`${PG}/pgbench ${pg.conn} -c 4 -j 2 -T 15 postgres`, { timeoutMs: 60_000 })
  const out = bench.stdout + bench.stderr
  t.equal(bench.code, 0, 'pgbench exits 0', { output: out })
  t.notMatch(out, /ERROR|PANIC|FATAL/, 'pgbench saw no error')
  t.match(out, /number of failed transactions: 0 /, 'no transaction failed')
  t.ok(Number(/transactions actually processed: (\d+)/.exec(out)?.[1]) > 0, 'transactions were processed')
  t.notMatch(pg.proc?.out ?? '', /PANIC|could not write|Input\/output error/, 'the server logged no failed write')
  t.comment(/^tps = .*$/m.exec(out)?.[0] ?? '')
  t.equal(await pg.psql('SELECT (SELECT sum(abalance) FROM pgbench_accounts) = (SELECT sum(delta) FROM pgbench_history)'), 't',
    'the balances add up to the history')
  await pg.amcheck(t)
})

t.test('postgresql - after kill -9 of the agent, crash recovery succeeds and every committed row is there', OPTS, async (t) => {
  if (pg === undefined) throw new Error('needs the database of the test before')
  await pg.psql('CREATE TABLE committed_ids (id int PRIMARY KEY)')
  // One autocommit INSERT per id; psql echoes the id once the commit returned, and stops at the first error.
  const script = join(socket, 'writer.sql')
  await writeFile(script, Array.from({ length: 100_000 }, (_, i) => `INSERT INTO committed_ids VALUES (${i + 1});\n\\echo committed ${i + 1}\n`).join(''))
  const writer = new Proc(join(PG, 'psql'), [...pg.conn.split(' '), '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-f', script, 'postgres'])
  procs.push(writer)
  const committed = (): number[] => [...writer.out.matchAll(/^committed (\d+)$/gm)].map((m) => Number(m[1]))
  await waitFor(() => {
    if (!writer.running) throw new Error(`the writer exited early:\n${writer.out}`)
    return committed().length >= 30
  }, { timeoutMs: 60_000, what: '30 commits' })

  await agent?.kill9()
  // Without its files PostgreSQL fails; the writer stops at its first error (or is stopped).
  await withDeadline(writer.exited, 30_000, 'the writer to fail').catch(async () => await writer.kill())
  const ids = committed()
  t.ok(ids.length >= 30, `${ids.length} commits reported before the kill`)
  await pg.kill()

  await restartAgent()
  await pg.start()
  t.match(pg.proc?.out ?? '', /database system was interrupted|was not properly shut down/, 'postgres ran crash recovery')
  const present = new Set((await pg.psql('SELECT id FROM committed_ids')).split('\n').filter((l) => l !== '').map(Number))
  const lost = ids.filter((id) => !present.has(id))
  t.same(lost, [], `every id reported committed is there (${ids.length} reported, ${present.size} in the table)`)
  // At most the commit in flight at the kill, durable before psql could report it.
  t.ok(present.size <= ids.length + 1 && [...present].every((id) => id <= ids.length + 1), 'and nothing that was never written')
  await pg.amcheck(t)
  await pg.kill()
})

// Each writer inserts 3 rows per transaction (ids writer * 1e6 + n), printing the ids once COMMIT returned.
// A short pause after each commit gives the other writer its turn: SQLite's busy handler polls, it does not queue.
const WRITER = `
import random, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute('PRAGMA busy_timeout=30000')
db.execute('PRAGMA synchronous=FULL')
w, n = int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    ids = [w * 1000000 + 3 * i + k for k in range(3)]
    db.execute('BEGIN IMMEDIATE')
    db.executemany('INSERT INTO t VALUES (?, ?, ?)', [(x, w, 'x' * 300) for x in ids])
    db.execute('COMMIT')
    print(*ids, sep='\\n', flush=True)
    time.sleep(random.uniform(0, 0.02))
`

interface Sqlite { db: string, start: (transactions: number) => Proc[], check: (t: Test, writers: Proc[]) => Promise<void> }

async function sqlite (name: string): Promise<Sqlite> {
  const db = join(mnt, `${name}.db`)
  const writerScript = join(socket, 'sqlite-writer.py')
  await writeFile(writerScript, WRITER)
  await shOk(`python3 -c "
import sqlite3
db = sqlite3.connect('${db}')
assert db.execute('PRAGMA journal_mode=WAL').fetchone()[0] == 'wal'
db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, writer INTEGER, pad TEXT)')
db.commit()"`)
  return {
    db,
    start: (transactions) => [1, 2].map((w) => {
      const p = new Proc('python3', [writerScript, db, String(w), String(transactions)])
      procs.push(p)
      return p
    }),
    check: async (t, writers) => {
      const reported = writers.flatMap((w) => [...w.out.matchAll(/^(\d+)$/gm)].map((m) => Number(m[1])))
      const out = await shOk(`python3 -c "
import sqlite3
db = sqlite3.connect('${db}')
print(db.execute('PRAGMA integrity_check').fetchone()[0])
print(' '.join(str(r[0]) for r in db.execute('SELECT id FROM t')))"`, { timeoutMs: 60_000 })
      const [integrity, rows] = out.split('\n')
      t.equal(integrity, 'ok', 'PRAGMA integrity_check')
      const present = new Set(rows.split(' ').filter((x) => x !== '').map(Number))
      t.same(reported.filter((id) => !present.has(id)), [], `every id reported committed is there (${reported.length} reported, ${present.size} rows)`)
      // Besides, at most each writer's transaction in flight at the kill.
      t.ok(present.size <= reported.length + 3 * writers.length, 'and no more than the transactions in flight')
    }
  }
}

t.test('sqlite - two processes writing one database in WAL mode keep it intact with every commit', OPTS, async (t) => {
  const s = await sqlite('wal')
  const writers = s.start(100)
  for (const w of writers) t.equal(await withDeadline(w.exited, 90_000, 'a writer to finish'), 0, 'writer exits 0', { output: w.out.slice(-2000) })
  await s.check(t, writers)
  t.equal(writers.map((w) => w.out.trim().split('\n').length).join(), '300,300', 'each writer committed all its rows')
})

t.test('sqlite - after kill -9 of the agent mid-run, the database is intact and holds every commit', OPTS, async (t) => {
  const s = await sqlite('crash')
  const writers = s.start(100_000)
  await waitFor(() => {
    for (const w of writers) if (!w.running) throw new Error(`a writer exited early:\n${w.out}`)
    return writers.every((w) => w.out.split('\n').length > 30)
  }, { timeoutMs: 60_000, what: '10 commits by each writer' })
  await agent?.kill9()
  for (const w of writers) await withDeadline(w.exited, 30_000, 'a writer to fail').catch(async () => await w.kill())
  await restartAgent()
  await s.check(t, writers)
})
