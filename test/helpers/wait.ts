// Polling with deadlines for tests. A test must never hang (a wedged FUSE mount
// or a dead daemon would otherwise stall the whole tap run), so every wait here
// ends with an error that says what was awaited.

export interface WaitOptions {
  /** give up after this long; default 30 s */
  timeoutMs?: number
  /** pause between two polls; default 100 ms */
  intervalMs?: number
  /** what is being awaited, for the error message */
  what?: string
}

/** Resolves after `ms`; only for pacing polls, never as a substitute for a condition. */
export function delay (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * Calls `fn` until it returns a truthy value and resolves with that value.
 * Rejects when the deadline passes. An exception thrown by `fn` rejects at
 * once: probes catch the failures they expect, so anything else is a real error.
 */
export async function waitFor<T> (
  fn: () => T | Promise<T>,
  { timeoutMs = 30_000, intervalMs = 100, what = 'condition' }: WaitOptions = {}
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await fn()
    if (value) return value as NonNullable<T>
    const left = deadline - Date.now()
    if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await delay(Math.min(intervalMs, left))
  }
}

/** Settles like `promise`, or rejects once `timeoutMs` has passed. */
export async function withDeadline<T> (promise: Promise<T>, timeoutMs: number, what = 'operation'): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not finish within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    return await Promise.race([promise, expired])
  } finally {
    clearTimeout(timer)
  }
}
