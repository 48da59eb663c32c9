import { randomBytes } from 'node:crypto'
import { pack } from 'msgpackr'
import t, { type Test } from 'tap'
import { authProof, newNonce, verifyProof, type AuthTranscript } from '../../src/net/auth.ts'
import {
  DEFAULT_MAX_FRAME_BYTES, MAX_STREAM_BYTES, NONCE_BYTES, PROOF_BYTES, PROTOCOL_VERSION, decodeFrame, encodeFrame,
  type Frame
} from '../../src/net/frames.ts'
import { isChaacError } from '../../src/errors.ts'

const nonce = (): Buffer => randomBytes(NONCE_BYTES)
const proof = (): Buffer => randomBytes(PROOF_BYTES)

// One of each frame type (and each shape of a response).
const SAMPLES: Frame[] = [
  { t: 'challenge', v: PROTOCOL_VERSION, peer: 'pool', nonce: nonce() },
  { t: 'auth', peer: 'agent-b', nonce: nonce(), proof: proof() },
  { t: 'welcome', proof: proof() },
  { t: 'req', id: 1, op: 'ball.get', body: { ball: 'ab'.repeat(32), range: [0, 4096], nested: { list: [1, 'two', null, true] } } },
  { t: 'req', id: 2 ** 40, op: 'x', body: randomBytes(100) },
  { t: 'res', id: 7, ok: true, body: { size: 5 } },
  { t: 'res', id: 8, ok: true, body: null, size: MAX_STREAM_BYTES },
  { t: 'res', id: 9, ok: false, err: { code: 'CHAAC_BALL_MISSING', message: 'no such ball' } },
  { t: 'chunk', id: 8, seq: 0, data: randomBytes(256 * 1024) },
  { t: 'end', id: 8, seq: 256 },
  { t: 'ack', id: 8, bytes: 262144 },
  { t: 'cancel', id: 8 },
  { t: 'ping', n: 3 },
  { t: 'pong', n: 3 }
]

/** Checks that decoding `bytes` fails with CHAAC_PROTOCOL (and nothing else, such as a TypeError). */
function rejects (t: Test, bytes: Uint8Array, what: string, maxBytes?: number): void {
  try {
    decodeFrame(bytes, maxBytes)
    t.fail(`${what}: decoded`)
  } catch (err) {
    t.ok(isChaacError(err, 'CHAAC_PROTOCOL'), `${what}: ${(err as Error).message}`)
  }
}

t.test('frames - every frame type survives encode and decode', async (t) => {
  for (const frame of SAMPLES) {
    const back = decodeFrame(encodeFrame(frame))
    t.same(back, frame, frame.t)
    if (frame.t === 'chunk' && back.t === 'chunk') t.ok(Buffer.isBuffer(back.data), 'chunk data decodes as a Buffer')
  }
})

t.test('frames - fields a frame type does not know are ignored, so later versions can add some', async (t) => {
  const back = decodeFrame(pack({ t: 'ping', n: 4, later: { x: 1 } }))
  t.same(back, { t: 'ping', n: 4 })
  t.notOk(Object.hasOwn(back, 'later'))
})

t.test('frames - truncated frames are rejected at every length', async (t) => {
  for (const frame of SAMPLES.filter((f) => f.t !== 'chunk')) {
    const bytes = encodeFrame(frame)
    let refused = 0
    for (let n = 0; n < bytes.length; n++) {
      try {
        decodeFrame(bytes.subarray(0, n))
      } catch (err) {
        if (isChaacError(err, 'CHAAC_PROTOCOL')) refused++
      }
    }
    t.equal(refused, bytes.length, `${frame.t}: all ${bytes.length} prefixes refused`)
  }
})

t.test('frames - trailing bytes, random bytes and non-map values are rejected', async (t) => {
  const good = encodeFrame({ t: 'ping', n: 1 })
  rejects(t, Buffer.concat([good, Buffer.from([0])]), 'one byte after the frame')
  rejects(t, Buffer.concat([good, good]), 'two frames in one message')
  rejects(t, Buffer.alloc(0), 'empty')
  rejects(t, Buffer.from([0xc1]), 'the never-used byte 0xc1')
  for (const value of [null, 1, 'req', [1, 2], true, new Date(0), new Set([1]), new Map([['t', 'ping']]), randomBytes(8)]) {
    rejects(t, pack(value), `a ${Object.prototype.toString.call(value)} instead of a map`)
  }
  let refused = 0
  for (let i = 0; i < 2000; i++) {
    try {
      decodeFrame(randomBytes(1 + (i % 64)))
    } catch (err) {
      if (!isChaacError(err, 'CHAAC_PROTOCOL')) throw err
      refused++
    }
  }
  t.ok(refused > 1900, `${refused} of 2000 random byte strings refused, and none threw anything but CHAAC_PROTOCOL`)
})

t.test('frames - unknown types and wrong field shapes are rejected', async (t) => {
  const cases: Array<[string, unknown]> = [
    ['no type', { id: 1 }],
    ['unknown type', { t: 'hello', id: 1 }],
    ['type not a string', { t: 7 }],
    ['type an object with a bad toString', { t: { toString: 1 } }],
    ['challenge of another nonce size', { t: 'challenge', v: 1, peer: 'p', nonce: randomBytes(16) }],
    ['challenge with an empty peer id', { t: 'challenge', v: 1, peer: '', nonce: nonce() }],
    ['challenge with a long peer id', { t: 'challenge', v: 1, peer: 'p'.repeat(257), nonce: nonce() }],
    ['auth with a short proof', { t: 'auth', peer: 'p', nonce: nonce(), proof: randomBytes(31) }],
    ['auth with a proof as text', { t: 'auth', peer: 'p', nonce: nonce(), proof: 'x'.repeat(32) }],
    ['welcome without a proof', { t: 'welcome' }],
    ['req with a negative id', { t: 'req', id: -1, op: 'x' }],
    ['req with a fractional id', { t: 'req', id: 1.5, op: 'x' }],
    ['req with an id past 2^53', { t: 'req', id: 2n ** 60n, op: 'x' }],
    ['req with an id as text', { t: 'req', id: '1', op: 'x' }],
    ['req without an op', { t: 'req', id: 1 }],
    ['req with a long op', { t: 'req', id: 1, op: 'x'.repeat(129) }],
    ['res with ok not a boolean', { t: 'res', id: 1, ok: 1 }],
    ['res too large to stream', { t: 'res', id: 1, ok: true, size: MAX_STREAM_BYTES + 1 }],
    ['res failed without err', { t: 'res', id: 1, ok: false }],
    ['res failed with a long code', { t: 'res', id: 1, ok: false, err: { code: 'C'.repeat(65), message: '' } }],
    ['res failed with a message not text', { t: 'res', id: 1, ok: false, err: { code: 'X', message: 5 } }],
    ['res failed without a code', { t: 'res', id: 1, ok: false, err: { message: 'm' } }],
    ['chunk without data', { t: 'chunk', id: 1, seq: 0, data: Buffer.alloc(0) }],
    ['chunk with data as text', { t: 'chunk', id: 1, seq: 0, data: 'abc' }],
    ['end without seq', { t: 'end', id: 1 }],
    ['ack with negative bytes', { t: 'ack', id: 1, bytes: -5 }],
    ['cancel without id', { t: 'cancel' }],
    ['ping with NaN', { t: 'ping', n: Number.NaN }],
    ['pong with Infinity', { t: 'pong', n: Number.POSITIVE_INFINITY }]
  ]
  for (const [what, value] of cases) rejects(t, pack(value), what)
})

t.test('frames - a peer cannot reach Object.prototype through a key', async (t) => {
  // msgpack map {"__proto__": {"polluted": 1}, "t": "ping", "n": 1}, written by hand.
  const evil = Buffer.concat([
    Buffer.from([0x83, 0xa9]), Buffer.from('__proto__'), Buffer.from([0x81, 0xa8]), Buffer.from('polluted'), Buffer.from([0x01]),
    Buffer.from([0xa1]), Buffer.from('t'), Buffer.from([0xa4]), Buffer.from('ping'),
    Buffer.from([0xa1]), Buffer.from('n'), Buffer.from([0x01])
  ])
  t.same(decodeFrame(evil), { t: 'ping', n: 1 })
  t.equal(({} as Record<string, unknown>).polluted, undefined)
})

t.test('frames - size limits on both sides', async (t) => {
  const big: Frame = { t: 'req', id: 1, op: 'put', body: Buffer.alloc(DEFAULT_MAX_FRAME_BYTES) }
  t.throws(() => encodeFrame(big), { code: 'CHAAC_TOO_BIG' }, 'a frame over the limit is not sent')
  t.ok(encodeFrame(big, 2 * DEFAULT_MAX_FRAME_BYTES).length > DEFAULT_MAX_FRAME_BYTES, 'a larger limit lets it through')
  rejects(t, encodeFrame({ t: 'ping', n: 1 }), 'a frame over a tiny limit', 3)
  rejects(t, Buffer.alloc(DEFAULT_MAX_FRAME_BYTES + 1), 'a message over the default limit')
  t.throws(() => encodeFrame({ t: 'req', id: 1, op: 'x', body: 10n ** 30n }), { code: 'CHAAC_INVALID' }, 'a body msgpack cannot carry')
})

function transcript (): AuthTranscript {
  return { serverId: 'pool', clientId: 'agent-b', serverNonce: newNonce(), clientNonce: newNonce() }
}

t.test('auth - a proof verifies with the same secret and transcript', async (t) => {
  const tr = transcript()
  const p = authProof('s3cret', 'client', tr)
  t.equal(p.length, PROOF_BYTES)
  t.ok(verifyProof('s3cret', 'client', tr, p))
  t.ok(verifyProof(Buffer.from('s3cret'), 'client', tr, p), 'a secret as a Buffer is the same secret')
  t.ok(verifyProof('', 'server', tr, authProof('', 'server', tr)), 'the empty secret (loopback without one) still works')
})

t.test('auth - a proof fails with a wrong secret, the other role, another nonce or id, or a cut proof', async (t) => {
  const tr = transcript()
  const p = authProof('s3cret', 'client', tr)
  t.notOk(verifyProof('wrong', 'client', tr, p), 'wrong secret')
  t.notOk(verifyProof('', 'client', tr, p), 'no secret')
  t.notOk(verifyProof('s3cret', 'server', tr, p), 'a client proof reflected as the server proof')
  t.notOk(verifyProof('s3cret', 'client', { ...tr, serverNonce: newNonce() }, p), 'another server nonce (replay)')
  t.notOk(verifyProof('s3cret', 'client', { ...tr, clientNonce: newNonce() }, p), 'another client nonce')
  t.notOk(verifyProof('s3cret', 'client', { ...tr, clientId: 'agent-c' }, p), 'another client id')
  t.notOk(verifyProof('s3cret', 'client', tr, p.subarray(0, 16)), 'a cut proof is refused, not thrown on')
  t.notOk(verifyProof('s3cret', 'client', tr, Buffer.alloc(0)), 'an empty proof')
})

t.test('auth - field boundaries are part of the proof', async (t) => {
  const tr = transcript()
  const a = authProof('k', 'client', { ...tr, serverId: 'ab', clientId: 'c' })
  const b = authProof('k', 'client', { ...tr, serverId: 'a', clientId: 'bc' })
  t.not(a.toString('hex'), b.toString('hex'))
})
