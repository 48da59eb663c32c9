// The cloud tier of the embedded default: a local directory.
import { mkdir, open, readFile, rename, rm, stat, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { ChaacError } from '../errors.ts'
import type { CloudTier } from './cloud-tier.ts'

let tmpSeq = 0

export class DirCloud implements CloudTier {
  constructor (readonly location: string) {}

  async open (): Promise<void> {
    await mkdir(this.location, { recursive: true })
  }

  async put (id: string, header: Buffer, data: Buffer): Promise<void> {
    const path = this.pathOf(id)
    if (await this.has(id)) return
    const tmp = `${path}.${process.pid}.${++tmpSeq}.tmp`
    try {
      await mkdir(join(this.location, id.slice(0, 2)), { recursive: true })
      const fh = await open(tmp, 'w')
      try {
        await fh.writev([header, data])
        await fh.datasync()
      } finally {
        await fh.close()
      }
      await rename(tmp, path)
    } catch (err) {
      await rm(tmp, { force: true })
      throw new ChaacError('CHAAC_CLOUD_FAILED', `cloud tier ${this.location}: cannot store ball ${id}`, { cause: err, ball: id })
    }
  }

  async has (id: string): Promise<boolean> {
    return await stat(this.pathOf(id)).then(() => true, () => false)
  }

  async readBall (id: string): Promise<Buffer> {
    try {
      return await readFile(this.pathOf(id))
    } catch (err) {
      throw this.missing(id, err)
    }
  }

  async readRaw (id: string, start: number, length: number, into?: Buffer): Promise<Buffer> {
    let fh
    try {
      fh = await open(this.pathOf(id), 'r')
    } catch (err) {
      throw this.missing(id, err)
    }
    try {
      const buf = into ?? Buffer.allocUnsafe(length)
      const { bytesRead } = await fh.read(buf, 0, length, start)
      return buf.subarray(0, bytesRead)
    } finally {
      await fh.close()
    }
  }

  async delete (id: string): Promise<void> {
    await unlink(this.pathOf(id)).catch(() => {})
  }

  async close (): Promise<void> {}

  private missing (id: string, cause: unknown): ChaacError {
    return new ChaacError('CHAAC_BALL_MISSING', `cloud tier ${this.location}: no ball ${id}`, { cause, ball: id })
  }

  private pathOf (id: string): string {
    return join(this.location, id.slice(0, 2), id)
  }
}
