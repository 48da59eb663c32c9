import { randomBytes } from 'node:crypto'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import t, { type Test } from 'tap'
import { WebSocketServer } from 'ws'
import { ChaacError } from '../../src/errors.ts'
import { NONCE_BYTES, PROOF_BYTES, PROTOCOL_VERSION, encodeFrame } from '../../src/net/frames.ts'
import { connectPeer, type ConnectOptions } from '../../src/net/peer-client.ts'
import { CLOSE, StreamReply, type Handlers, type NetLog, type PeerLink } from '../../src/net/peer-link.ts'
import { isLoopback, listenPeers, type PeerServer, type PeerServerOptions } from '../../src/net/peer-server.ts'
import { Rng } from '../../src/placement/rng.ts'
import { fuzzFrame, inParallel, rawAuthenticated, rawPeer, type RawPeer } from '../helpers/raw-peer.ts'
import { startTcpProxy, type TcpProxy } from '../helpers/tcp-proxy.ts'
import { waitFor, withDeadline } from '../helpers/wait.ts'

const SECRET = 'cluster secret of the tests'
const KiB = 1024
const MiB = 1024 * KiB

interface LogLine { level: 'info' | 'warn' | 'error', obj: Record<string, unknown>, msg: string }
type Recorder = NetLog & { lines: LogLine[], count: (level: LogLine['level'], msg?: string) => number }

/** A logger that keeps its lines for assertions. */
function recorder (): Recorder {
  const lines: LogLine[] = []
  const at = (level: LogLine['level']) => (obj: object, msg: string): void => { lines.push({ level, obj: obj as Record<string, unknown>, msg }) }
  return {
    lines,
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    count: (level, msg) => lines.filter((l) => l.level === level && (msg === undefined || l.msg === msg)).length
  }
}

const echo: Handlers = { echo: (body) => body }

async function startServer (t: Test, opts: Partial<PeerServerOptions> = {}): Promise<{ server: PeerServer, log: Recorder }> {
  const log = recorder()
  const server = await listenPeers({ port: 0, localId: 'pool', secret: SECRET, log, handlers: echo, ...opts })
  t.teardown(async () => await server.close())
  return { server, log }
}

const url = (port: number): string => `ws://127.0.0.1:${port}`

async function connect (t: Test, port: number, opts: Partial<ConnectOptions> = {}): Promise<PeerLink> {
  const link = await connectPeer(url(port), { localId: 'agent-b', secret: SECRET, log: recorder(), ...opts })
  t.teardown(async () => await link.close())
  return link
}

/** The server's end of the one link it has. */
async function serverLink (server: PeerServer): Promise<PeerLink> {
  return await waitFor(() => [...server.links][0], { timeoutMs: 5_000, intervalMs: 5, what: 'the server side of the link' })
}

async function proxyTo (t: Test, port: number): Promise<TcpProxy> {
  const proxy = await startTcpProxy(port)
  t.teardown(async () => await proxy.close())
  return proxy
}

/** What a call rejected with (the test fails if it resolved). */
async function failure (promise: Promise<unknown>): Promise<ChaacError> {
  try {
    await promise
  } catch (err) {
    if (err instanceof ChaacError) return err
    throw err
  }
  throw new Error('expected a rejection')
}

t.test('auth - a client with the secret gets a link, and both sides can call each other', async (t) => {
  const links: PeerLink[] = []
  const { server, log } = await startServer(t, { onLink: (link) => links.push(link) })
  const link = await connect(t, server.port, { handlers: { whoami: (_body, ctx) => ({ me: ctx.link.localId, you: ctx.link.peerId }) } })
  t.equal(link.peerId, 'pool')
  t.equal(link.localId, 'agent-b')
  t.same(await link.request('echo', { hello: ['world', 1] }), { hello: ['world', 1] })
  const back = await serverLink(server)
  t.equal(links[0], back, 'onLink got the link')
  t.equal(back.peerId, 'agent-b')
  t.same(await back.request('whoami'), { me: 'agent-b', you: 'pool' }, 'the server side calls the client')
  t.equal(log.count('info', 'peer link up'), 1)
  const rtt = await link.ping()
  t.ok(rtt >= 0 && rtt < 5_000, `a round trip measured: ${rtt.toFixed(3)} ms`)
  t.equal(link.rttMs, rtt, 'the first sample is the smoothed rtt')
})

t.test('auth - a wrong secret is refused and logged, and the server still serves a good client', async (t) => {
  const { server, log } = await startServer(t)
  const err = await failure(connectPeer(url(server.port), { localId: 'intruder', secret: 'guess', log: recorder() }))
  t.equal(err.code, 'CHAAC_AUTH_FAILED', err.message)
  const none = await failure(connectPeer(url(server.port), { localId: 'intruder', log: recorder() }))
  t.equal(none.code, 'CHAAC_AUTH_FAILED', 'no secret at all is refused too')
  await waitFor(() => log.count('warn', 'peer connection refused') === 2, { timeoutMs: 5_000, intervalMs: 5, what: 'two refusals logged' })
  t.match(log.lines.find((l) => l.msg === 'peer connection refused')?.obj, { code: 'CHAAC_AUTH_FAILED' })
  t.equal(server.links.size, 0)
  const good = await connect(t, server.port)
  t.same(await good.request('echo', 'still here'), 'still here')
  t.equal(server.links.size, 1)
})

t.test('auth - the client refuses a server that cannot prove the secret', async (t) => {
  for (const [name, v] of [['a wrong proof', PROTOCOL_VERSION], ['another protocol version', PROTOCOL_VERSION + 1]] as const) {
    const rogue = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise((resolve) => rogue.once('listening', resolve))
    t.teardown(() => new Promise<void>((resolve) => {
      for (const ws of rogue.clients) ws.terminate()
      rogue.close(() => resolve())
    }))
    let sawClose: number | undefined
    rogue.on('connection', (ws) => {
      ws.send(encodeFrame({ t: 'challenge', v, peer: 'rogue', nonce: randomBytes(NONCE_BYTES) }))
      ws.on('message', () => ws.send(encodeFrame({ t: 'welcome', proof: randomBytes(PROOF_BYTES) })))
      ws.on('close', (code) => { sawClose = code })
    })
    const err = await failure(connectPeer(url((rogue.address() as AddressInfo).port), { localId: 'agent-b', secret: SECRET, log: recorder() }))
    t.equal(err.code, v === PROTOCOL_VERSION ? 'CHAAC_AUTH_FAILED' : 'CHAAC_PROTOCOL', `${name}: ${err.message}`)
    await waitFor(() => sawClose, { timeoutMs: 5_000, intervalMs: 5, what: 'the rogue server to see the close' })
    t.equal(sawClose, v === PROTOCOL_VERSION ? CLOSE.AUTH_FAILED : CLOSE.PROTOCOL, `${name}: the close code says why`)
  }
})

t.test('auth - without a secret on loopback the handshake still runs, with the empty secret', async (t) => {
  const { server } = await startServer(t, { secret: undefined })
  const link = await connect(t, server.port, { secret: undefined })
  t.same(await link.request('echo', 1), 1)
  const err = await failure(connectPeer(url(server.port), { localId: 'c', secret: SECRET, log: recorder() }))
  t.equal(err.code, 'CHAAC_AUTH_FAILED', 'a client with a secret does not match a server without one')
})

t.test('auth - a connection that does not authenticate in time is closed and logged', async (t) => {
  const { server, log } = await startServer(t, { authTimeoutMs: 200 })
  const raw = await rawPeer(url(server.port))
  t.teardown(() => raw.ws.terminate())
  t.equal((await raw.next())?.t, 'challenge')
  const started = performance.now()
  t.equal(await withDeadline(raw.closed, 5_000, 'the close'), CLOSE.TIMEOUT)
  t.ok(performance.now() - started < 3_000, 'closed near the auth deadline')
  await waitFor(() => log.count('warn', 'peer connection refused') === 1, { timeoutMs: 5_000, intervalMs: 5 })
  t.match(log.lines.find((l) => l.level === 'warn')?.obj, { code: 'CHAAC_TIMEOUT' })
})

t.test('auth - a frame before authentication closes that connection, unanswered', async (t) => {
  const { server, log } = await startServer(t)
  const raw = await rawPeer(url(server.port))
  t.teardown(() => raw.ws.terminate())
  raw.ws.send(encodeFrame({ t: 'req', id: 1, op: 'echo', body: 'sneaky' }))
  t.equal(await withDeadline(raw.closed, 5_000, 'the close'), CLOSE.PROTOCOL)
  t.equal((await raw.next())?.t, 'challenge')
  t.equal(await raw.next(), undefined, 'nothing but the challenge came back')
  await waitFor(() => log.count('warn', 'peer connection refused') === 1, { timeoutMs: 5_000, intervalMs: 5 })
  t.match(log.lines.find((l) => l.level === 'warn')?.obj, { code: 'CHAAC_PROTOCOL' })
})

t.test('requests - 100 concurrent requests on one link are all answered, each with its own reply', async (t) => {
  let serving = 0
  let mostServing = 0
  const { server } = await startServer(t, {
    handlers: {
      square: async (body) => {
        const { i } = body as { i: number }
        serving++
        mostServing = Math.max(mostServing, serving)
        // Answers come back in another order than the requests went out.
        await new Promise((resolve) => setTimeout(resolve, (i * 7) % 13))
        serving--
        return { i, square: i * i }
      }
    }
  })
  const link = await connect(t, server.port)
  const replies = await withDeadline(Promise.all(Array.from({ length: 100 }, async (_, i) => await link.request('square', { i }))), 20_000, '100 requests')
  t.same(replies, Array.from({ length: 100 }, (_, i) => ({ i, square: i * i })))
  t.ok(mostServing > 1, `requests were served side by side (at most ${mostServing} at once)`)
  t.equal(link.stats().pending, 0)
})

t.test('requests - error replies carry their code; the link stays up', async (t) => {
  const { server, log } = await startServer(t, {
    handlers: {
      ...echo,
      missing: () => { throw new ChaacError('CHAAC_BALL_MISSING', 'no such ball') },
      buggy: () => { throw new TypeError('a bug') },
      huge: () => ({ blob: Buffer.alloc(2 * MiB) }),
      ball: () => new StreamReply(randomBytes(1000))
    }
  })
  const link = await connect(t, server.port)
  const cases: Array<[string, () => Promise<unknown>, string]> = [
    ['an unknown op', async () => await link.request('no.such.op'), 'CHAAC_NOT_SUPPORTED'],
    ['a handler error', async () => await link.request('missing'), 'CHAAC_BALL_MISSING'],
    ['a handler bug', async () => await link.request('buggy'), 'CHAAC_IO'],
    ['a reply too large for a frame', async () => await link.request('huge'), 'CHAAC_TOO_BIG'],
    ['a request too large for a frame', async () => await link.request('echo', Buffer.alloc(2 * MiB)), 'CHAAC_TOO_BIG'],
    ['a streamed reply without a buffer', async () => await link.request('ball'), 'CHAAC_PROTOCOL'],
    ['a streamed reply larger than the buffer', async () => await link.requestInto('ball', null, Buffer.alloc(999)), 'CHAAC_PROTOCOL']
  ]
  for (const [what, call, code] of cases) {
    const err = await failure(call())
    t.equal(err.code, code, `${what}: ${err.message}`)
  }
  t.match((await failure(link.request('missing'))).message, /no such ball/)
  t.equal(log.count('error', 'a peer request handler failed'), 1, 'the bug is logged where it happened')
  t.same(await link.request('echo', 'after all that'), 'after all that')
  t.notOk(link.isClosed)
})

t.test('requests - a deadline fires when the handler never answers, and the peer hears of it', async (t) => {
  let cancelled = false
  const { server } = await startServer(t, {
    handlers: {
      ...echo,
      hang: (_body, { signal }) => new Promise(() => { signal.addEventListener('abort', () => { cancelled = true }) })
    }
  })
  const link = await connect(t, server.port)
  const started = performance.now()
  const err = await withDeadline(failure(link.request('hang', null, { timeoutMs: 300 })), 5_000, 'the deadline')
  const elapsed = performance.now() - started
  t.equal(err.code, 'CHAAC_TIMEOUT', err.message)
  t.ok(elapsed >= 290 && elapsed < 3_000, `rejected after ${elapsed.toFixed(0)} ms`)
  await waitFor(() => cancelled, { timeoutMs: 5_000, intervalMs: 5, what: 'the handler to be cancelled' })
  t.equal(link.stats().pending, 0)
  t.same(await link.request('echo', 'next'), 'next', 'the link goes on')
})

t.test('streams - a 64 MiB ball arrives byte-exact while the window bounds what the sender queues', async (t) => {
  const ball = randomBytes(64 * MiB)
  const windowBytes = MiB
  const chunkBytes = 128 * KiB
  const { server } = await startServer(t, {
    windowBytes,
    chunkBytes,
    handlers: { ...echo, 'ball.get': () => new StreamReply(ball, { ball: 'b1' }) }
  })
  const link = await connect(t, server.port, { windowBytes, chunkBytes })
  const sender = await serverLink(server)
  // Sampled from outside too, not only the link's own peak.
  let sampledPeak = 0
  const sampler = setInterval(() => { sampledPeak = Math.max(sampledPeak, sender.stats().inFlightBytes) }, 1)
  t.teardown(() => clearInterval(sampler))
  const into = Buffer.alloc(ball.length)
  const started = performance.now()
  const [reply, during] = await withDeadline(Promise.all([
    link.requestInto('ball.get', { ball: 'b1' }, into, { timeoutMs: 60_000 }),
    link.request('echo', 'alongside')
  ]), 60_000, 'the 64 MiB stream')
  clearInterval(sampler)
  t.comment(`64 MiB in ${(performance.now() - started).toFixed(0)} ms`)
  t.same(reply, { body: { ball: 'b1' }, bytes: ball.length })
  t.ok(into.equals(ball), 'byte-exact')
  t.equal(during, 'alongside', 'a small request shares the link with the stream')
  const stats = sender.stats()
  t.ok(stats.peakInFlightBytes <= windowBytes, `unacknowledged bytes peaked at ${stats.peakInFlightBytes}, window ${windowBytes}`)
  t.ok(sampledPeak <= windowBytes, `sampled unacknowledged peak ${sampledPeak}`)
  t.ok(stats.peakInFlightBytes >= chunkBytes, 'the window was used')
  t.ok(stats.peakBufferedBytes <= windowBytes + 64 * KiB, `the socket queued at most ${stats.peakBufferedBytes} bytes`)
  await waitFor(() => sender.stats().inFlightBytes === 0, { timeoutMs: 5_000, intervalMs: 5, what: 'every chunk acknowledged' })
  // Chunks that arrive together are acknowledged together, at least every half window.
  const acks = link.stats().acksSent
  t.ok(acks >= ball.length / (windowBytes / 2) && acks <= ball.length / chunkBytes, `${acks} acks for ${ball.length / chunkBytes} chunks`)
})

t.test('streams - concurrent streams share one window, and an empty stream is whole too', async (t) => {
  const balls = [randomBytes(8 * MiB), randomBytes(8 * MiB + 12345), Buffer.alloc(0)]
  const windowBytes = 512 * KiB
  const { server } = await startServer(t, {
    windowBytes,
    chunkBytes: 64 * KiB,
    handlers: { 'ball.get': (body) => new StreamReply(balls[(body as { i: number }).i], body) }
  })
  const link = await connect(t, server.port, { windowBytes, chunkBytes: 64 * KiB })
  const sender = await serverLink(server)
  const intos = balls.map((b) => Buffer.alloc(b.length + 10))
  const replies = await withDeadline(Promise.all(balls.map(async (_, i) => await link.requestInto('ball.get', { i }, intos[i]))), 30_000, 'three streams')
  for (const [i, ball] of balls.entries()) {
    t.same(replies[i], { body: { i }, bytes: ball.length }, `stream ${i}: ${ball.length} bytes`)
    t.ok(intos[i].subarray(0, ball.length).equals(ball), `stream ${i}: byte-exact`)
  }
  t.ok(sender.stats().peakInFlightBytes <= windowBytes, `peak ${sender.stats().peakInFlightBytes} within the one window`)
})

t.test('streams - a request that gives up mid-stream frees the window, its buffer stays untouched, the link goes on', async (t) => {
  const ball = randomBytes(16 * MiB)
  const { server } = await startServer(t, {
    windowBytes: 512 * KiB,
    chunkBytes: 64 * KiB,
    handlers: { 'ball.get': () => new StreamReply(ball) }
  })
  const link = await connect(t, server.port, { windowBytes: 512 * KiB, chunkBytes: 64 * KiB })
  const sender = await serverLink(server)
  const into = Buffer.alloc(ball.length)
  const err = await failure(link.requestInto('ball.get', null, into, { timeoutMs: 5 }))
  t.equal(err.code, 'CHAAC_TIMEOUT', err.message)
  const snapshot = Buffer.from(into)
  await waitFor(() => sender.stats().serving === 0 && sender.stats().inFlightBytes === 0,
    { timeoutMs: 10_000, intervalMs: 5, what: 'the sender to stop and get its credit back' })
  t.ok(into.equals(snapshot), 'nothing was written into the buffer after the rejection')
  const again = await link.requestInto('ball.get', null, into, { timeoutMs: 30_000 })
  t.equal(again.bytes, ball.length)
  t.ok(into.equals(ball), 'the next stream is whole')
})

t.test('liveness - the peer going away rejects pending requests promptly, on both sides', async (t) => {
  let started = 0
  let aborted = 0
  const { server } = await startServer(t, {
    handlers: {
      hang: (_body, { signal }) => new Promise(() => {
        started++
        signal.addEventListener('abort', () => { aborted++ })
      })
    }
  })
  const proxy = await proxyTo(t, server.port)
  const link = await connect(t, proxy.port)
  const pending = [1, 2, 3].map(async () => await failure(link.request('hang', null, { timeoutMs: 60_000 })))
  await waitFor(() => started === 3, { timeoutMs: 5_000, intervalMs: 5, what: 'three requests at the server' })
  const cutAt = performance.now()
  proxy.cut()
  const errors = await withDeadline(Promise.all(pending), 5_000, 'the pending requests to fail')
  const elapsed = performance.now() - cutAt
  t.same(errors.map((e) => e.code), ['CHAAC_IO', 'CHAAC_IO', 'CHAAC_IO'], errors[0].message)
  t.ok(elapsed < 2_000, `rejected ${elapsed.toFixed(0)} ms after the peer went away, not at the 60 s deadline`)
  t.equal((await link.closed).code, 'CHAAC_IO')
  t.ok(link.isClosed)
  t.equal((await failure(link.request('hang'))).code, 'CHAAC_IO', 'a request on a closed link fails at once')
  await waitFor(() => aborted === 3 && server.links.size === 0, { timeoutMs: 5_000, intervalMs: 5, what: 'the server to drop its side' })
})

t.test('liveness - a silent peer: requests time out and the keepalive closes the link', async (t) => {
  const { server } = await startServer(t)
  const proxy = await proxyTo(t, server.port)
  const link = await connect(t, proxy.port, { pingIntervalMs: 100, timeoutMs: 500 })
  await waitFor(() => link.rttMs !== undefined, { timeoutMs: 5_000, intervalMs: 5, what: 'a keepalive round trip' })
  proxy.freeze()
  const started = performance.now()
  const err = await withDeadline(failure(link.request('echo', 1)), 5_000, 'the request deadline')
  t.equal(err.code, 'CHAAC_TIMEOUT', err.message)
  const reason = await withDeadline(link.closed, 5_000, 'the keepalive to close the link')
  t.equal(reason.code, 'CHAAC_TIMEOUT', reason.message)
  t.ok(performance.now() - started < 3_000, 'within a few deadlines, never a hang')
})

t.test('connect - an unreachable peer, a mute one, a bad address or peer id fail within the deadline', async (t) => {
  const free = createServer()
  await new Promise<void>((resolve) => free.listen(0, '127.0.0.1', resolve))
  const freePort = (free.address() as AddressInfo).port
  await new Promise<void>((resolve) => free.close(() => resolve()))
  const refused = await failure(connectPeer(url(freePort), { localId: 'a', secret: SECRET, log: recorder() }))
  t.equal(refused.code, 'CHAAC_IO', refused.message)

  const sockets = new Set<Socket>()
  const mute = createServer((socket) => { sockets.add(socket) })
  await new Promise<void>((resolve) => mute.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    mute.close(() => resolve())
  }))
  const started = performance.now()
  const silent = await failure(connectPeer(url((mute.address() as AddressInfo).port), { localId: 'a', secret: SECRET, log: recorder(), connectTimeoutMs: 300 }))
  t.equal(silent.code, 'CHAAC_TIMEOUT', silent.message)
  t.ok(performance.now() - started < 2_000, 'within the connect deadline')

  t.equal((await failure(connectPeer('not a url', { localId: 'a', log: recorder() }))).code, 'CHAAC_INVALID')
  t.equal((await failure(connectPeer(url(freePort), { localId: '', log: recorder() }))).code, 'CHAAC_INVALID', 'an empty peer id')
  t.equal((await failure(listenPeers({ port: 0, localId: 'x'.repeat(257), log: recorder() }))).code, 'CHAAC_INVALID', 'a peer id too long')
})

t.test('listen - a non-loopback address without a secret is refused with a clear error', async (t) => {
  for (const host of ['0.0.0.0', '::', '192.0.2.7', 'example.com']) {
    for (const secret of [undefined, '']) {
      const err = await failure(listenPeers({ host, port: 0, localId: 'pool', secret, log: recorder() }))
      t.equal(err.code, 'CHAAC_INVALID')
      t.match(err.message, /without a cluster secret/, `${host}: ${err.message}`)
    }
  }
  for (const host of ['127.0.0.1', '127.8.9.10', '::1', '0:0:0:0:0:0:0:1', 'localhost']) t.ok(isLoopback(host), `${host} is loopback`)
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', 'example.com', '']) t.notOk(isLoopback(host), `${host} is not`)
  const open = await listenPeers({ host: '0.0.0.0', port: 0, localId: 'pool', secret: SECRET, log: recorder() })
  t.teardown(async () => await open.close())
  t.ok(open.port > 0, 'with a secret, any address will do')
  const link = await connect(t, open.port, { handlers: {} })
  t.equal(link.peerId, 'pool')
})

t.test('fuzz - 640 random, cut and malformed frames, before and after auth: each closes only its own connection', async (t) => {
  const seed = Number(process.env.CHAAC_FUZZ_SEED ?? 0xc4aac)
  t.comment(`seed ${seed} (set CHAAC_FUZZ_SEED to replay another)`)
  const rng = new Rng(seed)
  const maxFrameBytes = 64 * KiB
  const limits = { maxFrameBytes, windowBytes: 64 * KiB, chunkBytes: 16 * KiB }
  const ball = randomBytes(MiB)
  const { server, log } = await startServer(t, { ...limits, handlers: { ...echo, 'ball.get': () => new StreamReply(ball) } })
  const good = await connect(t, server.port, limits)
  await serverLink(server)

  const frames = Array.from({ length: 320 }, () => fuzzFrame(rng, maxFrameBytes))
  const outcomes = new Map<string, number>()
  const tally = (key: string): void => { outcomes.set(key, (outcomes.get(key) ?? 0) + 1) }
  const send = (raw: RawPeer, data: Buffer | string): void => raw.ws.send(data, { binary: typeof data !== 'string' })
  const beforeAuth = async ({ kind, data }: { kind: string, data: Buffer | string }): Promise<void> => {
    const raw = await rawPeer(url(server.port))
    try {
      send(raw, data)
      const code = await withDeadline(raw.closed, 10_000, `the close after ${kind} before auth`)
      const expected: number[] = kind === 'oversized' ? [1009] : [CLOSE.PROTOCOL, CLOSE.AUTH_FAILED]
      if (!expected.includes(code)) t.fail(`${kind} before auth closed with ${code}`)
      tally(`before auth: closed ${code}`)
    } finally {
      raw.ws.terminate()
    }
  }
  // After auth a frame may also be well-formed and harmless (a cancel of
  // nothing, say); a ping right behind it must then still get its pong.
  const afterAuth = async ({ kind, data }: { kind: string, data: Buffer | string }): Promise<void> => {
    const raw = await rawAuthenticated(url(server.port), SECRET)
    try {
      send(raw, data)
      raw.ws.send(encodeFrame({ t: 'ping', n: 424242 }))
      let frame = await raw.next()
      while (frame && !(frame.t === 'pong' && frame.n === 424242)) frame = await raw.next()
      if (!frame && kind === 'well-formed') t.fail('a well-formed frame after auth closed the link')
      tally(frame ? `after auth: answered (${kind})` : `after auth: closed ${await raw.closed}`)
    } finally {
      raw.ws.terminate()
    }
  }
  await withDeadline(inParallel(frames, 16, beforeAuth), 120_000, 'the frames before auth')
  await withDeadline(inParallel(frames, 16, afterAuth), 120_000, 'the frames after auth')
  t.comment([...outcomes].sort().map(([k, n]) => `${n} ${k}`).join('; '))
  const total = [...outcomes.values()].reduce((a, b) => a + b, 0)
  t.equal(total, 2 * frames.length, 'every connection ended in a close or an answer')
  t.ok([...outcomes.keys()].filter((k) => k.startsWith('after auth: closed')).length > 0, 'garbage after auth closes too')

  t.equal(log.count('error'), 0, 'no frame hit a bug (those are logged as errors)')
  t.ok(log.count('warn', 'peer connection refused') >= frames.length, 'every refusal before auth was logged')
  t.same(await good.request('echo', { still: 'serving' }), { still: 'serving' }, 'the good link never noticed')
  const into = Buffer.alloc(ball.length)
  await good.requestInto('ball.get', null, into)
  t.ok(into.equals(ball), 'and still streams')
  const fresh = await connect(t, server.port, { ...limits, localId: 'agent-c' })
  t.same(await fresh.request('echo', 'new'), 'new', 'a new client is served')
  t.equal(server.links.size, 2, 'only the two good links are up')
  await waitFor(() => server.connections === 2, { timeoutMs: 10_000, intervalMs: 20, what: 'every fuzzed connection gone at the server' })
})
