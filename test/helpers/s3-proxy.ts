// A proxy in front of a real S3 endpoint that can misbehave on demand, the
// way object stores do: answer 503 SlowDown (throttling), or take requests
// and never answer (a store that hangs).
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export interface S3Proxy {
  endpoint: string
  /** Answer this many of the next requests with 503 SlowDown. */
  slowDown: (count: number) => void
  /** While on, requests are held without an answer; turning it off lets the held ones through. */
  hang: (on: boolean) => void
  /** Requests seen, and of them answered with SlowDown. */
  readonly stats: { requests: number, slowedDown: number }
  close: () => Promise<void>
}

const SLOW_DOWN = '<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>'

export async function startS3Proxy (target: string): Promise<S3Proxy> {
  const to = new URL(target)
  let slowDowns = 0
  let hanging = false
  const held: Array<() => void> = []
  const stats = { requests: 0, slowedDown: 0 }

  const forward = (req: IncomingMessage, res: ServerResponse): void => {
    const up = request({
      host: to.hostname, port: to.port, method: req.method, path: req.url, headers: req.headers
    }, (upRes) => {
      res.writeHead(upRes.statusCode ?? 502, upRes.headers)
      upRes.pipe(res)
    })
    up.on('error', () => res.destroy())
    req.pipe(up)
  }

  const server = createServer((req, res) => {
    stats.requests++
    if (slowDowns > 0) {
      slowDowns--
      stats.slowedDown++
      req.resume()
      res.writeHead(503, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(SLOW_DOWN) })
      res.end(SLOW_DOWN)
      return
    }
    if (hanging) {
      req.pause()
      held.push(() => { req.resume(); forward(req, res) })
      return
    }
    forward(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    endpoint: `http://127.0.0.1:${port}`,
    slowDown: (count) => { slowDowns = count },
    hang: (on) => {
      hanging = on
      if (!on) for (const release of held.splice(0)) release()
    },
    stats,
    close: async () => {
      hanging = false
      held.length = 0
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
