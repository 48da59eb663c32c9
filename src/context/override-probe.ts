// A test-only way to fake a host's context: with CHAAC_TEST_CONTEXT_FILE set,
// each sample is the real one with the fields of that JSON file laid over it
// (read afresh at every sample, so a test can make a host look busy or full
// while it runs; a missing file overrides nothing). Never set in production.
import { readFile } from 'node:fs/promises'
import type { HostContext, HostProbe } from './host-context.ts'

const FIELDS = ['ufCPU', 'ufMemory', 'ufFileSystem', 'ufNet', 'memFree', 'diskFree', 'netBytesPerSec'] as const

export class OverrideProbe implements HostProbe {
  constructor (private readonly inner: HostProbe, private readonly file: string) {}

  async sample (dataDir: string): Promise<HostContext> {
    const ctx = await this.inner.sample(dataDir)
    let text: string
    try {
      text = await readFile(this.file, 'utf8')
    } catch {
      return ctx
    }
    const fake = JSON.parse(text) as Record<string, unknown>
    for (const key of FIELDS) {
      const v = fake[key]
      if (typeof v === 'number' && Number.isFinite(v)) ctx[key] = v
    }
    return ctx
  }
}
