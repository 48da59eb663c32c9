// Faults injected on purpose by tests.
import { open } from 'node:fs/promises'

/** Inverts one byte of a file in place (a corrupt copy of a ball). */
export async function flipByte (path: string, at: number): Promise<void> {
  const fh = await open(path, 'r+')
  try {
    const b = Buffer.alloc(1)
    await fh.read(b, 0, 1, at)
    b[0] ^= 0xff
    await fh.write(b, 0, 1, at)
  } finally {
    await fh.close()
  }
}
