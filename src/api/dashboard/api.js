// The page's only way to the agent: JSON over fetch, with a deadline. A
// request that gets no answer at all marks the agent unreachable (the app
// shows a banner); the next one answered marks it back.

const TIMEOUT_MS = 4000

export class HttpError extends Error {
  constructor (status, message) {
    super(message)
    this.status = status
  }
}

export class Unreachable extends Error {}

const watchers = new Set()
let reachable = true

export function onReachability (fn) {
  watchers.add(fn)
}

function mark (ok) {
  if (ok === reachable) return
  reachable = ok
  for (const fn of watchers) fn(ok)
}

export function isReachable () {
  return reachable
}

/** GET (or another method with a JSON body) of an API path; resolves with the parsed answer. */
export async function api (path, { method = 'GET', body, token } = {}) {
  const headers = { accept: 'application/json' }
  if (body !== undefined) headers['content-type'] = 'application/json'
  if (token) headers.authorization = `Bearer ${token}`
  let res
  let data
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', signal: AbortSignal.timeout(TIMEOUT_MS) })
    data = await res.json().catch(() => null)
  } catch (err) {
    mark(false)
    throw new Unreachable(`agent unreachable (${err.name === 'TimeoutError' ? 'no answer within 4 s' : err.message})`)
  }
  mark(true)
  if (!res.ok) throw new HttpError(res.status, data?.error ?? res.statusText)
  return data
}

/** Whether the agent does not have this endpoint at all (an older agent), rather than a 404 for a missing thing. */
export function isMissingEndpoint (err) {
  return err instanceof HttpError && (err.status === 404 || err.status === 405) && /^(no such endpoint|method )/.test(err.message)
}

/** Like api(), but null when the agent has no such endpoint. */
export async function optional (path) {
  try {
    return await api(path)
  } catch (err) {
    if (isMissingEndpoint(err)) return null
    throw err
  }
}
