// Samples the host's context every few seconds and keeps the latest.
import type { ContainerProbe, DockerEngine } from './container-probe.ts'
import type { HostContext, HostProbe } from './host-context.ts'

export class ContextMonitor {
  latest?: HostContext
  private timer?: NodeJS.Timeout
  private sampling?: Promise<void>
  private closed = false
  // Whether the engine answered when last logged: its coming and going is logged once each time.
  private engineLogged?: boolean

  constructor (
    private readonly probe: HostProbe,
    private readonly dataDir: string,
    private readonly intervalMs: number,
    private readonly log: { info: (obj: object, msg: string) => void, warn: (obj: object, msg: string) => void },
    /** The containers on this host, where Docker answers. */
    readonly containers?: ContainerProbe
  ) {}

  /** The Docker engine as the last sample found it, for GET /status (null before the first sample or without a probe). */
  get docker (): Pick<DockerEngine, 'available' | 'version' | 'reason'> | null {
    const engine = this.containers?.engine
    if (engine === undefined) return null
    return engine.available ? { available: true, version: engine.version } : { available: false, reason: `no Docker engine at ${engine.socket} (${engine.reason ?? 'no answer'}): host context only` }
  }

  start (): void {
    this.sampleNow()
    this.timer = setInterval(() => this.sampleNow(), this.intervalMs)
    this.timer.unref()
  }

  /** Stops sampling; a sample under way is left to finish on its own (it may wait on a slow host). */
  close (): void {
    clearInterval(this.timer)
    this.closed = true
  }

  private logEngine (): void {
    const engine = this.containers?.engine
    if (engine === undefined || engine.available === this.engineLogged) return
    this.engineLogged = engine.available
    if (engine.available) this.log.info({ socket: engine.socket, version: engine.version }, `Docker engine ${engine.version ?? '?'} at ${engine.socket}: host and containers' context`)
    else this.log.info({ socket: engine.socket, reason: engine.reason }, `no Docker engine at ${engine.socket}: host context only`)
  }

  private sampleNow (): void {
    if (this.sampling) return
    const containers = this.containers?.sample().catch(() => undefined)
    this.sampling = this.probe.sample(this.dataDir)
      .then(async (ctx) => {
        const use = await containers
        this.logEngine()
        if (!this.closed) this.latest = use ? { ...ctx, containers: use } : ctx
      })
      .catch((err) => this.log.warn({ err: (err as Error).message }, 'could not sample the host context'))
      .finally(() => { this.sampling = undefined })
  }
}
