// The filesystems bench/compare.ts measures side by side, each brought up in
// its own fresh folder on loopback only, and taken down again: daemons
// stopped by PID, mounts unmounted. See /work/shared/PEERS.md-style notes in
// bench/README.md for why each is set up the way it is.
import { appendFile, copyFile, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { Daemon, delay, isMounted, killPids, pidsMentioning, run, unmount, waitFor } from './proc.ts'

const PROJECT = resolve(import.meta.dirname, '..', '..')
const CLI = join(PROJECT, 'bin', 'chaac.mjs')

export type TargetId = 'local' | 'bindfs' | 'glusterfs' | 'moosefs' | 'chaac'

export interface Target {
  id: TargetId
  /** How it is set up, for the results. */
  describe: string
  /** Where the workloads run. */
  dir: string
  setup: () => Promise<void>
  /** Empties the target's own caches (client remount, agent restart); the caller drops the kernel's. */
  cold: () => Promise<void>
  /** The processes whose memory counts for this target. */
  pids: () => Promise<number[]>
  teardown: () => Promise<void>
}

/** A FUSE client daemon started in the foreground; remounted to empty its caches. */
export class FuseClient {
  daemon?: Daemon
  constructor (readonly name: string, readonly mount: string, private readonly cmd: string, private readonly args: string[], private readonly logFile: string) {}

  async mountIt (): Promise<void> {
    this.daemon = new Daemon(this.name, this.cmd, this.args, this.logFile)
    await this.daemon.start()
    const d = this.daemon
    await waitFor(`${this.name} to mount ${this.mount}`, async () => await isMounted(this.mount), 60_000, () => d.assertRunning())
  }

  async unmountIt (): Promise<void> {
    await unmount(this.mount)
    await this.daemon?.stop(15_000)
    this.daemon = undefined
  }
}

export function localTarget (root: string): Target {
  const dir = join(root, 'local')
  return {
    id: 'local',
    describe: `a plain folder on the disk (the physical limit); every other target keeps its data on this same filesystem`,
    dir,
    setup: async () => { await mkdir(dir) },
    cold: async () => {},
    pids: async () => [],
    teardown: async () => {}
  }
}

export function bindfsTarget (root: string): Target {
  const src = join(root, 'bindfs-data')
  const dir = join(root, 'bindfs')
  const client = new FuseClient('bindfs', dir, 'bindfs', ['-f', '-o', 'big_writes', src, dir], join(root, 'logs', 'bindfs.log'))
  return {
    id: 'bindfs',
    describe: '`bindfs -f -o big_writes DATA MOUNT` (Debian bindfs, libfuse 2): a FUSE passthrough in C, the floor for any FUSE filesystem',
    dir,
    setup: async () => {
      await mkdir(src)
      await mkdir(dir)
      await client.mountIt()
    },
    cold: async () => {
      await client.unmountIt()
      await client.mountIt()
    },
    pids: async () => client.daemon?.pid !== undefined ? [client.daemon.pid] : [],
    teardown: async () => { await client.unmountIt() }
  }
}

const GLUSTER_HOST = 'chaac-bench-gluster'
const GLUSTER_HOSTS_LINE = `127.0.0.1 ${GLUSTER_HOST}   # chaac bench/compare.ts, removed at its end`
const GLUSTER_VOLUME = 'chaacbench'

/** Removes the alias line from /etc/hosts (also one left by a run that was killed). */
async function removeGlusterAlias (): Promise<void> {
  const hosts = await readFile('/etc/hosts', 'utf8')
  const kept = hosts.split('\n').filter((l) => l !== GLUSTER_HOSTS_LINE)
  if (kept.length !== hosts.split('\n').length) await writeFile('/etc/hosts', kept.join('\n'))
}

export function glusterTarget (root: string): Target {
  const base = join(root, 'gluster')
  const dir = join(root, 'glusterfs')
  const logs = join(root, 'logs')
  const vol = join(base, 'glusterd.vol')
  const glusterd = new Daemon('glusterd', 'glusterd', ['-N', '-f', vol, '-p', join(base, 'glusterd.pid'), `--log-file=${join(logs, 'glusterd.log')}`], join(logs, 'glusterd.out'))
  const client = new FuseClient('glusterfs client', dir, 'glusterfs',
    ['-N', '--volfile-server=127.0.0.1', `--volfile-id=${GLUSTER_VOLUME}`, `--log-file=${join(logs, 'glusterfs-client.log')}`, dir], join(logs, 'glusterfs-client.out'))
  const bricks = [join(base, 'brick1'), join(base, 'brick2')]
  const gluster = async (...args: string[]): Promise<string> => (await run('gluster', ['--mode=script', ...args], { timeoutMs: 120_000 })).stdout
  let aliasAdded = false
  return {
    id: 'glusterfs',
    describe: `GlusterFS (Debian glusterfs-server, glusterfs-client): glusterd on 127.0.0.1 only (its own working directory and volfile), a distributed volume of two bricks on this machine, mounted with the glusterfs FUSE client; default volume options`,
    dir,
    setup: async () => {
      await mkdir(join(base, 'wd'), { recursive: true })
      for (const b of bricks) await mkdir(b)
      await mkdir(dir)
      // glusterd from our own volfile: the packaged /etc/glusterfs/glusterd.vol stays as it is.
      await writeFile(vol, `volume management
    type mgmt/glusterd
    option working-directory ${join(base, 'wd')}
    option transport-type socket
    option transport.socket.bind-address 127.0.0.1
    option transport.socket.listen-port 24007
    option transport.socket.keepalive-time 10
    option transport.socket.keepalive-interval 2
    option transport.socket.read-fail-log off
    option ping-timeout 0
    option event-threads 1
    option max-port 60999
end-volume
`)
      // The gluster CLI refuses 127.0.0.1 and localhost as a brick host: an alias that resolves to 127.0.0.1.
      await removeGlusterAlias()
      await appendFile('/etc/hosts', (/\n$/.test(await readFile('/etc/hosts', 'utf8')) ? '' : '\n') + GLUSTER_HOSTS_LINE + '\n')
      aliasAdded = true
      await glusterd.start()
      await waitFor('glusterd to answer', async () => await gluster('volume', 'list').then(() => true, () => false), 60_000, () => glusterd.assertRunning())
      await gluster('volume', 'create', GLUSTER_VOLUME, ...bricks.map((b) => `${GLUSTER_HOST}:${b}`), 'force')
      await gluster('volume', 'start', GLUSTER_VOLUME)
      await client.mountIt()
    },
    cold: async () => {
      await client.unmountIt()
      await client.mountIt()
    },
    pids: async () => {
      const pids = [glusterd.pid, client.daemon?.pid].filter((p): p is number => p !== undefined)
      return [...pids, ...(await pidsMentioning(join(base, 'brick')))]
    },
    teardown: async () => {
      await client.unmountIt()
      if (glusterd.running) await gluster('volume', 'stop', GLUSTER_VOLUME, 'force').catch(() => '')
      await glusterd.stop()
      // Bricks (glusterfsd) are glusterd's children, started as daemons: any left are found by their brick folder.
      await killPids(await pidsMentioning(base))
      await rm(`/var/run/gluster/vols/${GLUSTER_VOLUME}`, { recursive: true, force: true })
      if (aliasAdded) await removeGlusterAlias()
    }
  }
}

export function moosefsTarget (root: string): Target {
  const base = join(root, 'moosefs')
  const dir = join(root, 'moosefs-mount')
  const logs = join(root, 'logs')
  const master = new Daemon('mfsmaster', 'mfsmaster', ['-c', join(base, 'mfsmaster.cfg'), '-f', 'start'], join(logs, 'mfsmaster.log'))
  const chunkserver = new Daemon('mfschunkserver', 'mfschunkserver', ['-c', join(base, 'mfschunkserver.cfg'), '-f', 'start'], join(logs, 'mfschunkserver.log'))
  const client = new FuseClient('mfsmount', dir, 'mfsmount', [dir, '-H', '127.0.0.1', '-P', '9421', '-f'], join(logs, 'mfsmount.log'))
  return {
    id: 'moosefs',
    describe: 'MooseFS (Debian moosefs-master, moosefs-chunkserver, moosefs-client): master and one chunkserver on 127.0.0.1 (nice 0), mounted with `mfsmount -H 127.0.0.1 -P 9421`; goal 1 and trash time 0 on the mount (one chunkserver holds one copy anyway)',
    dir,
    setup: async () => {
      for (const d of ['master', 'cs', 'chunks']) await mkdir(join(base, d), { recursive: true })
      await mkdir(dir)
      await copyFile('/var/lib/mfs/metadata.mfs.empty', join(base, 'master', 'metadata.mfs'))
      const common = 'WORKING_USER = root\nWORKING_GROUP = root\nNICE_LEVEL = 0\n'
      // MooseFS refuses 127.0.0.0/8 between chunkserver and master: the chunkserver
      // dials 0.0.0.0 (loopback on Linux) and the master remaps its address to it.
      await writeFile(join(base, 'mfsmaster.cfg'), common + `DATA_PATH = ${join(base, 'master')}
EXPORTS_FILENAME = ${join(base, 'mfsexports.cfg')}
MATOML_LISTEN_HOST = 127.0.0.1
MATOCS_LISTEN_HOST = 127.0.0.1
MATOCL_LISTEN_HOST = 127.0.0.1
REMAP_BITS = 32
REMAP_SOURCE_IP_CLASS = 127.0.0.1
REMAP_DESTINATION_IP_CLASS = 0.0.0.0
`)
      await writeFile(join(base, 'mfsexports.cfg'), '127.0.0.1 / rw,alldirs,admin,maproot=0:0\n127.0.0.1 . rw\n')
      await writeFile(join(base, 'mfschunkserver.cfg'), common + `DATA_PATH = ${join(base, 'cs')}
HDD_CONF_FILENAME = ${join(base, 'mfshdd.cfg')}
MASTER_HOST = 0.0.0.0
BIND_HOST = 127.0.0.1
CSSERV_LISTEN_HOST = 127.0.0.1
`)
      await writeFile(join(base, 'mfshdd.cfg'), join(base, 'chunks') + '\n')
      await master.start()
      await waitFor('mfsmaster to listen', async () => /main master server module: listen on/.test(await master.logText()), 60_000, () => master.assertRunning())
      await chunkserver.start()
      await waitFor('the chunkserver to register and scan its folder', async () => {
        const cs = await chunkserver.logText()
        return /connected to Master/.test(cs) && /scanning folder .*: complete/.test(cs) &&
          /chunkserver register end/.test(await master.logText())
      }, 60_000, () => { master.assertRunning(); chunkserver.assertRunning() })
      // The master learns the chunkserver's space shortly after it registers.
      await delay(2000)
      await client.mountIt()
      await run('mfssetgoal', ['-r', '1', dir])
      await run('mfssettrashtime', ['-r', '0', dir])
    },
    cold: async () => {
      await client.unmountIt()
      await client.mountIt()
    },
    pids: async () => [master.pid, chunkserver.pid, client.daemon?.pid].filter((p): p is number => p !== undefined),
    teardown: async () => {
      await client.unmountIt()
      await chunkserver.stop()
      await master.stop()
      await killPids(await pidsMentioning(base))
    }
  }
}

export interface ChaacOptions {
  memBin: string
  memBinSize: string
  /** Extra words for the agent's node command line (e.g. --cpu-prof); from CHAAC_BENCH_AGENT_NODE_ARGS. */
  nodeArgs: string[]
}

/** What sets one benchmark's agents apart from another's. */
export interface ChaacAgentOptions {
  /** Capacity of the disk-level bin; default 64GiB. */
  diskBinSize?: string
  /** The cloud tier's flags; default `--cloud none`. */
  cloud?: string[]
  /** Added to the agent's environment (e.g. the S3 keys, which a flag would show in ps). */
  env?: NodeJS.ProcessEnv
}

/** One agent over a fixed data folder, memory bin and chaac path, so that it can restart with the same files. */
export class ChaacAgent {
  daemon?: Daemon
  /** The node flags of the running agent; a cold restart keeps them. */
  nodeArgs: string[] = []
  /** http://HOST:PORT of the running agent's HTTP API. */
  url = ''
  constructor (readonly data: string, readonly mount: string, readonly memBin: string, readonly memBinSize: string, readonly logFile: string,
    private readonly opts: ChaacAgentOptions = {}) {}

  get diskBin (): string {
    return join(this.data, 'bins', 'disk0')
  }

  get args (): string[] {
    return [
      'agent', '--volume-driver', 'none', '--no-share-folder', '--data', this.data, '--mount', this.mount, '--http', '127.0.0.1:0',
      '--bin', `mem:${this.memBin}:${this.memBinSize}`,
      '--bin', `disk:${this.diskBin}:${this.opts.diskBinSize ?? '64GiB'}`,
      ...(this.opts.cloud ?? ['--cloud', 'none'])
    ]
  }

  async start (nodeArgs: string[] = this.nodeArgs): Promise<void> {
    this.nodeArgs = nodeArgs
    const env = { ...process.env, CHAAC_LOG_LEVEL: 'warn', ...this.opts.env }
    const d = new Daemon('chaac agent', process.execPath, [...nodeArgs, CLI, ...this.args], this.logFile, env)
    this.daemon = d
    const before = (await d.logText()).length
    await d.start()
    // The CLI prints its status URL once the mount and the HTTP API are up.
    const statusUrl = async (): Promise<string | undefined> => /status:\s+(http:\/\/[\d.]+:\d+)\/status/.exec((await d.logText()).slice(before))?.[1]
    await waitFor('the chaac agent to start', async () => await statusUrl() !== undefined, 60_000, () => d.assertRunning())
    this.url = await statusUrl() as string
  }

  /** GET a JSON document of the agent's HTTP API (e.g. /status). */
  async json (path: string): Promise<any> {
    const res = await fetch(this.url + path, { signal: AbortSignal.timeout(10_000) })
    if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`)
    return await res.json()
  }

  async stop (): Promise<void> {
    await this.daemon?.stop()
    this.daemon = undefined
    await unmount(this.mount)
  }

  /** Stops the agent, empties its memory-level bin (keeping the bin's identity file) and starts it again. */
  async restartCold (nodeArgs: string[] = this.nodeArgs): Promise<void> {
    await this.stop()
    for (const name of await readdir(this.memBin)) {
      if (name !== '.chaac-bin') await rm(join(this.memBin, name), { recursive: true, force: true })
    }
    await this.start(nodeArgs)
  }
}

export function chaacTarget (root: string, agent: ChaacAgent, nodeArgs: string[]): Target {
  return {
    id: 'chaac',
    describe: `one Chaac agent (\`chaac ${agent.args.join(' ').replaceAll(root, '<tmp>').replace(agent.memBin, '<tmpfs dir>')}\`): ` +
      'a memory-level bin on tmpfs (the default 256 MiB), a disk-level bin on the disk, no cloud tier',
    dir: agent.mount,
    setup: async () => {
      await mkdir(agent.memBin, { recursive: true })
      await agent.start(nodeArgs)
    },
    cold: async () => { await agent.restartCold() },
    pids: async () => agent.daemon?.pid !== undefined ? [agent.daemon.pid] : [],
    teardown: async () => { await agent.stop() }
  }
}
