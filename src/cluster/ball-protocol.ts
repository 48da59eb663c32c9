// What agents ask each other about balls over their peer links, and the
// checks on each request. Pure: bodies in, checked values out.
//
//   ball.get  {id, start, length}           -> streamed: the stored ball's raw bytes [start, start + length)
//                                              (header ++ data) from a bin of the agent, or from a write in progress
//   ball.pull {id, bytes, from, cloud,      -> {bin}: the agent stores a durable copy (in `bin` if it can),
//              bin?, writer?}                  fetched from the agents `from` in order, then the cloud tier if
//                                              `cloud`, and checked against its id; for `writer`, it is not
//                                              garbage until that agent commits or gives up
//   ball.sync {ids}                         -> {}: the agent's copies of these balls reach stable storage
import { MAX_STREAM_BYTES } from '../net/frames.ts'
import { bad, ball, count, flag, list, optional, shape, text, type Parse } from '../net/checks.ts'

export const BALL_OP = {
  get: 'ball.get',
  pull: 'ball.pull',
  sync: 'ball.sync'
} as const

/** Balls one ball.sync may name: a 256 GiB file of 4 MiB balls. */
const MAX_SYNC_IDS = 65536
/** Agents one ball.pull may name as sources. */
const MAX_SOURCES = 64

export interface GetRequest { id: string, start: number, length: number }
export interface PullRequest { id: string, bytes: number, from: string[], cloud: boolean, bin?: string, writer?: string }
export interface SyncRequest { ids: string[] }

const bounded = <T>(p: Parse<T[]>, max: number): Parse<T[]> => (v, what) => {
  const out = p(v, what)
  if (out.length > max) throw bad(what, `at most ${max} long`)
  return out
}

const streamLength: Parse<number> = (v, what) => {
  const n = count(v, what)
  if (n > MAX_STREAM_BYTES) throw bad(what, `at most ${MAX_STREAM_BYTES} bytes`)
  return n
}

export const parseGet: (body: unknown) => GetRequest = (body) =>
  shape({ id: ball, start: count, length: streamLength })(body, BALL_OP.get)

export const parsePull: (body: unknown) => PullRequest = (body) =>
  shape({
    id: ball, bytes: count, from: bounded(list(text), MAX_SOURCES), cloud: flag, bin: optional(text), writer: optional(text)
  })(body, BALL_OP.pull)

export const parseSync: (body: unknown) => SyncRequest = (body) =>
  shape({ ids: bounded(list(ball), MAX_SYNC_IDS) })(body, BALL_OP.sync)

export const parsePulled = (body: unknown): string => shape({ bin: text })(body, `${BALL_OP.pull} reply`).bin
