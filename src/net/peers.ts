// The links of an agent to its peers, by agent id: one per peer, dialled
// when first needed at the address the peer reported. Requests go out on
// the links this agent dialled; those its peers dialled serve theirs, with
// the same handlers. A peer that could not be dialled is not dialled again
// for a while (backoff), and one that failed a request is suspect for a
// while, so that a lost peer costs a reader one deadline, not one per read.
import { ChaacError } from '../errors.ts'
import { connectPeer } from './peer-client.ts'
import type { Handlers, NetLog, PeerLink } from './peer-link.ts'

export interface PeersOptions {
  localId: string
  secret?: string
  log: NetLog
  /** Installed on every link, dialled or taken over. */
  handlers: Handlers
  /** Where the peer said it listens (ws://HOST:PORT), if it did. */
  urlOf: (agentId: string) => string | null | undefined
  maxFrameBytes: number
  windowBytes?: number
  chunkBytes?: number
  /** Deadline of connecting and authenticating. */
  connectTimeoutMs: number
  /** The address to dial from. */
  localAddress?: string
}

const MIN_BACKOFF_MS = 500
const MAX_BACKOFF_MS = 10_000
/** How long a peer that failed a request ranks behind the others. */
export const SUSPECT_MS = 30_000

export class Peers {
  private readonly links = new Map<string, PeerLink>()
  private readonly dialling = new Map<string, Promise<PeerLink>>()
  private readonly backoff = new Map<string, { until: number, ms: number }>()
  private readonly suspects = new Map<string, number>()
  private closed = false

  constructor (private readonly opts: PeersOptions) {}

  /** Serves a peer on a link it dialled. */
  accept (link: PeerLink): void {
    for (const [op, handler] of Object.entries(this.opts.handlers)) link.on(op, handler)
  }

  /** A link to the agent: the one up, or a new one (at most one dial at a time per peer). */
  async link (agentId: string): Promise<PeerLink> {
    const up = this.links.get(agentId)
    if (up !== undefined && !up.isClosed) return up
    const pending = this.dialling.get(agentId)
    if (pending) return await pending
    const wait = this.backoff.get(agentId)
    if (this.closed) throw new ChaacError('CHAAC_IO', 'the agent is shutting down')
    if (wait !== undefined && Date.now() < wait.until) {
      throw new ChaacError('CHAAC_IO', `peer ${agentId} could not be reached lately; trying again in ${wait.until - Date.now()} ms`)
    }
    const dial = this.dial(agentId, wait?.ms ?? 0)
    this.dialling.set(agentId, dial)
    try {
      return await dial
    } finally {
      this.dialling.delete(agentId)
    }
  }

  /** The smoothed round trip to the peer (ms), once measured. */
  rttMs (agentId: string): number | undefined {
    return this.links.get(agentId)?.rttMs
  }

  /** A request to the peer failed (its deadline passed, its link fell): rank it last for a while. */
  suspect (agentId: string): void {
    this.suspects.set(agentId, Date.now() + SUSPECT_MS)
  }

  /** A request to the peer succeeded. */
  trust (agentId: string): void {
    this.suspects.delete(agentId)
  }

  /** The peer is known to be back (it reported to the data pool): dial it at the next request. */
  forgive (agentId: string): void {
    this.suspects.delete(agentId)
    this.backoff.delete(agentId)
  }

  isSuspect (agentId: string): boolean {
    const until = this.suspects.get(agentId)
    if (until === undefined) return false
    if (Date.now() < until) return true
    this.suspects.delete(agentId)
    return false
  }

  /** Ids of the peers with a link up. */
  connected (): string[] {
    return [...this.links].filter(([, l]) => !l.isClosed).map(([id]) => id)
  }

  async close (): Promise<void> {
    this.closed = true
    await Promise.allSettled([...this.dialling.values()])
    await Promise.all([...this.links.values()].map(async (l) => await l.close()))
  }

  private async dial (agentId: string, lastBackoff: number): Promise<PeerLink> {
    const url = this.opts.urlOf(agentId)
    if (!url) throw new ChaacError('CHAAC_IO', `peer ${agentId} reported no address`)
    try {
      const link = await connectPeer(url, {
        localId: this.opts.localId,
        secret: this.opts.secret,
        log: this.opts.log,
        maxFrameBytes: this.opts.maxFrameBytes,
        windowBytes: this.opts.windowBytes,
        chunkBytes: this.opts.chunkBytes,
        handlers: this.opts.handlers,
        connectTimeoutMs: this.opts.connectTimeoutMs,
        localAddress: this.opts.localAddress
      })
      if (this.closed || link.peerId !== agentId) {
        await link.close()
        throw new ChaacError('CHAAC_IO', this.closed ? 'the agent is shutting down' : `${url} is agent ${link.peerId}, not ${agentId}`)
      }
      this.backoff.delete(agentId)
      this.links.set(agentId, link)
      void link.closed.then(() => {
        if (this.links.get(agentId) === link) this.links.delete(agentId)
      })
      return link
    } catch (err) {
      const ms = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, lastBackoff * 2))
      this.backoff.set(agentId, { until: Date.now() + ms, ms })
      this.suspect(agentId)
      throw err instanceof ChaacError ? err : new ChaacError('CHAAC_IO', `cannot reach peer ${agentId}: ${(err as Error).message}`, { cause: err })
    }
  }
}
