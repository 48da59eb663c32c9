// `chaac format`: writes the cluster's settings into a metadata engine once.
// `chaac meta dump` / `chaac meta load`: the whole metadata as JSON Lines, out
// of a running or stopped engine and into an empty one (backups, and moving
// a cluster between LevelDB and etcd).
import { Command, InvalidArgumentError, Option } from 'commander'
import { createReadStream } from 'node:fs'
import { once } from 'node:events'
import { resolve } from 'node:path'
import { createInterface } from 'node:readline'
import { DEFAULTS, parseCloud, parseHostPort } from './config.ts'
import type { DataPool } from './meta/data-pool.ts'
import { DumpReader, dumpLines, etcdSource, loadEtcd, loadLevel, metaDir, openDataPool, type DumpSource } from './meta/dump.ts'
import { connectEtcd, describeEtcd, etcdSpec, parseMetaUrl, type EtcdSpec } from './meta/etcd-client.ts'
import { EtcdPool } from './meta/etcd-pool.ts'
import { SETTINGS_VERSION, cloudSetting, formatRefusal, settingText, SETTING_NAMES, type ClusterSettings } from './meta/settings.ts'
import { POLICIES } from './placement/types.ts'
import { parseSize } from './units.ts'

interface EngineFlags {
  meta?: string
  data?: string
  etcdCa?: string
  etcdCert?: string
  etcdKey?: string
  etcdUser?: string
}

type Target = { kind: 'etcd', spec: EtcdSpec } | { kind: 'leveldb', data: string }

function engineOptions (cmd: Command, what: string): Command {
  return cmd
    .addOption(new Option('--meta <url>', `${what} etcd://HOST:PORT[,HOST:PORT...]/PREFIX`))
    .addOption(new Option('--data <dir>', `${what} the LevelDB data pool in this agent data folder (<dir>/meta)`))
    .addOption(new Option('--etcd-ca <file>', 'CA certificate of the etcd members (turns TLS on)').env('CHAAC_ETCD_CA'))
    .addOption(new Option('--etcd-cert <file>', 'client certificate for etcd').env('CHAAC_ETCD_CERT'))
    .addOption(new Option('--etcd-key <file>', 'private key of --etcd-cert').env('CHAAC_ETCD_KEY'))
    .addOption(new Option('--etcd-user <name>', 'etcd user; the password comes from CHAAC_ETCD_PASSWORD').env('CHAAC_ETCD_USER'))
}

function target (f: EngineFlags, others: string[] = []): Target {
  if (f.meta !== undefined && f.data !== undefined) throw new InvalidArgumentError(`give one of --meta, --data${others.map((o) => ', ' + o).join('')}`)
  if (f.meta === undefined) return { kind: 'leveldb', data: resolve(f.data ?? DEFAULTS.data) }
  const url = parseMetaUrl(f.meta)
  if (url === undefined) throw new InvalidArgumentError('--meta leveldb: name the data folder with --data instead')
  return {
    kind: 'etcd',
    spec: etcdSpec(url, { ca: f.etcdCa, cert: f.etcdCert, key: f.etcdKey, user: f.etcdUser, password: process.env.CHAAC_ETCD_PASSWORD })
  }
}

function describe (t: Target): string {
  return t.kind === 'etcd' ? describeEtcd(t.spec) : metaDir(t.data)
}

const quiet = { info: () => {}, warn: () => {}, debug: () => {} }

async function writeOut (text: string): Promise<void> {
  if (!process.stdout.write(text)) await once(process.stdout, 'drain')
}

// ---- chaac format ----

interface FormatFlags extends EngineFlags {
  replicas: string
  policy: string
  chunkSize: string
  cloud: string
}

export function formatCommand (): Command {
  return engineOptions(new Command('format'), 'format')
    .description('store the cluster\'s settings in a metadata engine, once: every agent reads them at start')
    .addOption(new Option('--replicas <k>', 'copies of each new ball, each on its own host').default(DEFAULTS.replicas))
    .addOption(new Option('--policy <policy>', 'the allocator policy that places new balls').choices(POLICIES).default(DEFAULTS.policy))
    .addOption(new Option('--chunk-size <size>', 'largest ball: files are cut into balls of this size').default(DEFAULTS.chunkSize))
    .addOption(new Option('--cloud <dir|s3://bucket[/prefix]>', 'cloud tier: a directory (each agent its own), none, or a bucket all agents share').default('directory'))
    .action(async (f: FormatFlags) => {
      const wanted = formatSettings(f)
      const where = target(f)
      const pool: DataPool | EtcdPool = where.kind === 'etcd'
        ? await EtcdPool.open({ spec: where.spec, agentId: 'chaac-format', log: quiet })
        : await openDataPool(where.data, 'stop it first', { create: true })
      const before = pool.settings
      let stored: ClusterSettings
      try {
        stored = await pool.claimSettings(wanted)
      } finally {
        await pool.close()
      }
      const refusal = formatRefusal(stored, wanted)
      if (refusal !== undefined) throw new Error(`${describe(where)}: ${refusal}`)
      const list = SETTING_NAMES.map((n) => `${n === 'chunkSize' ? 'chunk size' : n === 'cloud' ? 'cloud tier' : n} ${settingText(n, stored)}`).join(', ')
      console.log(before === undefined
        ? `formatted ${describe(where)}: ${list}`
        : `${describe(where)} is formatted already with these settings (${list}, set by ${stored.setBy ?? '?'}); nothing changed`)
    })
}

function formatSettings (f: FormatFlags): ClusterSettings {
  const replicas = Number(f.replicas)
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 16) throw new InvalidArgumentError('--replicas must be a whole number from 1 to 16')
  let chunkSize: number
  try {
    chunkSize = parseSize(f.chunkSize)
  } catch (err) {
    throw new InvalidArgumentError(`--chunk-size: ${(err as Error).message}`)
  }
  if (chunkSize < 64 * 1024 || chunkSize > 64 * 1024 * 1024) throw new InvalidArgumentError('--chunk-size must be between 64KiB and 64MiB')
  let cloud: string
  try {
    cloud = f.cloud === 'directory' ? 'directory' : cloudSetting(parseCloud(f.cloud, {}, 0, process.env))
  } catch (err) {
    throw new InvalidArgumentError(`--cloud: ${(err as Error).message}`)
  }
  return { version: SETTINGS_VERSION, replicas, policy: f.policy, chunkSize, cloud, setBy: 'chaac format' }
}

// ---- chaac meta dump | load ----

interface DumpFlags extends EngineFlags {
  http?: string
}

export function metaCommand (): Command {
  const meta = new Command('meta').description('back up the metadata, or move it between engines')
  meta.addCommand(engineOptions(new Command('dump'), 'dump')
    .description('write the whole metadata (namespace, maps, settings) to stdout as JSON Lines, consistent at one revision; safe while agents run')
    .addOption(new Option('--http <host:port>', 'dump through a running agent\'s HTTP API (its --http): the LevelDB of a running agent is locked (sends CHAAC_SECRET beyond loopback)'))
    .action(async (f: DumpFlags) => {
      if (f.http !== undefined) {
        if (f.meta !== undefined || f.data !== undefined) throw new InvalidArgumentError('give one of --meta, --data, --http')
        await dumpOverHttp(f.http)
        return
      }
      const where = target(f, ['--http'])
      if (where.kind === 'etcd') {
        const client = connectEtcd({ ...where.spec, callTimeoutMs: 30_000 })
        try {
          await writeDump(await etcdSource(client, where.spec.prefix))
        } finally {
          client.close()
        }
        return
      }
      const pool = await openDataPool(where.data, 'dump through it with --http <its --http address>, or stop it')
      try {
        await writeDump({ engine: 'leveldb', ...await pool.snapshot() })
      } finally {
        await pool.close()
      }
    }))
  meta.addCommand(engineOptions(new Command('load'), 'load into')
    .description('load a dump (stdin, or FILE) into an empty engine: the whole input is checked first, and nothing is written unless it is complete and the engine empty')
    .argument('[file]', 'the dump (default: stdin)')
    .action(async (file: string | undefined, f: EngineFlags) => {
      const where = target(f)
      const reader = new DumpReader()
      const lines = createInterface({ input: file === undefined ? process.stdin : createReadStream(file), crlfDelay: Infinity })
      for await (const line of lines) reader.line(line)
      const dump = reader.end()
      if (where.kind === 'etcd') {
        const client = connectEtcd({ ...where.spec, callTimeoutMs: 30_000 })
        try {
          await loadEtcd(client, where.spec.prefix, describe(where), dump)
        } finally {
          client.close()
        }
      } else {
        await loadLevel(where.data, dump)
      }
      console.error(`loaded ${dump.records.length} records (a dump of ${dump.header.engine} at revision ${dump.header.revision}) into ${describe(where)}`)
    }))
  return meta
}

async function writeDump (source: DumpSource): Promise<void> {
  for await (const line of dumpLines(source)) await writeOut(line)
}

async function dumpOverHttp (http: string): Promise<void> {
  const { host, port } = parseHostPort(http)
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}/api/v1/meta/dump`
  const secret = process.env.CHAAC_SECRET ?? ''
  // A deadline for the answer to start, not for the whole dump.
  const abort = new AbortController()
  const timer = setTimeout(() => abort.abort(new Error('no answer within 30 s')), 30_000)
  let res: Response
  try {
    res = await fetch(url, { headers: secret === '' ? {} : { authorization: `Bearer ${secret}` }, signal: abort.signal })
  } catch (err) {
    throw new Error(`no agent answers at ${http} (${(err as Error).message})`)
  } finally {
    clearTimeout(timer)
  }
  if (!res.ok || res.body === null) {
    const body = await res.json().catch(() => ({})) as { error?: string }
    throw new Error(`the agent at ${http} did not dump: ${body.error ?? `HTTP ${res.status}`}`)
  }
  // The end line says the dump is whole: a stream cut short has none.
  let tail = Buffer.alloc(0)
  for await (const chunk of res.body) {
    const bytes = Buffer.from(chunk)
    tail = Buffer.concat([tail, bytes]).subarray(-200)
    if (!process.stdout.write(bytes)) await once(process.stdout, 'drain')
  }
  if (!/\{"end":true,"records":\d+\}\n$/.test(tail.toString())) throw new Error(`the dump from ${http} was cut off before its end line`)
}
