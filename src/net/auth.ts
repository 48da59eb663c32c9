// Mutual proof of the cluster secret; the secret itself never crosses the wire.
// Each side sends an HMAC-SHA256, keyed with the secret, over a transcript that
// names the prover's role, both peer ids and both nonces. Fresh nonces on both
// sides make every proof good for one connection only; the role keeps a proof
// from being reflected back as the other side's. Pure but for the nonce.
//
// The client proves first: a stranger who can merely reach the port learns no
// proof it could attack offline, only a client that dialled a fake server does.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import { NONCE_BYTES, PROTOCOL_VERSION } from './frames.ts'

export type AuthRole = 'client' | 'server'
/** Empty when the cluster has none (loopback only): the same handshake still runs. */
export type ClusterSecret = string | Buffer

export interface AuthTranscript {
  serverId: string
  clientId: string
  serverNonce: Buffer
  clientNonce: Buffer
}

const LABEL = `chaac-peer-auth-v${PROTOCOL_VERSION}`

export function newNonce (): Buffer {
  return randomBytes(NONCE_BYTES)
}

/** What the side in `role` sends to prove it knows `secret`. */
export function authProof (secret: ClusterSecret, role: AuthRole, tr: AuthTranscript): Buffer {
  const mac = createHmac('sha256', secret)
  for (const part of [LABEL, role, tr.serverId, tr.clientId, tr.serverNonce, tr.clientNonce]) {
    const bytes = typeof part === 'string' ? Buffer.from(part, 'utf8') : part
    // A length before each field keeps the boundaries unambiguous ("ab","c" is not "a","bc").
    const length = Buffer.alloc(4)
    length.writeUInt32BE(bytes.length)
    mac.update(length).update(bytes)
  }
  return mac.digest()
}

/** Whether `proof` is the one the side in `role` would send; compared in constant time. */
export function verifyProof (secret: ClusterSecret, role: AuthRole, tr: AuthTranscript, proof: Buffer): boolean {
  const expected = authProof(secret, role, tr)
  return proof.length === expected.length && timingSafeEqual(proof, expected)
}
