// Real etcd members for tests: three on 127.0.0.5-7 in a fresh temporary
// folder, stopped by PID and removed on teardown; and an address's traffic to
// them cut with iptables, as a network partition would.
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { startEtcd, type EtcdCluster } from '../../scripts/lib/etcd.ts'
import { dropTraffic } from './faults.ts'

export { type EtcdCluster, type EtcdMember } from '../../scripts/lib/etcd.ts'

export const ETCD_HOSTS = ['127.0.0.5', '127.0.0.6', '127.0.0.7']

export interface WithEtcdOptions {
  hosts?: string[]
  /**
   * Test files run side by side on the same addresses: give each file ports
   * of its own. By default both come from the test file's path (24000-31999,
   * below the ephemeral ports), a pair per cluster started in this process.
   */
  clientPort?: number
  peerPort?: number
  /** Members that speak TLS only, to clients with a certificate the CA signed. */
  tls?: { ca: string, cert: string, key: string }
}

let started = 0

export async function withEtcd (t: Test, opts: WithEtcdOptions = {}): Promise<EtcdCluster> {
  const base = 24_000 + (createHash('sha256').update(process.argv[1] ?? '').digest().readUInt16BE(0) % 400) * 20 + (started++ % 10) * 2
  const root = await mkdtemp(join(tmpdir(), 'chaac-etcd-'))
  let cluster: EtcdCluster | undefined
  t.teardown(async () => {
    await healAll()
    await cluster?.stop()
    await rm(root, { recursive: true, force: true })
  })
  cluster = await startEtcd({ hosts: opts.hosts ?? ETCD_HOSTS, root, clientPort: opts.clientPort ?? base, peerPort: opts.peerPort ?? base + 1, tls: opts.tls })
  return cluster
}

export interface Cut { heal: () => Promise<void> }

// Cuts still in place when a cluster is torn down: healed then, whatever the test did.
const cuts = new Set<Cut>()

async function healAll (): Promise<void> {
  for (const cut of cuts) await cut.heal()
}

/**
 * Drops every packet between `fromHost` and each of `targets` (HOST, or
 * HOST:PORT for that TCP port alone, e.g. a cluster's endpoints), both ways,
 * until heal(). Connections from elsewhere to the members still work.
 */
export async function cutOff (fromHost: string, targets: string[]): Promise<Cut> {
  const rules = targets.flatMap((target) => {
    const [host, port] = target.split(':')
    return [
      `OUTPUT -s ${fromHost} -d ${host}${port === undefined ? '' : ` -p tcp --dport ${port}`} -j DROP`,
      `OUTPUT -s ${host} -d ${fromHost}${port === undefined ? '' : ` -p tcp --sport ${port}`} -j DROP`
    ]
  })
  const dropped = await dropTraffic(rules)
  const cut: Cut = {
    heal: async () => {
      cuts.delete(cut)
      await dropped.heal()
    }
  }
  cuts.add(cut)
  return cut
}
