// See crashing-hash-worker.mjs.
import { parentPort } from 'node:worker_threads'

parentPort.on('message', ({ buffer, offset }) => {
  if (new Uint8Array(buffer)[offset] === 0xff) process.exit(70)
})
