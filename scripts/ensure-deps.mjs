#!/usr/bin/env node
// Installs what the agent (with --test, also the test suite; with --bench, the
// benchmarks) needs on a fresh Debian machine: Debian packages through apt,
// then the npm dependencies.
// Uses only Node's standard library: it runs before node_modules exists.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const forTests = process.argv.includes('--test')
const forBench = process.argv.includes('--bench')
// `npm run cluster -- --meta etcd` starts etcd members of its own.
const forCluster = process.argv.includes('--cluster')
// libfuse-dev: the headers native/chaac-fuse is built against; build-essential:
// the compiler and make that node-gyp drives (a bare Debian has neither);
// busybox-static: the image of the launcher's data containers (chaac bin create).
const aptPackages = ['libfuse2', 'libfuse-dev', 'fuse3', 'build-essential', 'busybox-static']
// iptables: the cluster tests cut an agent's traffic on its loopback address;
// fio, postgresql and sqlite3: concurrent writers and databases on the mount;
// etcd-server and etcd-client: the etcd metadata engine's members and etcdctl;
// chromium: the dashboard's browser tests (playwright-core drives /usr/bin/chromium).
if (forTests) aptPackages.push('docker.io', 'iproute2', 'iptables', 'rsync', 'git', 'sqlite3', 'fio', 'postgresql', 'ceph-mon', 'ceph-osd', 'radosgw', 'etcd-server', 'etcd-client', 'chromium')
if (forCluster) aptPackages.push('etcd-server', 'etcd-client')
// bench/single-host.ts drives fio, dd (coreutils) and a python3 script;
// bench/compare.ts also brings up bindfs, GlusterFS and MooseFS and runs git;
// bench/s3.ts runs a one-node Ceph with its RADOS Gateway; bench/meta.ts an etcd cluster.
if (forBench) {
  aptPackages.push('fio', 'python3', 'git', 'postgresql', 'bindfs', 'glusterfs-server', 'glusterfs-client',
    'moosefs-master', 'moosefs-chunkserver', 'moosefs-client', 'ceph-mon', 'ceph-osd', 'radosgw', 'etcd-server', 'etcd-client')
}

function run (cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { stdio: 'inherit', ...opts })
  if (r.status !== 0) {
    console.error(`chaac setup: '${cmd} ${args.join(' ')}' failed (exit ${r.status})`)
    process.exit(1)
  }
}

function missingDebianPackages () {
  return aptPackages.filter((p) => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' })
    return r.status !== 0 || !r.stdout.includes('install ok installed')
  })
}

const missing = existsSync('/usr/bin/dpkg-query') ? missingDebianPackages() : []
if (missing.length > 0) {
  const [cmd, ...pre] = process.getuid?.() === 0 ? ['apt-get'] : ['sudo', 'apt-get']
  console.error(`chaac setup: installing Debian packages: ${missing.join(' ')}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  // Maintainer scripts must not start daemons (glusterd, mfsmaster, ...): the
  // bench starts its own, on loopback, and stops them. policy-rc.d exiting 101
  // tells invoke-rc.d "not now"; a temporary one if the machine has none.
  const policy = '/usr/sbin/policy-rc.d'
  const ownPolicy = process.getuid?.() === 0 && !existsSync(policy)
  // Removed on any exit: run() exits the process when apt fails.
  const removePolicy = () => { if (ownPolicy && existsSync(policy)) unlinkSync(policy) }
  if (ownPolicy) {
    writeFileSync(policy, '#!/bin/sh\n# chaac scripts/ensure-deps.mjs: no service starts during this install\nexit 101\n', { mode: 0o755 })
    process.on('exit', removePolicy)
  }
  run(cmd, [...pre, 'update', '-q'], { env })
  run(cmd, [...pre, 'install', '-y', '-q', ...missing], { env })
  removePolicy()
}

// node_modules is current when npm's own record of it is newer than the lock file.
const lock = join(root, 'package-lock.json')
const installed = join(root, 'node_modules', '.package-lock.json')
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lock).mtimeMs) {
  console.error('chaac setup: installing npm dependencies (npm ci)')
  run('npm', ['ci', '--no-audit', '--no-fund'], { cwd: root })
}

// The FUSE addon (native/chaac-fuse, on libfuse's low-level API) is built from source
// with npm's bundled node-gyp, against Node's installed headers and the system libfuse.so.2.
const fuseDir = join(root, 'native', 'chaac-fuse')
const addon = join(fuseDir, 'build', 'Release', 'chaac_fuse.node')
// Every C source and header, and binding.gyp: a checkout that brings a new or changed one rebuilds.
const addonSources = readdirSync(fuseDir).filter((f) => /\.[ch]$/.test(f) || f === 'binding.gyp').map((f) => join(fuseDir, f))
if (!existsSync(addon) || addonSources.some((f) => statSync(f).mtimeMs > statSync(addon).mtimeMs)) {
  const nodePrefix = join(dirname(process.execPath), '..')
  const nodeGyp = process.env.npm_config_node_gyp ??
    join(nodePrefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')
  const args = [nodeGyp, 'rebuild', '--loglevel=warn', '--directory', fuseDir]
  // Headers next to the node binary (Debian, NodeSource): no download needed.
  if (existsSync(join(nodePrefix, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodePrefix}`)
  console.error('chaac setup: building the FUSE addon (native/chaac-fuse)')
  run(process.execPath, args, { cwd: root })
}
