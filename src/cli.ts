// The `chaac` command: `agent` runs an agent; `status` and `locate` ask a
// running one over its HTTP API; `bench` measures a folder (src/bench/).
// Signals are handled here and only here.
import { Command, InvalidArgumentError, Option } from 'commander'
import { basename, dirname, relative, resolve } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { pino } from 'pino'
import { Agent } from './agent.ts'
import { benchCommand } from './bench/command.ts'
import { OverrideProbe } from './context/override-probe.ts'
import { SiProbe } from './context/si-probe.ts'
import {
  DEFAULTS, EVICTION_POLICIES, WRITE_POLICIES, checkExposure, defaultBins, oneOf, parseBin, parseCloud, parseFill, parseHostPort, parsePoolUrl, parseSeconds, parseVolumeDriver,
  type AgentConfig, type CloudSpec, type ClusterConfig
} from './config.ts'
import { describeEtcd, etcdSpec, parseMetaUrl, type EtcdSpec } from './meta/etcd-client.ts'
import { formatCommand, metaCommand } from './meta-commands.ts'
import { binCommand } from './bin-commands.ts'
import { MIN_CAPACITY } from './containers/launcher.ts'
import { requestJson } from './http-client.ts'
import { MAX_INLINE_BYTES } from './meta/schema.ts'
import { SETTING_NAMES, type GivenSettings } from './meta/settings.ts'
import { POLICIES } from './placement/types.ts'
import { serviceManager } from './service/notify.ts'
import { formatSize, parseSize } from './units.ts'
import { VERSION } from './version.ts'

const collectBin = (text: string, prev: string[] | undefined): string[] => [...(prev ?? []), text]
// A spin longer than a wake-up costs more CPU than it saves time.
const MAX_BUSY_POLL_US = 10_000
// The agent's heap is small (about 25 MB) while ball buffers stream through it
// by the GiB; with V8's default growth each few MiB of them started a full
// mark of the heap (a remote read of 1 GiB: about 100 full collections, a
// quarter of the machine's CPU); the old generation may now grow to three
// times what is live before the next (25 collections).
const HEAP_GROWING_PERCENT = 200

/** Runs a parser for one flag; its error names the flag, so that users know which value to fix. */
function check<T> (flag: string, fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw new InvalidArgumentError(`${flag}: ${(err as Error).message}`)
  }
}

const program = new Command('chaac')
  .description('Chaac: a context-aware distributed filesystem for containers')
  .version(VERSION)

program.command('agent')
  .description('run the agent: mount the chaac path and serve it')
  .addOption(new Option('--data <dir>', 'data folder: metadata (LevelDB), default bins and cloud tier').env('CHAAC_DATA').default(DEFAULTS.data))
  .addOption(new Option('--mount <dir>', 'the chaac path, where the filesystem is mounted').env('CHAAC_MOUNT').default(DEFAULTS.mount))
  .addOption(new Option('--http <host:port>', 'HTTP status API address (port 0: any free port)').env('CHAAC_HTTP').default(DEFAULTS.http))
  .addOption(new Option('--bin <level:dir:capacity>', 'a bin (repeatable), level mem or disk, e.g. disk:/srv/chaac/bin0:100GiB; CHAAC_BIN takes a comma-separated list (default: mem on /dev/shm 256MiB + disk under --data 16GiB)').env('CHAAC_BIN').argParser(collectBin))
  .addOption(new Option('--chunk-size <size>', 'largest ball: files are cut into balls of this size').env('CHAAC_CHUNK_SIZE').default(DEFAULTS.chunkSize))
  .addOption(new Option('--write <policy>', 'cloud tier write policy: through (before close returns), async (in the background), none').env('CHAAC_WRITE').choices(WRITE_POLICIES).default(DEFAULTS.write))
  .addOption(new Option('--cloud <dir|s3://bucket[/prefix]>', 'cloud tier: a directory, S3-compatible object storage, or "none" (default: <data>/cloud)').env('CHAAC_CLOUD'))
  .addOption(new Option('--s3-endpoint <url>', 'S3 endpoint of a self-hosted store, e.g. http://127.0.0.1:7480 (default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS)').env('CHAAC_S3_ENDPOINT'))
  .addOption(new Option('--s3-region <region>', 'S3 region (default: AWS_REGION, AWS_DEFAULT_REGION, else us-east-1)').env('CHAAC_S3_REGION'))
  .addOption(new Option('--s3-access-key <id>', 'S3 access key id (default: the usual AWS sources, e.g. AWS_ACCESS_KEY_ID)').env('CHAAC_S3_ACCESS_KEY'))
  .addOption(new Option('--s3-secret-key <key>', 'S3 secret key; prefer the variable, a flag shows in ps (default: AWS_SECRET_ACCESS_KEY)').env('CHAAC_S3_SECRET_KEY'))
  .addOption(new Option('--s3-path-style <on|off>', 'path-style bucket addressing (default: on with --s3-endpoint, off for AWS)').env('CHAAC_S3_PATH_STYLE'))
  .addOption(new Option('--s3-create-bucket <on|off>', 'create the bucket at start if it is missing').env('CHAAC_S3_CREATE_BUCKET').default('on'))
  .addOption(new Option('--cloud-timeout <seconds>', 'deadline of a cloud tier read, retries included (reads fail with EIO after it); uploads get 6 times this').env('CHAAC_CLOUD_TIMEOUT').default(DEFAULTS.cloudTimeout))
  .addOption(new Option('--cloud-gc-grace <seconds>', 'how long the cloud copy of a ball no file references any more is kept before it is deleted').env('CHAAC_CLOUD_GC_GRACE').default(DEFAULTS.cloudGcGrace))
  .addOption(new Option('--cache-skip-over <size>', 'files larger than this are read without being cached').env('CHAAC_CACHE_SKIP_OVER').default(DEFAULTS.cacheSkipOver))
  .addOption(new Option('--inline-max <size>', `files up to this size are kept inline in the data pool instead of in balls (0: never; at most ${formatSize(MAX_INLINE_BYTES)})`).env('CHAAC_INLINE_MAX').default(DEFAULTS.inlineMax))
  .addOption(new Option('--eviction <policy>', 'cache eviction within a bin').env('CHAAC_EVICTION').choices(EVICTION_POLICIES).default(DEFAULTS.eviction))
  .addOption(new Option('--attr-timeout <seconds>', 'how long the kernel trusts attributes and names').env('CHAAC_ATTR_TIMEOUT').default('1'))
  .addOption(new Option('--busy-poll <microseconds>', `after answering every request, keep reading for the next one this long before sleeping, while that pays (saves a wake-up per request on VMs, costs CPU; 0: never; at most ${MAX_BUSY_POLL_US})`).env('CHAAC_BUSY_POLL').default(DEFAULTS.busyPoll))
  .addOption(new Option('--pool', 'run the data pool of a cluster: other agents join this one (CHAAC_POOL=1)').env('CHAAC_POOL'))
  .addOption(new Option('--join <ws://host:port>', 'join the cluster whose data pool runs at this peer address (the pool agent\'s --listen)').env('CHAAC_JOIN'))
  .addOption(new Option('--meta <url>', 'the metadata engine: leveldb (the embedded default), or etcd://HOST:PORT[,HOST:PORT...]/PREFIX for a cluster of equal agents that survives the loss of any host').env('CHAAC_META'))
  .addOption(new Option('--etcd-ca <file>', 'CA certificate to check the etcd members\' TLS certificates (turns TLS on)').env('CHAAC_ETCD_CA'))
  .addOption(new Option('--etcd-cert <file>', 'client certificate for etcd (TLS client authentication)').env('CHAAC_ETCD_CERT'))
  .addOption(new Option('--etcd-key <file>', 'private key of --etcd-cert').env('CHAAC_ETCD_KEY'))
  .addOption(new Option('--etcd-user <name>', 'etcd user (etcd authentication); the password comes from CHAAC_ETCD_PASSWORD').env('CHAAC_ETCD_USER'))
  .addOption(new Option('--listen <host:port>', 'where this agent listens for peers, with --pool or --join (port 0: any free port)').env('CHAAC_LISTEN').default(DEFAULTS.listen))
  .addOption(new Option('--replicas <k>', 'copies of each new ball, each on its own host (fewer while fewer hosts are alive; the pool copies balls again up to this)').env('CHAAC_REPLICAS').default(DEFAULTS.replicas))
  .addOption(new Option('--policy <policy>', 'the allocator policy that places new balls in bins').env('CHAAC_POLICY').choices(POLICIES).default(DEFAULTS.policy))
  .addOption(new Option('--rereplicate-after <seconds>', 'how long an agent may be gone before the data pool copies its balls to other bins').env('CHAAC_REREPLICATE_AFTER').default(DEFAULTS.rereplicateAfter))
  .addOption(new Option('--peer-timeout <seconds>', 'deadline of a request to a peer agent (a ball gets 1 s more per 10 MB); then the next copy is tried').env('CHAAC_PEER_TIMEOUT').default(DEFAULTS.peerTimeout))
  .addOption(new Option('--secret <secret>', 'the cluster secret every agent of the cluster shares; needed to listen beyond loopback (prefer the variable: a flag shows in ps)').env('CHAAC_SECRET'))
  .addOption(new Option('--admin-token <token>', 'the token that allows changes through the HTTP API (PUT /api/v1/scheme, as Authorization: Bearer <token>); none: the API is read-only (prefer the variable: a flag shows in ps)').env('CHAAC_ADMIN_TOKEN'))
  .addOption(new Option('--auto-bins <fill>', 'when the disk bins are fuller than this together (0..1, e.g. 0.8), the cluster\'s background worker launches a disk bin (a data container) on the least loaded host').env('CHAAC_AUTO_BINS'))
  .addOption(new Option('--auto-bins-capacity <size>', 'the capacity of a bin --auto-bins launches').env('CHAAC_AUTO_BINS_CAPACITY').default(DEFAULTS.autoBinsCapacity))
  .addOption(new Option('--no-share-folder', 'leave the mount propagation of the folder that holds the chaac path as it is (by default the agent makes it a shared mount when it is private, for docker -v ...:rslave)').env('CHAAC_NO_SHARE_FOLDER'))
  .addOption(new Option('--volume-driver <name>', 'the name of the Docker volume driver this agent serves on /run/docker/plugins/NAME.sock (docker volume create -d NAME); none: no driver').env('CHAAC_VOLUME_DRIVER').default(DEFAULTS.volumeDriver))
  .addOption(new Option('--log-level <level>', 'how much to log (to stderr, as JSON lines)').env('CHAAC_LOG_LEVEL').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'))
  .action(async (flags: AgentFlags, cmd: Command) => await runAgent(flags, givenSettings(cmd)))

program.command('status')
  .description('print a summary of a running agent')
  .addOption(new Option('--http <host:port>', 'the agent\'s HTTP API').env('CHAAC_HTTP').default(DEFAULTS.http))
  .option('--json', 'print the raw JSON of GET /status')
  .action(async (opts: { http: string, json?: boolean }) => {
    const status = await getJson(opts.http, '/status') as Status
    if (opts.json) console.log(JSON.stringify(status, null, 2))
    else printStatus(status)
  })

program.command('locate')
  .description('show the balls of a file and the hosts and bins that hold them')
  .argument('<file>', 'a file under the chaac path (host path), or a path inside the namespace')
  .addOption(new Option('--http <host:port>', 'the agent\'s HTTP API').env('CHAAC_HTTP').default(DEFAULTS.http))
  .option('--json', 'print the raw JSON of GET /api/v1/location')
  .action(async (file: string, opts: { http: string, json?: boolean }) => {
    const status = await getJson(opts.http, '/status') as Status
    // A host path under the chaac path becomes a namespace path; anything else is one already.
    const inside = relative(status.mount.path, resolve(file))
    const path = inside.startsWith('..') ? file : '/' + inside
    const loc = await getJson(opts.http, `/api/v1/location?path=${encodeURIComponent(path)}`) as Location
    if (opts.json) {
      console.log(JSON.stringify(loc, null, 2))
      return
    }
    if (loc.inline) {
      console.log(`${loc.path}: ${formatSize(loc.size)} kept inline in the data pool (no balls)`)
      return
    }
    console.log(`${loc.path}: ${formatSize(loc.size)} in ${loc.balls.length} balls of up to ${formatSize(loc.chunkSize)}`)
    for (const b of loc.balls) {
      const copies = b.bins.map((x) => `${x.host ?? '?'} ${x.level ?? '?'}:${x.dir ?? '?'}${x.cached ? ' (cache)' : ''}`)
      const where = b.hole ? 'hole (zeros, no storage)' : [...copies, ...(b.cloud ? ['cloud tier'] : [])].join(', ')
      console.log(`  #${b.index} @${b.offset} +${b.length} ${b.id ?? '-'}  ${where}`)
      for (const s of b.slices ?? []) {
        const at = s.bins.map((x) => `${x.host ?? '?'} ${x.level ?? '?'}:${x.dir ?? '?'}`)
        console.log(`      slice @${b.offset + s.at} +${s.length} ${s.id}  ${[...(s.pooled ? ['data pool'] : []), ...at, ...(s.cloud ? ['cloud tier'] : [])].join(', ')}`)
      }
    }
  })

program.addCommand(benchCommand())
program.addCommand(formatCommand())
program.addCommand(metaCommand())
program.addCommand(binCommand())

interface Status {
  agent: { id: string, version: string, uptimeSeconds: number }
  mount: { path: string }
  http: string
  bins: Array<{ level: string, dir: string, capacity: number, used: number, balls: number, container: { name: string, path: string } | null, offline: number | null, draining: boolean }>
  reads: Record<string, number>
  cloud: { location: string, writePolicy: string, uploadQueue: number, garbage: number } | null
  files: number
  context: { ufCPU: number, ufMemory: number, ufFileSystem: number, ufNet: number } | null
  docker: { available: boolean, version?: string, reason?: string } | null
  volumeDriver?: { name: string, socket: string, listening: boolean, reason?: string } | null
  cluster: { role: string, peer: string | null, pool: string | null, meta: string, worker: boolean | null, reachable: boolean, agents: Array<{ id: string, alive: boolean }> }
}

interface Location {
  path: string
  size: number
  chunkSize: number
  inline: boolean
  balls: Array<{
    index: number
    offset: number
    length: number
    id: string | null
    hole: boolean
    cloud: boolean
    hosts: string[]
    slices?: Array<{ at: number, length: number, id: string, pooled: boolean, cloud: boolean, bins: Array<{ host: string | null, level: string | null, dir: string | null }> }>
    bins: Array<{ host: string | null, level: string | null, dir: string | null, cached: boolean }>
  }>
}

async function getJson (http: string, path: string): Promise<unknown> {
  check('--http', () => parseHostPort(http))
  return await requestJson(http, path)
}

function printStatus (s: Status): void {
  const pct = (x: number): string => `${Math.round(x * 100)}%`
  console.log(`agent ${s.agent.id} (chaac ${s.agent.version}), up ${s.agent.uptimeSeconds}s`)
  console.log(`chaac path: ${s.mount.path}    files: ${s.files}    http: ${s.http}`)
  console.log('bins:')
  for (const b of s.bins) {
    const where = b.container ? `container ${b.container.name}:${b.container.path}` : b.dir
    const state = b.offline !== null ? '  (container stopped: offline)' : b.draining ? '  (being emptied)' : ''
    console.log(`  ${b.level.padEnd(4)} ${formatSize(b.used).padStart(10)} of ${formatSize(b.capacity).padEnd(10)} ${String(b.balls).padStart(6)} balls  ${where}${state}`)
  }
  const r = s.reads
  console.log(`ball reads: ${r.localHit} local cache hits, ${r.remoteHit} remote cache hits, ${r.miss} cache misses, ${r.skip} cache skips`)
  console.log(s.cloud ? `cloud tier: ${s.cloud.location} (write ${s.cloud.writePolicy}, ${s.cloud.uploadQueue} balls queued for upload, ${s.cloud.garbage} in their grace period before deletion)` : 'cloud tier: none')
  const c = s.cluster
  if (c.role !== 'single') {
    const alive = c.agents.filter((a) => a.alive).length
    const how = c.role === 'pool' ? 'runs the data pool' : c.role === 'etcd' ? `metadata in ${c.meta}${c.worker === true ? ', runs the background work' : ''}` : `joined the data pool at ${c.pool ?? '?'}`
    console.log(`cluster: ${how} (${c.reachable ? 'reachable' : 'UNREACHABLE'}), peers at ${c.peer ?? '-'}, ${alive} of ${c.agents.length} agents alive`)
  }
  if (s.context) {
    console.log(`context: cpu ${pct(s.context.ufCPU)}, memory ${pct(s.context.ufMemory)}, filesystem ${pct(s.context.ufFileSystem)}, net ${pct(s.context.ufNet)}`)
  }
  if (s.docker) console.log(s.docker.available ? `docker: engine ${s.docker.version ?? ''} answers: containers' context sampled` : `docker: ${s.docker.reason ?? 'no engine'}`)
  const v = s.volumeDriver
  if (v) console.log(v.listening ? `docker volume driver: ${v.name} listening on ${v.socket} (docker volume create -d ${v.name})` : `docker volume driver: ${v.name} not listening: ${v.reason ?? 'stopped'}`)
}

interface AgentFlags {
  data: string
  mount: string
  http: string
  bin?: string[]
  chunkSize: string
  write: string
  cloud?: string
  s3Endpoint?: string
  s3Region?: string
  s3AccessKey?: string
  s3SecretKey?: string
  s3PathStyle?: string
  s3CreateBucket: string
  cloudTimeout: string
  cloudGcGrace: string
  cacheSkipOver: string
  inlineMax: string
  eviction: string
  attrTimeout: string
  busyPoll: string
  pool?: boolean
  join?: string
  meta?: string
  etcdCa?: string
  etcdCert?: string
  etcdKey?: string
  etcdUser?: string
  listen: string
  secret?: string
  replicas: string
  policy: string
  rereplicateAfter: string
  peerTimeout: string
  logLevel: string
  adminToken?: string
  autoBins?: string
  autoBinsCapacity: string
  volumeDriver: string
  shareFolder: boolean
}

// The cluster's settings the user gave, by flag or variable: only those may contradict the stored ones.
function givenSettings (cmd: Command): GivenSettings {
  const given: GivenSettings = {}
  for (const name of SETTING_NAMES) {
    const source = cmd.getOptionValueSource(name)
    if (source === 'cli' || source === 'env') given[name] = source as 'cli' | 'env'
  }
  return given
}

function configFromFlags (f: AgentFlags, given: GivenSettings = {}): AgentConfig {
  const data = resolve(f.data)
  // From the environment, CHAAC_BIN arrives as one comma-separated string.
  const binTexts = (f.bin ?? []).flatMap((b) => b.split(',')).filter((b) => b !== '')
  const chunkSize = check('--chunk-size', () => parseSize(f.chunkSize))
  if (chunkSize < 64 * 1024 || chunkSize > 64 * 1024 * 1024) throw new InvalidArgumentError('--chunk-size must be between 64KiB and 64MiB')
  const inlineMax = check('--inline-max', () => parseSize(f.inlineMax))
  if (inlineMax > MAX_INLINE_BYTES) throw new InvalidArgumentError(`--inline-max must be at most ${formatSize(MAX_INLINE_BYTES)}`)
  const bins = binTexts.length > 0 ? binTexts.map((b) => check('--bin', () => parseBin(b))) : defaultBins(data)
  // Two bins in one directory would share one bin id and count every ball twice.
  const dirs = bins.map((b) => b.dir)
  const twice = dirs.find((d, i) => dirs.indexOf(d) !== i)
  if (twice !== undefined) throw new InvalidArgumentError(`--bin: two bins use the directory ${twice}`)
  const attrTimeout = Number(f.attrTimeout)
  if (!Number.isFinite(attrTimeout) || attrTimeout < 0) throw new InvalidArgumentError('--attr-timeout must be a number of seconds')
  const busyPollUs = Number(f.busyPoll)
  if (!Number.isInteger(busyPollUs) || busyPollUs < 0 || busyPollUs > MAX_BUSY_POLL_US) {
    throw new InvalidArgumentError(`--busy-poll must be a whole number of microseconds from 0 to ${MAX_BUSY_POLL_US}`)
  }
  const cluster = clusterFromFlags(f)
  const http = check('--http', () => parseHostPort(f.http))
  // A cloud setting of the cluster (directory: this agent's own), with this agent's S3 endpoint and credentials.
  const cloudOf = (text: string): CloudSpec | undefined => parseCloud(text, {
    endpoint: f.s3Endpoint, region: f.s3Region, accessKey: f.s3AccessKey, secretKey: f.s3SecretKey, pathStyle: f.s3PathStyle, createBucket: f.s3CreateBucket
  }, check('--cloud-timeout', () => parseSeconds(f.cloudTimeout)), process.env)
  const cloudFor = (setting: string): CloudSpec | undefined => cloudOf(setting === 'directory' ? resolve(data, 'cloud') : setting)
  check('--http', () => checkExposure('--http', http.host, cluster.secret))
  return {
    data,
    mount: resolve(f.mount),
    http,
    bins,
    chunkSize,
    writePolicy: oneOf('--write', WRITE_POLICIES, f.write),
    cloud: check('--cloud', () => cloudOf(f.cloud ?? resolve(data, 'cloud'))),
    cloudGcGraceMs: check('--cloud-gc-grace', () => parseSeconds(f.cloudGcGrace)),
    cacheSkipOver: check('--cache-skip-over', () => parseSize(f.cacheSkipOver)),
    inlineMax,
    eviction: oneOf('--eviction', EVICTION_POLICIES, f.eviction),
    attrTimeout,
    busyPollUs,
    contextIntervalMs: 5000,
    historyIntervalMs: historyInterval(process.env.CHAAC_HISTORY_INTERVAL_MS),
    cluster,
    adminToken: f.adminToken === undefined || f.adminToken === '' ? undefined : f.adminToken,
    autoBins: f.autoBins === undefined || f.autoBins === ''
      ? undefined
      : { fill: check('--auto-bins', () => parseFill(f.autoBins as string)), capacity: autoBinsCapacity(f.autoBinsCapacity) },
    volumeDriver: check('--volume-driver', () => parseVolumeDriver(f.volumeDriver)),
    shareFolder: f.shareFolder,
    settings: { given, cloudFor }
  }
}

function autoBinsCapacity (text: string): number {
  const bytes = check('--auto-bins-capacity', () => parseSize(text))
  if (bytes < MIN_CAPACITY) throw new InvalidArgumentError(`--auto-bins-capacity must be at least ${formatSize(MIN_CAPACITY)}`)
  return bytes
}

// Tests sample faster through CHAAC_HISTORY_INTERVAL_MS; users keep the 10 s.
function historyInterval (text: string | undefined): number {
  if (text === undefined || text === '') return 10_000
  const ms = Number(text)
  if (!Number.isInteger(ms) || ms < 100) throw new InvalidArgumentError('CHAAC_HISTORY_INTERVAL_MS must be a whole number of ms, at least 100')
  return ms
}

function clusterFromFlags (f: AgentFlags): ClusterConfig {
  if (f.pool === true && f.join !== undefined) throw new InvalidArgumentError('--pool and --join: an agent either runs the data pool or joins one')
  const url = f.meta === undefined ? undefined : check('--meta', () => parseMetaUrl(f.meta as string))
  if (url !== undefined && (f.pool === true || f.join !== undefined)) {
    throw new InvalidArgumentError(`--meta ${f.meta} keeps the metadata in etcd, where every agent is equal: no agent runs a data pool (--pool) or joins one (--join)`)
  }
  const meta = url === undefined
    ? undefined
    : check('--etcd-cert', () => etcdSpec(url, {
      ca: f.etcdCa, cert: f.etcdCert, key: f.etcdKey, user: f.etcdUser, password: process.env.CHAAC_ETCD_PASSWORD
    }))
  const listen = check('--listen', () => parseHostPort(f.listen))
  const secret = f.secret === '' ? undefined : f.secret
  const role = meta !== undefined ? 'etcd' : f.pool === true ? 'pool' : f.join !== undefined ? 'join' : 'single'
  if (role !== 'single') check('--listen', () => checkExposure('--listen', listen.host, secret))
  const pool = f.join === undefined ? undefined : check('--join', () => parsePoolUrl(f.join as string))
  const replicas = Number(f.replicas)
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 16) throw new InvalidArgumentError('--replicas must be a whole number from 1 to 16')
  const peerTimeoutMs = check('--peer-timeout', () => parseSeconds(f.peerTimeout))
  if (peerTimeoutMs < 100) throw new InvalidArgumentError('--peer-timeout must be at least 0.1 s')
  return {
    role,
    pool,
    meta,
    listen,
    secret,
    replicas,
    policy: oneOf('--policy', POLICIES, f.policy),
    rereplicateAfterMs: check('--rereplicate-after', () => parseSeconds(f.rereplicateAfter)),
    peerTimeoutMs
  }
}

function clusterLine (agent: Agent): string {
  const { role, pool } = agent.config.cluster
  if (role === 'single') return ''
  const peers = `\n  peers:       ${agent.peerUrl ?? ''}`
  if (role === 'etcd') return `${peers}   (metadata in ${describeEtcd(agent.config.cluster.meta as EtcdSpec)}; every agent equal)`
  return role === 'pool' ? `${peers}   (the data pool: other agents start with --join ${agent.peerUrl ?? ''})` : `${peers}   (joined the data pool at ${pool ?? ''})`
}

function volumesLine (agent: Agent): string {
  const v = agent.volumeDriver
  if (!v?.socket.listening) return ''
  return `  volumes:     docker volume create -d ${v.name} --name NAME; docker run -v NAME:/data ...   (folders of ${agent.config.mount}/volumes)\n`
}

/** Set once this process runs an agent. */
let serving = false

async function runAgent (flags: AgentFlags, given: GivenSettings): Promise<void> {
  serving = true
  setFlagsFromString(`--heap-growing-percent=${HEAP_GROWING_PERCENT}`)
  const config = configFromFlags(flags, given)
  const log = pino({ level: flags.logLevel, base: { pid: process.pid } }, pino.destination(2))
  const probe = process.env.CHAAC_TEST_CONTEXT_FILE ? new OverrideProbe(new SiProbe(), process.env.CHAAC_TEST_CONTEXT_FILE) : new SiProbe()
  const agent = await Agent.start(config, log, probe)
  const manager = serviceManager(log)
  const addr = agent.http.address
  const folder = agent.mount.folder?.path ?? dirname(resolve(config.mount))
  const http = addr ? `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}` : ''
  console.log(`chaac agent ${agent.id} is running
  chaac path:  ${config.mount}
  dashboard:   ${http}/
  status:      ${http}/status   (or: npx chaac status --http ${addr?.address}:${addr?.port})${clusterLine(agent)}
  containers:  docker run --rm -v ${folder}:/chaac:rslave busybox ls /chaac/${basename(config.mount)}
               (the folder that holds the chaac path, so that containers keep it across agent restarts)
${volumesLine(agent)}Press Ctrl-C to stop (the chaac path is unmounted cleanly).`)
  manager.notify({ READY: 1, STATUS: `serving the chaac path ${config.mount}` })
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'stopping')
    manager.notify({ STOPPING: 1, STATUS: `stopping (${signal}): unmounting ${config.mount}` })
    agent.close().then(() => process.exit(0), (err) => {
      log.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
  // A closed terminal (or systemd's SendSIGHUP=) sends it: the same clean stop; there is nothing to reload.
  process.on('SIGHUP', () => stop('SIGHUP'))
}

// Output piped into a reader that stopped early (`chaac status | head`) ends the command quietly;
// an agent goes on serving (it logs to stderr).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err
  if (!serving) process.exit(0)
})

program.parseAsync().catch((err: Error) => {
  console.error(`chaac: ${err.message}`)
  process.exit(1)
})
