// A hash worker of hasher.ts: the SHA-256 of each block of a new ball, off
// the agent's main thread; ball-codec.ts builds the header from them. Plain
// JavaScript, so that it loads in a worker thread without the TypeScript loader.
import { createHash } from 'node:crypto'
import { parentPort } from 'node:worker_threads'

const HASH_SIZE = 32

parentPort.on('message', ({ buffer, offset, length, blockSize }) => {
  const data = new Uint8Array(buffer, offset, length)
  const n = Math.ceil(length / blockSize)
  const hashes = new Uint8Array(HASH_SIZE * n)
  for (let i = 0; i < n; i++) {
    const block = data.subarray(i * blockSize, Math.min(length, (i + 1) * blockSize))
    hashes.set(createHash('sha256').update(block).digest(), i * HASH_SIZE)
  }
  parentPort.postMessage(hashes.buffer, [hashes.buffer])
})
