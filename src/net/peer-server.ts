// The listening side of the cluster: a WebSocket server whose connections
// become PeerLinks once they prove the cluster secret. A connection that fails
// the handshake, or later breaks the protocol, is closed and logged; the
// server goes on serving the others.
import { BlockList, isIP, type AddressInfo } from 'node:net'
import { WebSocketServer, type WebSocket } from 'ws'
import { ChaacError } from '../errors.ts'
import { acceptHandshake, handshakeSettings, type HandshakeOptions } from './handshake.ts'
import type { PeerLink } from './peer-link.ts'

export interface PeerServerOptions extends HandshakeOptions {
  /** Default 127.0.0.1; any address that is not loopback needs a secret. */
  host?: string
  /** 0 picks a free port. */
  port: number
  /** How long a new connection has to authenticate; default 5 s. */
  authTimeoutMs?: number
  /** Called for each new link, once authenticated. */
  onLink?: (link: PeerLink) => void
}

const loopback = new BlockList()
loopback.addSubnet('127.0.0.0', 8, 'ipv4')
loopback.addAddress('::1', 'ipv6')

export function isLoopback (host: string): boolean {
  if (host === 'localhost') return true
  const family = isIP(host)
  return family !== 0 && loopback.check(host, family === 4 ? 'ipv4' : 'ipv6')
}

/** Listens for peers; resolves once the port is bound. */
export async function listenPeers (opts: PeerServerOptions): Promise<PeerServer> {
  const host = opts.host ?? '127.0.0.1'
  const { maxFrameBytes } = handshakeSettings(opts)
  if ((opts.secret ?? '').length === 0 && !isLoopback(host)) {
    throw new ChaacError('CHAAC_INVALID',
      `refusing to listen for peers on ${host} without a cluster secret: set one (CHAAC_SECRET) or listen on loopback`)
  }
  // No compression: balls are hashed data that does not shrink, and inflating is a way to blow the size limit.
  const wss = new WebSocketServer({ host, port: opts.port, maxPayload: maxFrameBytes, perMessageDeflate: false })
  try {
    await new Promise<void>((resolve, reject) => {
      wss.once('listening', resolve)
      wss.once('error', reject)
    })
  } catch (err) {
    wss.close()
    throw new ChaacError('CHAAC_IO', `cannot listen for peers on ${host}:${opts.port}: ${(err as Error).message}`, { cause: err })
  }
  return new PeerServer(wss, opts)
}

export class PeerServer {
  /** The authenticated links, while they are up. */
  readonly links = new Set<PeerLink>()

  constructor (private readonly wss: WebSocketServer, private readonly opts: PeerServerOptions) {
    wss.on('error', (err) => opts.log.error({ err }, 'peer server failed'))
    wss.on('connection', (ws, req) => this.accept(ws, `${req.socket.remoteAddress}:${req.socket.remotePort}`))
  }

  /** Open connections: the links and those still in their handshake. */
  get connections (): number {
    return this.wss.clients.size
  }

  get port (): number {
    return (this.wss.address() as AddressInfo).port
  }

  /** Closes every link, cuts connections still in their handshake, and stops listening. */
  async close (): Promise<void> {
    await Promise.all([...this.links].map(async (link) => await link.close()))
    for (const ws of this.wss.clients) ws.terminate()
    await new Promise<void>((resolve) => this.wss.close(() => resolve()))
  }

  private accept (ws: WebSocket, remote: string): void {
    const { log } = this.opts
    acceptHandshake(ws, this.opts, this.opts.authTimeoutMs ?? 5_000).then((link) => {
      this.links.add(link)
      log.info({ peer: link.peerId, remote }, 'peer link up')
      void link.closed.then((reason) => {
        this.links.delete(link)
        log.info({ peer: link.peerId, remote, reason: reason.message }, 'peer link down')
      })
      this.opts.onLink?.(link)
    }, (err: ChaacError) => {
      log.warn({ remote, code: err.code, err: err.message }, 'peer connection refused')
    })
  }
}
