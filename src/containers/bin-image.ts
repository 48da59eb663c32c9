// The image of the launcher's data containers, made on the host from what
// it has, so that no registry is needed: a root filesystem holding only a
// static busybox (Debian's busybox-static, which scripts/ensure-deps.mjs
// installs), imported as `docker import` does. Its one process is `sleep`.
import { readFile } from 'node:fs/promises'
import { Readable } from 'node:stream'
import { ChaacError } from '../errors.ts'
import { VERSION } from '../version.ts'
import { LABELS } from './bin-labels.ts'

export const BIN_IMAGE_REPO = 'chaac-bin'
export const BIN_IMAGE = `${BIN_IMAGE_REPO}:${VERSION}`
const BUSYBOX = process.env.CHAAC_BUSYBOX ?? '/bin/busybox'

export interface ImageEngine {
  hasImage: (name: string) => Promise<boolean>
  importImage: (tar: NodeJS.ReadableStream, repo: string, tag: string, changes: string[]) => Promise<void>
}

let making: Promise<string> | undefined

/** The data containers' image, made once if the engine lacks it; its name. */
export async function ensureBinImage (engine: ImageEngine): Promise<string> {
  making ??= (async () => {
    if (await engine.hasImage(BIN_IMAGE)) return BIN_IMAGE
    let busybox: Buffer
    try {
      busybox = await readFile(BUSYBOX)
    } catch (err) {
      throw new ChaacError('CHAAC_NOT_SUPPORTED', `cannot make the data containers' image: no static busybox at ${BUSYBOX} (install busybox-static)`, { cause: err })
    }
    const tar = Buffer.concat([...tarEntry('bin/', 0o755, undefined), ...tarEntry('bin/busybox', 0o755, busybox), Buffer.alloc(1024)])
    await engine.importImage(Readable.from([tar]), BIN_IMAGE_REPO, VERSION, [
      `LABEL ${LABELS.launcher}=${VERSION}`,
      'CMD ["/bin/busybox", "sleep", "2147483647"]'
    ])
    return BIN_IMAGE
  })().finally(() => { making = undefined })
  return await making
}

// One ustar entry: a directory (no data) or a regular file, owned by root.
function tarEntry (name: string, mode: number, data: Buffer | undefined): Buffer[] {
  const header = Buffer.alloc(512)
  const octal = (value: number, at: number, width: number): void => {
    header.write(value.toString(8).padStart(width - 1, '0') + '\0', at, 'ascii')
  }
  header.write(name, 0, 'utf8')
  octal(mode, 100, 8)
  octal(0, 108, 8)
  octal(0, 116, 8)
  octal(data?.length ?? 0, 124, 12)
  octal(Math.floor(Date.now() / 1000), 136, 12)
  header.write(data === undefined ? '5' : '0', 156, 'ascii')
  header.write('ustar\0' + '00', 257, 'ascii')
  header.write(' '.repeat(8), 148, 'ascii')
  let sum = 0
  for (const byte of header) sum += byte
  header.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 'ascii')
  if (data === undefined) return [header]
  return [header, data, Buffer.alloc((512 - data.length % 512) % 512)]
}
