// Samples the host's context every few seconds and keeps the latest.
import type { HostContext, HostProbe } from './host-context.ts'

export class ContextMonitor {
  latest?: HostContext
  private timer?: NodeJS.Timeout
  private sampling?: Promise<void>

  constructor (
    private readonly probe: HostProbe,
    private readonly dataDir: string,
    private readonly intervalMs: number,
    private readonly log: { warn: (obj: object, msg: string) => void }
  ) {}

  start (): void {
    this.sampleNow()
    this.timer = setInterval(() => this.sampleNow(), this.intervalMs)
    this.timer.unref()
  }

  async close (): Promise<void> {
    clearInterval(this.timer)
    await this.sampling
  }

  private sampleNow (): void {
    if (this.sampling) return
    this.sampling = this.probe.sample(this.dataDir)
      .then((ctx) => { this.latest = ctx })
      .catch((err) => this.log.warn({ err: (err as Error).message }, 'could not sample the host context'))
      .finally(() => { this.sampling = undefined })
  }
}
