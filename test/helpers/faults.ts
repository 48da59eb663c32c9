// Faults injected on purpose by tests.
import { execFile } from 'node:child_process'
import { open } from 'node:fs/promises'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)

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

/**
 * Inserts iptables rules (e.g. `OUTPUT -s 127.0.0.2 -d 127.0.0.5 -j DROP`)
 * until heal() deletes them, each once, so that an identical rule of another
 * test stays. heal() is safe to call twice. Needs root.
 */
export async function dropTraffic (rules: string[]): Promise<{ heal: () => Promise<void> }> {
  const inserted: string[] = []
  const heal = async (): Promise<void> => {
    for (const rule of inserted.splice(0)) await execFileP('iptables', ['-w', '-D', ...rule.split(' ')])
  }
  try {
    for (const rule of rules) {
      await execFileP('iptables', ['-w', '-I', ...rule.split(' ')])
      inserted.push(rule)
    }
  } catch (err) {
    await heal()
    throw err
  }
  return { heal }
}
