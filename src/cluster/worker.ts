// The background worker of a cluster on etcd: every agent keeps a liveness
// key under a lease of its own (gone by itself when the agent stops renewing
// it), and campaigns in an etcd election. The one elected runs what must run
// once for the whole cluster (re-replication, cloud-tier garbage, marking
// agents gone whose lease expired, compacting etcd's history) until it loses
// its lease; then another agent's campaign wins within the lease time.
//
// etcd keeps every earlier value of every key until the history is compacted:
// without compaction its database grows with every change until it hits its
// quota and refuses writes. The history of the last few minutes is kept, as
// etcd's own periodic auto-compaction would: enough for a watch that
// reconnects after a short cut to resume (a longer one takes a fresh snapshot).
import type { Etcd3, Lease, Namespace } from 'etcd3'
import type { NetLog } from '../net/peer-link.ts'

export interface WorkerOptions {
  etcd: Etcd3
  /** The cluster's key prefix in etcd. */
  prefix: string
  agentId: string
  /** Seconds a lease lives without renewal. */
  ttlSeconds: number
  log: NetLog
  /** Starts the work of the elected agent; the function it returns stops it. */
  onElected: () => () => Promise<void>
  /** How much of etcd's history the elected agent keeps (ms); default HISTORY_MS. */
  historyMs?: number
}

const LIVE_PREFIX = 'l!'
const COMPACT_EVERY_MS = 60_000
/** How much history is kept. */
export const HISTORY_MS = 5 * 60_000

export class BackgroundWorker {
  private readonly ns: Namespace
  private lease?: Lease
  private stopWork?: () => Promise<void>
  private closed = false
  private campaigning?: Promise<void>
  private retryTimer?: NodeJS.Timeout
  private resign?: () => Promise<void>

  constructor (private readonly opts: WorkerOptions) {
    this.ns = opts.etcd.namespace(opts.prefix)
  }

  /** Whether this agent runs the cluster's background work now. */
  get elected (): boolean {
    return this.stopWork !== undefined
  }

  start (): void {
    this.keepAlive()
    this.campaign()
  }

  /** The agents whose liveness key is there (their lease is current). */
  async liveAgents (): Promise<Set<string>> {
    const keys = await this.ns.getAll().prefix(LIVE_PREFIX).keys()
    return new Set(keys.map((k) => k.slice(LIVE_PREFIX.length)))
  }

  private keepAlive (): void {
    if (this.closed) return
    const lease = this.opts.etcd.namespace(this.opts.prefix).lease(this.opts.ttlSeconds, { autoKeepAlive: true })
    this.lease = lease
    lease.on('lost', (err) => {
      if (this.closed || lease !== this.lease) return
      this.opts.log.warn({ err: err.message }, 'lost this agent\'s etcd lease; registering again')
      this.retry(() => this.keepAlive())
    })
    lease.put(LIVE_PREFIX + this.opts.agentId).value(String(Date.now())).exec().catch((err: Error) => {
      if (this.closed || lease !== this.lease) return
      this.opts.log.warn({ err: err.message }, 'could not register this agent\'s liveness in etcd; trying again')
      void lease.revoke().catch(() => {})
      this.retry(() => this.keepAlive())
    })
  }

  private campaign (): void {
    if (this.closed || this.campaigning) return
    this.campaigning = (async () => {
      const campaign = this.ns.election('worker', this.opts.ttlSeconds).campaign(this.opts.agentId)
      await new Promise<void>((resolve) => {
        campaign.on('elected', () => {
          if (this.closed) {
            void campaign.resign().catch(() => {})
            resolve()
            return
          }
          this.opts.log.info({ agent: this.opts.agentId }, 'elected to run the cluster\'s background work')
          const stopWork = this.opts.onElected()
          const stopCompacting = this.compactHistory()
          this.stopWork = async () => {
            stopCompacting()
            await stopWork()
          }
        })
        campaign.on('error', (err: Error) => {
          if (!this.closed) this.opts.log.warn({ err: err.message }, 'lost the election of the background worker; campaigning again')
          resolve()
        })
        this.resign = async () => {
          await campaign.resign().catch(() => {})
          resolve()
        }
      })
      await this.stop()
    })().finally(() => {
      this.campaigning = undefined
      this.retry(() => this.campaign())
    })
  }

  // Every minute, notes the revision; compacts up to the one noted `historyMs` ago.
  private compactHistory (): () => void {
    const seen: Array<{ at: number, rev: number }> = []
    let compacted = 0
    const pass = async (): Promise<void> => {
      const now = Date.now()
      const res = await this.opts.etcd.kv.range({ key: Buffer.from(this.opts.prefix) })
      seen.push({ at: now, rev: Number(res.header.revision) })
      let upTo = 0
      while (seen.length > 0 && now - seen[0].at >= (this.opts.historyMs ?? HISTORY_MS)) upTo = (seen.shift() as { rev: number }).rev
      if (upTo <= compacted) return
      await this.opts.etcd.kv.compact({ revision: upTo }).catch((err: Error) => {
        // Another client (etcd's own auto-compaction, another cluster on these members) may have compacted further.
        if (!/required revision has been compacted/.test(err.message)) throw err
      })
      compacted = upTo
    }
    // Once per outage: an etcd user without the right to compact (only root has it) would otherwise fill the log.
    let failing = false
    const timer = setInterval(() => {
      pass().then(() => { failing = false }, (err: Error) => {
        if (!failing) this.opts.log.warn({ err: err.message }, 'could not compact etcd\'s history (etcd\'s own --auto-compaction can do it); will try again')
        failing = true
      })
    }, COMPACT_EVERY_MS)
    timer.unref()
    void pass().catch(() => {})
    return () => clearInterval(timer)
  }

  private async stop (): Promise<void> {
    const stop = this.stopWork
    this.stopWork = undefined
    await stop?.()
  }

  private retry (fn: () => void): void {
    if (this.closed) return
    clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(fn, 500)
    this.retryTimer.unref()
  }

  /** Stops the work, resigns and revokes the lease (the liveness key goes with it). */
  async close (): Promise<void> {
    this.closed = true
    clearTimeout(this.retryTimer)
    await this.resign?.()
    await this.campaigning
    await this.stop()
    await this.lease?.revoke().catch(() => {})
  }
}
