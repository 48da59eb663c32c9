// The store of last resort behind the bins. Objects are stored balls
// (header ++ data) named by their id, so a retried upload is harmless.
import type { BallSource } from '../store/verified-reader.ts'

export interface CloudTier extends BallSource {
  /** Where the tier is, for people (a directory, a bucket). */
  readonly location: string
  put: (id: string, header: Buffer, data: Buffer) => Promise<void>
  has: (id: string) => Promise<boolean>
  delete: (id: string) => Promise<void>
  close: () => Promise<void>
}
