// The store of last resort behind the bins. Objects are stored balls
// (header ++ data) named by their id, so a retried upload is harmless.
import type { BallSource } from '../store/verified-reader.ts'

export interface CloudTier extends BallSource {
  /** Where the tier is, for people (a directory, a bucket). */
  readonly location: string
  /** Checks that the tier is there and usable (creating it where allowed); throws a clear error if not. */
  open: () => Promise<void>
  /** Stores a ball unless the tier holds it already. */
  put: (id: string, header: Buffer, data: Buffer) => Promise<void>
  has: (id: string) => Promise<boolean>
  /** The whole stored ball (header ++ data), in one request. */
  readBall: (id: string) => Promise<Buffer>
  delete: (id: string) => Promise<void>
  close: () => Promise<void>
}
