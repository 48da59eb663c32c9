// Where the etcd metadata engine lives and how to reach it: the --meta URL
// (etcd://HOST:PORT[,HOST:PORT...]/PREFIX), TLS and user credentials, and
// the client with a deadline on every call (a member that accepts
// connections before it can serve would otherwise hold a call for seconds).
import { readFileSync } from 'node:fs'
import { ExponentialBackoff } from 'cockatiel'
import { Etcd3, type IOptions } from 'etcd3'

export interface EtcdSpec {
  endpoints: string[]
  /** Every key of the cluster starts with it: `/PREFIX/`. */
  prefix: string
  ca?: string
  cert?: string
  key?: string
  user?: string
  password?: string
  /** Deadline of one call to etcd (ms). */
  callTimeoutMs: number
}

export const DEFAULT_PREFIX = 'chaac'
const DEFAULT_CALL_TIMEOUT_MS = 2_000

/** `--meta`: `leveldb` (undefined: the embedded engine) or `etcd://HOST:PORT[,HOST:PORT...]/PREFIX`. */
export function parseMetaUrl (text: string): Pick<EtcdSpec, 'endpoints' | 'prefix'> | undefined {
  if (text === 'leveldb' || text === '') return undefined
  const m = /^etcd:\/\/([^/]+)(?:\/(.*))?$/.exec(text)
  if (!m) throw new RangeError(`not a metadata engine: '${text}' (expected leveldb or etcd://HOST:PORT[,HOST:PORT...]/PREFIX)`)
  const endpoints = m[1].split(',').map((hp) => {
    const e = /^(\[[0-9a-f:]+\]|[^:[\]]+):(\d{1,5})$/i.exec(hp)
    if (!e || Number(e[2]) > 65535) throw new RangeError(`'${hp}' in '${text}' is not HOST:PORT`)
    return hp
  })
  const prefix = (m[2] ?? '').replace(/^\/+|\/+$/g, '')
  if (/[\s]/.test(prefix)) throw new RangeError(`the prefix '${prefix}' of '${text}' has white space`)
  return { endpoints, prefix: `/${prefix === '' ? DEFAULT_PREFIX : prefix}/` }
}

export function etcdSpec (url: Pick<EtcdSpec, 'endpoints' | 'prefix'>, opts: Partial<Omit<EtcdSpec, 'endpoints' | 'prefix'>> = {}): EtcdSpec {
  if ((opts.cert === undefined) !== (opts.key === undefined)) throw new RangeError('give both --etcd-cert and --etcd-key, or neither')
  if (opts.password !== undefined && opts.user === undefined) throw new RangeError('an etcd password without --etcd-user')
  return { ...url, ...opts, callTimeoutMs: opts.callTimeoutMs ?? DEFAULT_CALL_TIMEOUT_MS }
}

/** `HOST:PORT,...` of the spec, as etcdctl's --endpoints takes them. */
export function describeEtcd (spec: EtcdSpec): string {
  return `etcd://${spec.endpoints.join(',')}${spec.prefix.replace(/\/$/, '')}`
}

export function connectEtcd (spec: EtcdSpec): Etcd3 {
  const tls = spec.ca !== undefined || spec.cert !== undefined
  const options: IOptions = {
    hosts: spec.endpoints.map((hp) => `${tls ? 'https' : 'http'}://${hp}`),
    // Streams (watches, lease keep-alives) live on; every single call has a deadline.
    defaultCallOptions: (context) => context.isStream ? {} : { deadline: new Date(Date.now() + spec.callTimeoutMs) },
    // The client's own retries (on another member) are safe: a change applied twice fails its own guard.
    // A watch cut off comes back within a second of the network healing, not after up to 30 s.
    faultHandling: { watchBackoff: new ExponentialBackoff({ initialDelay: 100, maxDelay: 1_000 }).next() }
  }
  if (tls) {
    options.credentials = {
      rootCertificate: readFileSync(spec.ca ?? '/etc/ssl/certs/ca-certificates.crt'),
      ...(spec.key !== undefined && spec.cert !== undefined ? { privateKey: readFileSync(spec.key), certChain: readFileSync(spec.cert) } : {})
    }
  }
  if (spec.user !== undefined) options.auth = { username: spec.user, password: spec.password ?? '' }
  return new Etcd3(options)
}
