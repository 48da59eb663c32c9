// Samples the host's context every few seconds and keeps the latest.
import type { ContainerUse } from './container-probe.ts'
import type { HostContext, HostProbe } from './host-context.ts'

export class ContextMonitor {
  latest?: HostContext
  private timer?: NodeJS.Timeout
  private sampling?: Promise<void>
  private closed = false

  constructor (
    private readonly probe: HostProbe,
    private readonly dataDir: string,
    private readonly intervalMs: number,
    private readonly log: { warn: (obj: object, msg: string) => void },
    private readonly containers?: { sample: () => Promise<ContainerUse | undefined> }
  ) {}

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

  private sampleNow (): void {
    if (this.sampling) return
    const containers = this.containers?.sample().catch(() => undefined)
    this.sampling = this.probe.sample(this.dataDir)
      .then(async (ctx) => {
        const use = await containers
        if (!this.closed) this.latest = use ? { ...ctx, containers: use } : ctx
      })
      .catch((err) => this.log.warn({ err: (err as Error).message }, 'could not sample the host context'))
      .finally(() => { this.sampling = undefined })
  }
}
