// A TCP proxy that loses its connections on demand, the two ways a peer is
// lost: gone (a crashed host: the connections end) or silent (a hung host or a
// dead route: the connections stay open and nothing comes back).
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'

export interface TcpProxy {
  port: number
  /** Ends every connection through the proxy. */
  cut: () => void
  /** Stops passing bytes either way; the connections stay open. */
  freeze: () => void
  /** Holds back what the target sends (its answers are late, as if lost), until release(). */
  hold: () => void
  release: () => void
  close: () => Promise<void>
}

/** `listen`: the address the proxy listens on; `from`: the address it connects from (default: the system's choice). */
export async function startTcpProxy (targetPort: number, host = '127.0.0.1', opts: { listen?: string, from?: string } = {}): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>()
  const server = createServer((inbound) => {
    const outbound = connect({ port: targetPort, host, localAddress: opts.from })
    const pair: [Socket, Socket] = [inbound, outbound]
    pairs.add(pair)
    inbound.pipe(outbound)
    outbound.pipe(inbound)
    const drop = (): void => {
      pairs.delete(pair)
      inbound.destroy()
      outbound.destroy()
    }
    for (const socket of pair) {
      socket.on('error', drop)
      socket.on('close', drop)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, opts.listen ?? host, resolve))
  const cut = (): void => {
    for (const [a, b] of pairs) {
      a.destroy()
      b.destroy()
    }
    pairs.clear()
  }
  return {
    port: (server.address() as AddressInfo).port,
    cut,
    freeze: () => {
      for (const [a, b] of pairs) {
        a.unpipe(b)
        b.unpipe(a)
        a.pause()
        b.pause()
      }
    },
    hold: () => {
      for (const [a, b] of pairs) {
        b.unpipe(a)
        b.pause()
      }
    },
    release: () => {
      for (const [a, b] of pairs) b.pipe(a)
    },
    close: async () => {
      cut()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}
