// Prometheus metrics, read from the agent's state at each scrape.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { AgentView } from './agent-view.ts'

export function buildMetrics (agent: AgentView): Registry {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'chaac_' })
  registry.setDefaultLabels({ agent: agent.id })
  new Counter({
    name: 'chaac_ball_reads_total',
    help: 'Ball reads by outcome: local cache hit, remote cache hit, cache miss (cloud tier), cache skip',
    labelNames: ['outcome'],
    registers: [registry],
    collect () {
      this.reset()
      // Reads the binding's read threads served are local cache hits too.
      const outcomes = agent.counters()
      this.inc({ outcome: 'local_hit' }, outcomes.localHit)
      this.inc({ outcome: 'remote_hit' }, outcomes.remoteHit)
      this.inc({ outcome: 'miss' }, outcomes.miss)
      this.inc({ outcome: 'skip' }, outcomes.skip)
    }
  })
  new Counter({
    name: 'chaac_native_reads_total',
    help: 'Reads served by the FUSE binding\'s own threads from local ball files, without the JS thread (their ball reads count as local hits above)',
    registers: [registry],
    collect () {
      this.reset()
      this.inc(agent.mount.nativeReads().reads)
    }
  })
  new Counter({
    name: 'chaac_fs_errors_total',
    help: 'File operations a program saw fail: answered EIO (by the error code, UNEXPECTED for a bug) or ETIMEDOUT (past the op deadline)',
    labelNames: ['errno', 'code', 'op'],
    registers: [registry],
    collect () {
      this.reset()
      for (const { errno, code, op, count } of agent.mount.errors.totals()) this.inc({ errno, code, op }, count)
    }
  })
  const binGauge = (name: string, help: string, value: (b: AgentView['store']['bins'][number]) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['bin', 'level'],
      registers: [registry],
      collect () {
        for (const b of agent.store.bins) this.set({ bin: b.id, level: b.level }, value(b))
      }
    })
  }
  binGauge('chaac_bin_capacity_bytes', 'Hard capacity of each bin', (b) => b.capacity)
  binGauge('chaac_bin_used_bytes', 'Bytes of balls stored in each bin', (b) => b.used)
  binGauge('chaac_bin_balls', 'Balls stored in each bin', (b) => b.entries.size)
  new Gauge({
    name: 'chaac_upload_queue_depth',
    help: 'Balls waiting for upload to the cloud tier',
    registers: [registry],
    collect () { this.set(agent.uploader.depth) }
  })
  new Gauge({
    name: 'chaac_cloud_garbage_balls',
    help: 'Balls no file references whose cloud tier copy waits for the end of its grace period',
    registers: [registry],
    collect () { this.set(agent.collector.pending) }
  })
  new Gauge({
    name: 'chaac_inodes',
    help: 'Files, directories and links in the namespace',
    registers: [registry],
    collect () { this.set(agent.pool.inodeCount) }
  })
  new Gauge({
    name: 'chaac_host_utilisation',
    help: 'Host utilisation factors (0..1) from the context monitor',
    labelNames: ['factor'],
    registers: [registry],
    collect () {
      const ctx = agent.context.latest
      if (!ctx) return
      this.set({ factor: 'cpu' }, ctx.ufCPU)
      this.set({ factor: 'memory' }, ctx.ufMemory)
      this.set({ factor: 'filesystem' }, ctx.ufFileSystem)
      this.set({ factor: 'net' }, ctx.ufNet)
    }
  })
  return registry
}
