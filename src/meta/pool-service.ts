// The data pool's side of the cluster: answers replicas on their peer links
// (snapshot pages, revalidation, changes asked for by other agents) and
// pushes every stored batch to each subscribed replica, in order. A batch is
// pushed before the answer to the change that made it: on one link frames
// keep their order, so an agent that got its answer has seen its change.
import { ChaacError } from '../errors.ts'
import type { NetLog, PeerLink } from '../net/peer-link.ts'
import type { BatchOp } from './batch-writer.ts'
import type { DataPool } from './data-pool.ts'
import { OP, PAGE_BYTES, parseAfter, parseBallId, parseCall, parseIno, type CallReply, type Change } from './pool-protocol.ts'
import { isBytesKey } from './schema.ts'

export class PoolService {
  private readonly subscribers = new Set<PeerLink>()

  constructor (private readonly pool: DataPool, private readonly log: NetLog) {
    pool.on('change', (seq, ops, origin) => this.publish(seq, ops, origin))
  }

  /** Serves a replica on a new link. */
  attach (link: PeerLink): void {
    link.on(OP.subscribe, () => {
      this.subscribers.add(link)
      void link.closed.then(async () => {
        this.subscribers.delete(link)
        // An agent whose replica lost the pool is gone for the others at once (a killed process, a cut link).
        if ([...this.subscribers].some((l) => l.peerId === link.peerId)) return
        await this.pool.markGone(link.peerId).catch((err: Error) => this.log.warn({ peer: link.peerId, err: err.message }, 'could not mark an agent gone'))
      })
      return { seq: this.pool.seq }
    })
    link.on(OP.records, async (body) => await this.pool.records(parseAfter(body), PAGE_BYTES))
    link.on(OP.inline, async (body) => {
      const data = await this.pool.readInline(parseIno(body))
      // The replica checks the bytes against its inode once it has seen every change up to them.
      await this.pool.settled()
      return { data, seq: this.pool.seq }
    })
    link.on(OP.pooled, async (body) => ({ data: await this.pool.readPooled(parseBallId(body)) }))
    link.on(OP.revalidate, async () => {
      await this.pool.settled()
      return { seq: this.pool.seq }
    })
    link.on(OP.call, async (body): Promise<CallReply> => {
      const { method, args } = parseCall(body, link.peerId)
      // Called before any await: changes take effect in the order they arrive.
      const change = this.pool[method] as (...a: unknown[]) => Promise<unknown>
      try {
        const result = await this.pool.onBehalfOf(link.peerId, async () => await change.apply(this.pool, args))
        return { result, seq: this.pool.seq }
      } catch (err) {
        // A refusal may rest on a change not yet announced (a name another agent just took): announce it first.
        await this.pool.settled()
        throw err
      }
    })
  }

  private publish (seq: number, ops: BatchOp[], origin: string): void {
    // Replicas hold no file bytes (inline files, pooled slices: they ask when they need them): those stay here.
    const change: Change = { seq, origin, ops: ops.filter((op) => !isBytesKey(op.key)) }
    for (const link of this.subscribers) {
      link.request(OP.change, change).catch((err: ChaacError) => {
        if (link.isClosed) return
        // A replica that missed a change would go wrong quietly: it starts over with a fresh snapshot.
        this.log.warn({ peer: link.peerId, seq, err: err.message }, 'a replica did not take a change; closing its link')
        void link.close()
      })
    }
  }
}
