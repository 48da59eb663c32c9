// Backups and migrations of the metadata: `chaac meta dump` writes every
// record of the data pool (the namespace with the bytes of small files and
// pooled slices, the maps, the settings) as JSON Lines, as the engine held
// them at one revision; `chaac meta load` checks a whole dump and writes it
// into an empty engine, LevelDB or etcd alike (both keep the same records).
//
//   {"chaac":"meta-dump","version":1,"engine":"leveldb","revision":812}
//   {"k":"i!0000000000000001","v":"<base64 of the stored value>"}
//   ...
//   {"end":true,"records":N}
//
// An engine's own bookkeeping (LevelDB's journal number, etcd's newest-change
// marker and each agent's operation key) and what lives under an etcd lease
// (liveness keys, the election) are left out: a dump holds records only.
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import type { Etcd3, ICompare, IRequestOp } from 'etcd3'
import { Level } from 'level'
import { ChaacError } from '../errors.ts'
import { DataPool, JOURNAL_FILE } from './data-pool.ts'
import { EtcdPool } from './etcd-pool.ts'
import { JOURNAL_SEQ_KEY } from './journal.ts'
import type { Pool } from './pool.ts'

export const DUMP_VERSION = 1

export type Engine = 'leveldb' | 'etcd'

export interface DumpHeader {
  chaac: 'meta-dump'
  version: number
  engine: Engine
  /** etcd: the revision read at; LevelDB: the number of the last journal record included. */
  revision: number
}

export interface DumpSource {
  engine: Engine
  revision: number
  /** Stored keys and values in key order; keys that are no records are skipped by the dump. */
  records: AsyncIterable<[string, Buffer]>
}

export interface Dump {
  header: DumpHeader
  records: Array<[string, Buffer]>
}

const RECORD_KINDS = new Set(['i', 'x', 'y', 's', 'd', 'b', 'q', 'g', 'm', 'a'])
// m!last: the etcd engine's marker of the newest change (etcd-pool.ts).
const BOOKKEEPING = new Set([JOURNAL_SEQ_KEY, 'm!last'])
const ETCD_PAGE_KEYS = 1_000
// Inline files and pooled slices hold up to 64 KiB each.
const ETCD_PAGE_BYTES_KEYS = 32
// etcd refuses transactions of more than --max-txn-ops (128 by default) and requests over --max-request-bytes (1.5 MiB).
const ETCD_TXN_OPS = 100
const ETCD_TXN_BYTES = 1024 * 1024
const LEVEL_BATCH_OPS = 1_000

/** Whether a stored key is a record of the data pool, which a dump carries. */
export function isDumpedKey (key: string): boolean {
  return key.length > 2 && key[1] === '!' && RECORD_KINDS.has(key[0]) && !BOOKKEEPING.has(key)
}

/** The lines of a dump of `source`, each ending with a newline. */
export async function * dumpLines (source: DumpSource): AsyncGenerator<string> {
  const header: DumpHeader = { chaac: 'meta-dump', version: DUMP_VERSION, engine: source.engine, revision: source.revision }
  yield JSON.stringify(header) + '\n'
  let n = 0
  for await (const [k, v] of source.records) {
    if (!isDumpedKey(k)) continue
    n++
    yield JSON.stringify({ k, v: v.toString('base64') }) + '\n'
  }
  yield JSON.stringify({ end: true, records: n }) + '\n'
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/

/**
 * Reads a dump line by line and checks every line: the header and its
 * version, each record, the end line and its count. `end` returns the whole
 * dump, or throws (CHAAC_INVALID, naming the line) for anything else.
 */
export class DumpReader {
  private header?: DumpHeader
  private readonly records: Array<[string, Buffer]> = []
  private readonly seen = new Set<string>()
  private ended = false
  private lineNo = 0

  line (text: string): void {
    this.lineNo++
    if (text.trim() === '') return
    if (this.ended) this.fail('text after the end line')
    let obj: unknown
    try {
      obj = JSON.parse(text)
    } catch {
      this.fail(this.header === undefined ? 'not a chaac metadata dump (the first line is not JSON)' : 'not JSON')
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) this.fail('not a JSON object')
    const o = obj as Record<string, unknown>
    if (this.header === undefined) {
      this.header = this.checkHeader(o)
      return
    }
    if (o.end !== undefined) {
      if (o.end !== true || !Number.isInteger(o.records)) this.fail('a malformed end line (expected {"end":true,"records":N})')
      if (o.records !== this.records.length) {
        this.fail(`the end line counts ${String(o.records)} records, the dump holds ${this.records.length}: lines are missing or added`)
      }
      this.ended = true
      return
    }
    const { k, v } = o
    if (typeof k !== 'string' || !isDumpedKey(k)) this.fail(`not a record: key ${JSON.stringify(k)}`)
    if (typeof v !== 'string' || !BASE64.test(v)) this.fail(`record ${k}: its value is not base64`)
    if (this.seen.has(k)) this.fail(`record ${k} appears twice`)
    this.seen.add(k)
    this.records.push([k, Buffer.from(v, 'base64')])
  }

  end (): Dump {
    if (this.header === undefined) throw new ChaacError('CHAAC_INVALID', 'the dump is empty')
    if (!this.ended) {
      throw new ChaacError('CHAAC_INVALID', `the dump is truncated: no end line after ${this.records.length} records (line ${this.lineNo})`)
    }
    return { header: this.header, records: this.records }
  }

  private checkHeader (o: Record<string, unknown>): DumpHeader {
    if (o.chaac !== 'meta-dump') this.fail('not a chaac metadata dump (the first line is no {"chaac":"meta-dump",...} header)')
    if (o.version !== DUMP_VERSION) {
      this.fail(typeof o.version === 'number' && o.version > DUMP_VERSION
        ? `a dump of version ${o.version}, written by a newer chaac: this one reads version ${DUMP_VERSION}`
        : `a dump of version ${JSON.stringify(o.version)}: this chaac reads version ${DUMP_VERSION}`)
    }
    if ((o.engine !== 'leveldb' && o.engine !== 'etcd') || !Number.isInteger(o.revision)) this.fail('a malformed header (engine, revision)')
    return o as unknown as DumpHeader
  }

  private fail (why: string): never {
    throw new ChaacError('CHAAC_INVALID', `line ${this.lineNo} of the dump: ${why}`)
  }
}

/** Checks a whole dump held in a string (tests, small dumps). */
export function parseDump (text: string): Dump {
  const reader = new DumpReader()
  for (const line of text.split('\n')) reader.line(line)
  return reader.end()
}

// ---- sources ----

/** The end of the etcd range of keys that start with `prefix`. */
function prefixEnd (prefix: Buffer): Buffer {
  const end = Buffer.from(prefix)
  end[end.length - 1]++
  return end
}

/**
 * Every record under `prefix` at the revision etcd is at now, kind by kind in
 * key order, each read page by page at that revision. Pages of file bytes are
 * small: a gRPC answer may hold at most 4 MiB.
 */
export async function etcdSource (client: Etcd3, prefix: string): Promise<DumpSource> {
  const head = await client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(Buffer.from(prefix)), count_only: true })
  const revision = Number(head.header.revision)
  async function * records (): AsyncGenerator<[string, Buffer]> {
    for (const kind of [...RECORD_KINDS].sort()) {
      const start = Buffer.from(`${prefix}${kind}!`)
      const end = prefixEnd(start)
      const limit = kind === 'x' || kind === 'y' ? ETCD_PAGE_BYTES_KEYS : ETCD_PAGE_KEYS
      for (let from = start; ;) {
        const page = await client.kv.range({ key: from, range_end: end, revision, limit })
        for (const kv of page.kvs) yield [kv.key.toString().slice(prefix.length), kv.value]
        if (!page.more || page.kvs.length === 0) break
        from = Buffer.concat([page.kvs[page.kvs.length - 1].key, Buffer.from([0])])
      }
    }
  }
  return { engine: 'etcd', revision, records: records() }
}

/** What a running agent dumps: its data pool's LevelDB, or etcd; a joined agent holds no file bytes. */
export async function poolSource (pool: Pool): Promise<DumpSource> {
  if (pool instanceof DataPool) return { engine: 'leveldb', ...await pool.snapshot() }
  if (pool instanceof EtcdPool) return await etcdSource(pool.etcd, pool.keyPrefix)
  throw new ChaacError('CHAAC_NOT_SUPPORTED',
    'this agent joined a data pool and keeps a copy without the file bytes: dump through the pool agent\'s HTTP API (chaac meta dump --http <its --http>)')
}

// ---- LevelDB ----

/** The LevelDB folder of an agent's data folder. */
export const metaDir = (data: string): string => join(data, 'meta')

/** Opens the data pool in `data` for a tool (`create`: a new one if there is none); an agent running on it holds its lock. */
export async function openDataPool (data: string, hint: string, opts: { create?: boolean } = {}): Promise<DataPool> {
  const dir = metaDir(data)
  if (opts.create !== true && !await exists(join(dir, 'CURRENT'))) {
    throw new ChaacError('CHAAC_NOT_FOUND', `no data pool in ${dir} (the folder an agent's --data names holds it)`)
  }
  try {
    return await DataPool.open(dir, { agentId: 'chaac-meta' })
  } catch (err) {
    throw lockedError(err, dir, hint)
  }
}

function lockedError (err: unknown, dir: string, hint: string): Error {
  const cause = (err as { cause?: { code?: string } }).cause
  if (cause?.code === 'LEVEL_LOCKED') return new ChaacError('CHAAC_IO', `the data pool in ${dir} is in use by a running agent: ${hint}`, { cause: err })
  return err as Error
}

/**
 * Writes a checked dump into the LevelDB in `data`/meta (created if
 * missing), which must hold no record and no journal; refused, it is left as it was.
 */
export async function loadLevel (data: string, dump: Dump): Promise<void> {
  const dir = metaDir(data)
  const db = new Level<string, Buffer>(dir, { valueEncoding: 'buffer' })
  try {
    await db.open()
  } catch (err) {
    throw lockedError(err, dir, 'stop the agents first (load writes into a stopped, empty data pool)')
  }
  try {
    for await (const key of db.keys({ limit: 1 })) {
      throw new ChaacError('CHAAC_EXISTS', `the data pool in ${dir} is not empty (it holds ${key} and maybe more): load only into a new one`)
    }
    for (const i of [0, 1]) {
      const file = join(dir, `${JOURNAL_FILE}.${i}`)
      if (((await stat(file).catch(() => undefined))?.size ?? 0) > 0) {
        throw new ChaacError('CHAAC_EXISTS', `the data pool in ${dir} is not empty (its journal ${file} holds changes): load only into a new one`)
      }
    }
    for (let i = 0; i < dump.records.length; i += LEVEL_BATCH_OPS) {
      const last = i + LEVEL_BATCH_OPS >= dump.records.length
      await db.batch(dump.records.slice(i, i + LEVEL_BATCH_OPS).map(([key, value]) => ({ type: 'put' as const, key, value })), { sync: last })
    }
  } finally {
    await db.close()
  }
}

// ---- etcd ----

/**
 * Writes a checked dump under `prefix` in etcd, which must hold no key there.
 * Each transaction puts a key only if it is absent, so that a writer that
 * turns up meanwhile stops the load instead of being overwritten.
 */
export async function loadEtcd (client: Etcd3, prefix: string, where: string, dump: Dump): Promise<void> {
  const key = Buffer.from(prefix)
  const head = await client.kv.range({ key, range_end: prefixEnd(key), count_only: true })
  const count = Number(head.count)
  if (count > 0) {
    throw new ChaacError('CHAAC_EXISTS', `${where} is not empty (${count} keys under ${prefix}): load only into a prefix no agent has used`)
  }
  let written = 0
  for (let i = 0; i < dump.records.length;) {
    const compare: ICompare[] = []
    const success: IRequestOp[] = []
    let bytes = 0
    while (i < dump.records.length && success.length < ETCD_TXN_OPS && (success.length === 0 || bytes + dump.records[i][1].length < ETCD_TXN_BYTES)) {
      const [k, v] = dump.records[i++]
      const full = Buffer.from(prefix + k)
      compare.push({ key: full, target: 'Create', result: 'Equal', create_revision: 0 })
      success.push({ request_put: { key: full, value: v } })
      bytes += full.length + v.length
    }
    const res = await client.kv.txn({ compare, success })
    if (!res.succeeded) {
      throw new ChaacError('CHAAC_EXISTS', `another writer put keys under ${prefix} in ${where} during the load (after ${written} of ${dump.records.length} records): stop it, and load again into a new prefix`)
    }
    written += success.length
  }
}

async function exists (path: string): Promise<boolean> {
  return await stat(path).then(() => true, () => false)
}
