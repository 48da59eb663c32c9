// The vocabulary of a ball's way, shared by the reader, the writer and the
// cluster's side they are given (the data plane implements RemoteBalls).
import type { BallSource } from '../store/verified-reader.ts'

export type ReadOutcome = 'localHit' | 'remoteHit' | 'miss' | 'skip'
export type WritePolicy = 'through' | 'async' | 'none'

/** How a bin holds a copy: a cache, or for a writer whose file is not committed yet. */
export interface CopyKind { cached?: boolean, writer?: string }

/** A copy of a ball on another agent. */
export interface RemoteSource extends BallSource {
  readonly agent: string
  /** The whole stored ball (header ++ data), within one deadline. */
  readBall: (id: string) => Promise<Buffer>
}

/** A new ball, whole, while it is being placed. */
export interface NewBall { id: string, header: Buffer, data: Buffer }

/** The cluster's side of a ball's way (the data plane): peers holding balls, and where new balls go. */
export interface RemoteBalls {
  /** Copies on other agents that are alive, best first. */
  sources: (id: string) => RemoteSource[]
  /** Stores the copies of a new ball where the allocator says; resolves once they are stored. */
  place: (ball: NewBall) => Promise<void>
  /** Brings the copies on other agents to stable storage. */
  sync: (ids: string[]) => Promise<void>
  /** No file this agent writes names the ball any more. */
  unpinned: (id: string) => void
}
