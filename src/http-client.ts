// The commands' side of the HTTP API: one JSON request to a running agent,
// with a deadline and the agent's error message as the error.
import { parseHostPort } from './config.ts'

export interface RequestOptions {
  method?: string
  body?: unknown
  /** The admin token, for changes. */
  token?: string
  timeoutMs?: number
}

export async function requestJson (http: string, path: string, opts: RequestOptions = {}): Promise<unknown> {
  const { host, port } = parseHostPort(http)
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}${path}`
  let res: Response
  try {
    res = await fetch(url, {
      method: opts.method ?? 'GET',
      headers: {
        ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(opts.token !== undefined && opts.token !== '' ? { authorization: `Bearer ${opts.token}` } : {})
      },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 5000)
    })
  } catch (err) {
    throw new Error(`no agent answers at ${http} (${(err as Error).message}); start one with 'npm start' or 'chaac agent'`)
  }
  const body = await res.json() as { error?: string }
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`)
  return body
}
