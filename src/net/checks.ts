// Checks on what a peer sends: each parser takes a value from the wire and
// returns it checked (a fresh object for maps), or throws CHAAC_INVALID
// naming the field. Pure.
import { ChaacError } from '../errors.ts'

export type Parse<T> = (v: unknown, what: string) => T

export const bad = (what: string, expected: string): ChaacError => new ChaacError('CHAAC_INVALID', `${what} must be ${expected}`)

export const count: Parse<number> = (v, what) => {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw bad(what, 'a whole number')
  return v as number
}
export const time: Parse<number> = (v, what) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) throw bad(what, 'a number')
  return v
}
export const text: Parse<string> = (v, what) => {
  if (typeof v !== 'string') throw bad(what, 'a string')
  return v
}
export const flag: Parse<boolean> = (v, what) => {
  if (typeof v !== 'boolean') throw bad(what, 'true or false')
  return v
}
export const ball: Parse<string> = (v, what) => {
  if (typeof v !== 'string' || !/^[0-9a-f]{64}$/.test(v)) throw bad(what, 'a ball id')
  return v
}
export const bytes: Parse<Buffer> = (v, what) => {
  if (!(v instanceof Uint8Array)) throw bad(what, 'bytes')
  return Buffer.from(v.buffer, v.byteOffset, v.length)
}
export const optional = <T>(p: Parse<T>): Parse<T | undefined> => (v, what) => v === undefined || v === null ? undefined : p(v, what)
export const nullable = <T>(p: Parse<T>): Parse<T | null> => (v, what) => v === null ? null : p(v, what)
export const list = <T>(p: Parse<T>): Parse<T[]> => (v, what) => {
  if (!Array.isArray(v)) throw bad(what, 'a list')
  return v.map((x, i) => p(x, `${what}[${i}]`))
}

/** Only the named fields, each checked, on a fresh object: nothing else a peer sent gets through. */
export function shape<T extends object> (fields: { [K in keyof T]-?: Parse<T[K]> }): Parse<T> {
  return (v, what) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw bad(what, 'a map')
    const out: Record<string, unknown> = {}
    for (const [key, parse] of Object.entries(fields) as Array<[string, Parse<unknown>]>) {
      const value = parse(Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined, `${what}.${key}`)
      if (value !== undefined) out[key] = value
    }
    return out as T
  }
}
