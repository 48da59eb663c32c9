// The unix socket Docker finds plugins by (/run/docker/plugins/NAME.sock):
// HTTP/1.1 POSTs with JSON bodies, each handed to the volume driver. A socket
// left by an agent that died is replaced; one another process still answers
// on is left alone.
import { createServer, type Server } from 'node:http'
import { connect } from 'node:net'
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { ChaacError } from '../errors.ts'
import { PLUGIN_CONTENT_TYPE, type VolumeDriver } from './volume-driver.ts'

/** Where Docker looks for plugin sockets. */
export const DOCKER_PLUGIN_DIR = '/run/docker/plugins'
// Docker's requests are a name, an id and a few options.
const MAX_BODY_BYTES = 64 * 1024
const PROBE_TIMEOUT_MS = 2_000

export class PluginSocket {
  private server?: Server
  private closing?: Promise<void>

  constructor (readonly path: string, private readonly driver: VolumeDriver) {}

  static pathFor (name: string, dir = DOCKER_PLUGIN_DIR): string {
    return join(dir, `${name}.sock`)
  }

  get listening (): boolean {
    return this.server?.listening === true
  }

  async listen (): Promise<void> {
    await mkdir(join(this.path, '..'), { recursive: true, mode: 0o700 })
    await this.clearStale()
    const server = createServer((req, res) => {
      const chunks: Buffer[] = []
      let size = 0
      req.on('data', (c: Buffer) => {
        size += c.length
        if (size <= MAX_BODY_BYTES) chunks.push(c)
      })
      req.on('end', () => {
        void this.answer(req.method, req.url ?? '', size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks)).then(({ status, body }) => {
          const text = JSON.stringify(body)
          res.writeHead(status, { 'Content-Type': PLUGIN_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text) })
          res.end(text)
        })
      })
    })
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen(this.path, () => {
        server.off('error', reject)
        resolve()
      })
    })
    this.server = server
    // Only root (dockerd) talks to the driver.
    await chmod(this.path, 0o600)
  }

  private async answer (method: string | undefined, url: string, raw: Buffer | undefined): Promise<{ status: number, body: object }> {
    if (method !== 'POST') return { status: 405, body: { Err: 'plugin requests are POSTs' } }
    if (raw === undefined) return { status: 413, body: { Err: `request body over ${MAX_BODY_BYTES} bytes` } }
    let body: unknown
    try {
      body = raw.length === 0 ? {} : JSON.parse(raw.toString('utf8'))
    } catch {
      return { status: 400, body: { Err: 'the request body is not JSON' } }
    }
    return await this.driver.handle(url.split('?')[0], body)
  }

  // A socket file nobody answers on is what an agent killed with -9 leaves.
  private async clearStale (): Promise<void> {
    const st = await lstat(this.path).catch(() => undefined)
    if (!st) return
    if (!st.isSocket()) throw new ChaacError('CHAAC_EXISTS', `${this.path} exists and is not a socket`)
    if (await answers(this.path)) throw new ChaacError('CHAAC_EXISTS', `another process serves the Docker plugin socket ${this.path}`)
    await unlink(this.path).catch(() => {})
  }

  /** Stops answering and removes the socket, so that Docker no longer finds the driver. Safe to call twice. */
  async close (): Promise<void> {
    const server = this.server
    if (!server) return
    this.closing ??= (async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      // server.close removes the socket file; a stop in between must not leave one either.
      await unlink(this.path).catch(() => {})
    })()
    await this.closing
  }
}

/** True when something accepts a connection on the unix socket `path`. */
async function answers (path: string): Promise<boolean> {
  return await new Promise((resolve) => {
    const sock = connect(path)
    const done = (ok: boolean): void => {
      sock.destroy()
      resolve(ok)
    }
    sock.setTimeout(PROBE_TIMEOUT_MS, () => done(true))
    sock.once('connect', () => done(true))
    sock.once('error', () => done(false))
  })
}
