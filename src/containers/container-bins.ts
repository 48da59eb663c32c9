// The data containers of this agent's host that are its bins: found at start
// and followed through the Docker engine's event stream (no polling). A
// container that starts becomes a bin; one that stops or goes takes its bin
// away, which stays known as offline (its copies keep counting for the
// re-replication grace period, as those of an agent gone do) until it starts
// again. Without an engine the agent works on with its directory bins, and
// connects once one answers.
import type { BinReport } from '../meta/schema.ts'
import type { Bin } from '../store/bin.ts'
import { containerBinSpec, hostDir, type ContainerBinSpec, type ContainerFacts } from './bin-labels.ts'
import type { BinEvent } from './docker-engine.ts'

/** What this needs of the Docker engine. */
export interface BinEngine {
  runningBins: () => Promise<ContainerFacts[]>
  inspect: (id: string) => Promise<ContainerFacts | undefined>
  events: (onEvent: (e: BinEvent) => void, onEnd: (err?: Error) => void) => Promise<() => void>
}

export interface ContainerBinsOptions {
  engine: BinEngine
  agentId: string
  /** Opens the bin of a container that runs (its directory `dir` on the host) and gives it to the store. */
  attach: (spec: ContainerBinSpec, dir: string) => Promise<Bin>
  /** Takes a bin away from the store. */
  detach: (bin: Bin) => Promise<void>
  log: { info: (obj: object, msg: string) => void, warn: (obj: object, msg: string) => void }
}

/** The container side of a bin, as the API shows it. */
export interface ContainerInfo { id: string, name: string, path: string, launched: boolean }

interface Entry {
  spec: ContainerBinSpec
  binId: string
  /** Set while the container runs. */
  bin?: Bin
  /** Since when the container is stopped or gone (ms since the epoch). */
  offlineSince?: number
  /** Use and balls when it went offline. */
  used: number
  balls: number
}

const RETRY_MIN_MS = 1000
const RETRY_MAX_MS = 30_000

export class ContainerBins {
  private readonly entries = new Map<string, Entry>()
  // One change at a time per container, in the order the events came.
  private readonly chains = new Map<string, Promise<void>>()
  private readonly refused = new Set<string>()
  private stopEvents?: () => void
  private retryTimer?: NodeJS.Timeout
  private retryMs = RETRY_MIN_MS
  private failing = false
  private closed = false
  /** Set once the engine answered. */
  connected = false

  constructor (private readonly opts: ContainerBinsOptions) {}

  start (): void {
    void this.connect()
  }

  private async connect (): Promise<void> {
    if (this.closed) return
    try {
      // Events first, then the list: a container that starts in between is seen by one or both.
      const stop = await this.opts.engine.events((e) => this.onEvent(e), (err) => this.lost(err))
      if (this.closed) {
        stop()
        return
      }
      this.stopEvents = stop
      const running = await this.opts.engine.runningBins()
      this.connected = true
      if (this.failing) this.opts.log.info({}, 'following the Docker engine\'s data containers again')
      this.failing = false
      this.retryMs = RETRY_MIN_MS
      const ids = new Set(running.map((f) => f.id))
      for (const facts of running) this.serial(facts.id, async () => await this.up(facts))
      for (const [id, entry] of this.entries) if (entry.bin && !ids.has(id)) this.serial(id, async () => await this.down(id))
    } catch (err) {
      this.lost(err as Error)
    }
  }

  // The stream ended (the engine restarted, or is not there): follow it again later.
  private lost (err?: Error): void {
    this.stopEvents?.()
    this.stopEvents = undefined
    const was = this.connected
    this.connected = false
    if (this.closed) return
    // An engine that never answered is logged once by the context monitor; one that went away, here.
    if (!this.failing && was) {
      this.opts.log.info({ err: err?.message }, 'not following data containers: the Docker engine went away; will try again')
      this.failing = true
    }
    clearTimeout(this.retryTimer)
    // Jitter, so that the agents of a host do not all come back at once.
    this.retryTimer = setTimeout(() => { void this.connect() }, this.retryMs * (0.5 + Math.random() / 2))
    this.retryTimer.unref()
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2)
  }

  private onEvent (e: BinEvent): void {
    this.serial(e.id, async () => {
      if (e.action !== 'start') {
        await this.down(e.id)
        return
      }
      const facts = await this.opts.engine.inspect(e.id)
      if (facts?.running === true) await this.up(facts)
    })
  }

  private serial (id: string, fn: () => Promise<void>): void {
    const next = (this.chains.get(id) ?? Promise.resolve()).then(fn).catch((err: Error) => {
      this.opts.log.warn({ container: id.slice(0, 12), err: err.message }, 'could not follow a data container')
    })
    this.chains.set(id, next)
    void next.then(() => { if (this.chains.get(id) === next) this.chains.delete(id) })
  }

  /** Waits until the changes under way for a container are done. */
  async settled (id: string): Promise<void> {
    await this.chains.get(id)
  }

  /** Adopts a container that runs now (the launcher calls this, the event does it too); its bin. */
  async adopt (id: string): Promise<Bin | undefined> {
    this.serial(id, async () => {
      const facts = await this.opts.engine.inspect(id)
      if (facts?.running === true) await this.up(facts)
    })
    await this.settled(id)
    return this.entries.get(id)?.bin
  }

  private async up (facts: ContainerFacts): Promise<void> {
    if (this.closed || this.entries.get(facts.id)?.bin) return
    let spec: ContainerBinSpec | undefined
    try {
      spec = containerBinSpec(facts, this.opts.agentId)
    } catch (err) {
      if (!this.refused.has(facts.id)) this.opts.log.warn({ container: facts.name }, `not a bin: ${(err as Error).message}`)
      this.refused.add(facts.id)
      return
    }
    if (spec === undefined) return
    const bin = await this.opts.attach(spec, hostDir(facts.pid, spec.path))
    const was = this.entries.get(facts.id)
    this.entries.set(facts.id, { spec, binId: bin.id, bin, used: bin.used, balls: bin.entries.size })
    this.opts.log.info({ container: spec.container.name, bin: bin.id, level: spec.level, capacity: spec.capacity },
      was ? 'a data container started again: its bin is back' : 'a data container became a bin')
  }

  private async down (id: string): Promise<void> {
    const entry = this.entries.get(id)
    const bin = entry?.bin
    if (!entry || !bin) return
    entry.bin = undefined
    entry.offlineSince = Date.now()
    entry.used = bin.used
    entry.balls = bin.entries.size
    await this.opts.detach(bin)
    this.opts.log.info({ container: entry.spec.container.name, bin: entry.binId }, 'a data container stopped: its bin is gone until it starts again')
  }

  /** The container of a bin, online or offline. */
  containerOf (binId: string): { containerId: string, info: ContainerInfo, online: boolean } | undefined {
    for (const [containerId, e] of this.entries) {
      if (e.binId === binId) return { containerId, info: info(e), online: e.bin !== undefined }
    }
    return undefined
  }

  /** The running bin of a container named by its bin's id, its name or its id (12 hex digits at least). */
  find (key: string): { containerId: string, spec: ContainerBinSpec, bin?: Bin } | undefined {
    for (const [containerId, e] of this.entries) {
      if (e.binId === key || e.spec.container.name === key || (key.length >= 12 && containerId.startsWith(key))) return { containerId, spec: e.spec, bin: e.bin }
    }
    return undefined
  }

  /** Takes a container's bin away for good (the launcher removes the container next). */
  async release (containerId: string): Promise<void> {
    this.serial(containerId, async () => {
      const bin = this.entries.get(containerId)?.bin
      this.entries.delete(containerId)
      if (bin) await this.opts.detach(bin)
    })
    await this.settled(containerId)
  }

  /** The bins of containers that are stopped or gone, as the agent reports them. */
  offline (): BinReport[] {
    return [...this.entries.values()].filter((e) => e.bin === undefined).map((e) => ({
      id: e.binId,
      level: e.spec.level,
      dir: e.spec.path,
      capacity: e.spec.capacity,
      used: e.used,
      balls: e.balls,
      container: info(e),
      offline: e.offlineSince
    }))
  }

  close (): void {
    this.closed = true
    clearTimeout(this.retryTimer)
    this.stopEvents?.()
  }
}

function info (e: Entry): ContainerInfo {
  return { id: e.spec.container.id.slice(0, 12), name: e.spec.container.name, path: e.spec.path, launched: e.spec.launched }
}
