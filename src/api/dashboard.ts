// The dashboard's static files: `/` and `/ui/...`, answered from a fixed
// list (no name from the request ever reaches the file system, so no path
// traversal), read at each request (they are small, and a new version is
// served at once). The page itself only calls the
// JSON API; nothing is loaded from another origin (see the CSP below).
import { readFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import type { ServerResponse } from 'node:http'

const own = join(import.meta.dirname, 'dashboard')
const uplot = dirname(createRequire(import.meta.url).resolve('uplot'))

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8'
}

const PAGES = ['app.js', 'api.js', 'dom.js', 'format.js', 'charts.js', 'style.css',
  'views/hosts.js', 'views/files.js', 'views/traffic.js', 'views/scheme.js', 'views/zones.js']

/** URL path -> file on disk. */
const FILES = new Map<string, string>([
  ['/', join(own, 'index.html')],
  ...PAGES.map((p): [string, string] => [`/ui/${p}`, join(own, p)]),
  ['/ui/vendor/uPlot.esm.js', join(uplot, 'uPlot.esm.js')],
  ['/ui/vendor/uPlot.min.css', join(uplot, 'uPlot.min.css')]
])

const SECURITY = {
  'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer'
}

export function isDashboardPath (pathname: string): boolean {
  return FILES.has(pathname)
}

/** Answers a GET or HEAD of one of the dashboard's files. */
export async function sendDashboardFile (pathname: string, head: boolean, res: ServerResponse): Promise<void> {
  const file = FILES.get(pathname)
  if (file === undefined) throw new TypeError(`not a dashboard file: ${pathname}`)
  let bytes: Buffer
  try {
    bytes = await readFile(file)
  } catch (err) {
    res.writeHead(500, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: `dashboard file unreadable: ${(err as Error).message}` }) + '\n')
    return
  }
  res.writeHead(200, {
    'content-type': TYPES[file.slice(file.lastIndexOf('.'))],
    'content-length': bytes.length,
    // The page must pick up a new agent version at once; its parts may be reused for a minute.
    'cache-control': pathname === '/' ? 'no-cache' : 'max-age=60',
    ...SECURITY
  })
  res.end(head ? undefined : bytes)
}
