// A throwaway S3 object store on loopback for trying Chaac's cloud tier by
// hand and for benchmarks: a one-node Ceph cluster with a RADOS Gateway
// (scripts/lib/ceph.ts). Runs in the foreground; Ctrl-C stops it and removes
// its temporary folder.
//
//   node bin/run-ts.mjs scripts/ceph-gateway.ts start [--port PORT] [--dir DIR] [--memstore SIZE]
import { parseArgs } from 'node:util'
import { parseSize } from '../src/units.ts'
import { startCeph } from './lib/ceph.ts'

const USAGE = `usage: node bin/run-ts.mjs scripts/ceph-gateway.ts start [options]
  --port PORT      the gateway's port on 127.0.0.1 (default: a free one)
  --dir DIR        folder for config, logs and metadata, kept afterwards; must not hold a cluster
                   (default: a temporary folder, removed on stop)
  --memstore SIZE  what the store may hold, all of it in RAM (default 4GiB)
Needs root and the Debian packages ceph-mon, ceph-osd and radosgw.`

const { values: flags, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string' },
    dir: { type: 'string' },
    memstore: { type: 'string', default: '4GiB' },
    help: { type: 'boolean', default: false }
  }
})

if (flags.help || positionals.join(' ') !== 'start') {
  if (flags.help) console.log(USAGE)
  else console.error(USAGE)
  process.exit(flags.help ? 0 : 2)
}
const port = flags.port === undefined ? undefined : Number(flags.port)
if (port !== undefined && !(Number.isInteger(port) && port > 0 && port < 65536)) throw new Error('--port must be a port number')

const ceph = await startCeph({ port, dir: flags.dir, memstoreBytes: parseSize(flags.memstore), log: (s) => console.error(s) })
console.log(`endpoint:   ${ceph.endpoint}  (path-style requests)
region:     ${ceph.region}
access key: ${ceph.accessKeyId}
secret key: ${ceph.secretAccessKey}
folder:     ${ceph.dir}
pids:       ${ceph.pids.join(' ')}

export AWS_ACCESS_KEY_ID=${ceph.accessKeyId}
export AWS_SECRET_ACCESS_KEY=${ceph.secretAccessKey}
export AWS_REGION=${ceph.region}
export CHAAC_S3_ENDPOINT=${ceph.endpoint}

Ctrl-C stops it.`)

let stopping = false
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return
    stopping = true
    console.error(`${signal}: stopping`)
    ceph.stop().then(() => process.exit(0), (err) => {
      console.error(err)
      process.exit(1)
    })
  })
}
