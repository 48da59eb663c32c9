// One error type for the whole agent: a stable code, a message for people,
// and the errno the FUSE layer answers with. Programmer mistakes stay TypeErrors.

export const ERRNO_OF = {
  CHAAC_NOT_FOUND: 'ENOENT',
  CHAAC_EXISTS: 'EEXIST',
  CHAAC_NOT_DIR: 'ENOTDIR',
  CHAAC_IS_DIR: 'EISDIR',
  CHAAC_NOT_EMPTY: 'ENOTEMPTY',
  CHAAC_NAME_TOO_LONG: 'ENAMETOOLONG',
  CHAAC_NO_SPACE: 'ENOSPC',
  CHAAC_INVALID: 'EINVAL',
  CHAAC_BAD_HANDLE: 'EBADF',
  CHAAC_NOT_PERMITTED: 'EPERM',
  CHAAC_CROSS_DEVICE: 'EXDEV',
  CHAAC_TOO_BIG: 'EFBIG',
  CHAAC_LOOP: 'ELOOP',
  CHAAC_NOT_SUPPORTED: 'ENOTSUP',
  CHAAC_NO_ATTR: 'ENODATA',
  CHAAC_BALL_CORRUPT: 'EIO',
  CHAAC_BALL_MISSING: 'EIO',
  CHAAC_CLOUD_FAILED: 'EIO',
  CHAAC_META_FAILED: 'EIO',
  CHAAC_TIMEOUT: 'EIO',
  CHAAC_PROTOCOL: 'EIO',
  CHAAC_AUTH_FAILED: 'EIO',
  CHAAC_IO: 'EIO'
} as const

export type ChaacCode = keyof typeof ERRNO_OF
export type Errno = (typeof ERRNO_OF)[ChaacCode]

export interface ChaacErrorOptions {
  cause?: unknown
  /** The ball the error is about, for the log line of a failed file operation. */
  ball?: string
  /** The inode the error is about, where the layer that raised it knows it. */
  ino?: number
}

export class ChaacError extends Error {
  readonly code: ChaacCode
  readonly ball?: string
  readonly ino?: number

  constructor (code: ChaacCode, message: string, options?: ChaacErrorOptions) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'ChaacError'
    this.code = code
    if (options?.ball !== undefined) this.ball = options.ball
    if (options?.ino !== undefined) this.ino = options.ino
  }

  get errno (): Errno {
    return ERRNO_OF[this.code]
  }
}

export function isChaacError (err: unknown, code?: ChaacCode): err is ChaacError {
  return err instanceof ChaacError && (code === undefined || err.code === code)
}

export const notFound = (what: string): ChaacError => new ChaacError('CHAAC_NOT_FOUND', `${what}: no such file or directory`)
