// An agent on etcd members that speak TLS only and check users: it connects
// with --etcd-ca, --etcd-cert, --etcd-key, --etcd-user and the password in
// CHAAC_ETCD_PASSWORD, and serves its chaac path; a wrong password or no CA
// stops it at start with a message that says why.
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { cleanupAgent, shOk, startAgent } from '../helpers/agent.ts'
import { withEtcd } from '../helpers/etcd.ts'

const run = promisify(execFile)
const HOST = '127.0.0.5'

t.test('etcd with TLS and users - the agent connects with its certificate and password; wrong ones are refused at start', { timeout: 180_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-etcd-tls-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const f = (name: string): string => join(dir, name)
  // A CA, and one certificate for the member and its clients (an IP address as name, as on loopback).
  await run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('ca.key'), '-out', f('ca.crt'), '-days', '1', '-subj', '/CN=chaac test CA'])
  await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f('etcd.key'), '-out', f('etcd.csr'), '-subj', '/CN=chaac'])
  await writeFile(f('ext'), `subjectAltName=IP:${HOST},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`)
  await run('openssl', ['x509', '-req', '-in', f('etcd.csr'), '-CA', f('ca.crt'), '-CAkey', f('ca.key'), '-CAcreateserial', '-out', f('etcd.crt'), '-days', '1', '-extfile', f('ext')])
  const tls = { ca: f('ca.crt'), cert: f('etcd.crt'), key: f('etcd.key') }
  const etcd = await withEtcd(t, { hosts: [HOST], tls })
  const ctl = async (...args: string[]): Promise<string> => (await run('etcdctl', [
    `--endpoints=https://${etcd.endpoints[0]}`, `--cacert=${tls.ca}`, `--cert=${tls.cert}`, `--key=${tls.key}`, '--user=root:rootpw', ...args
  ])).stdout
  await run('etcdctl', [`--endpoints=https://${etcd.endpoints[0]}`, `--cacert=${tls.ca}`, `--cert=${tls.cert}`, `--key=${tls.key}`, 'user', 'add', 'root:rootpw'])
  await ctl('user', 'add', 'chaac:chaacpw')
  await ctl('role', 'add', 'chaac')
  await ctl('role', 'grant-permission', 'chaac', '--prefix=true', 'readwrite', '/secure/')
  await ctl('user', 'grant-role', 'chaac', 'chaac')
  await ctl('auth', 'enable')

  const meta = `etcd://${etcd.endpoints[0]}/secure`
  const flags = ['--meta', meta, '--listen', '127.0.0.2:0', '--http', '127.0.0.2:0', '--cloud', 'none', '--etcd-ca', tls.ca, '--etcd-cert', tls.cert, '--etcd-key', tls.key, '--etcd-user', 'chaac']
  const agent = await startAgent({ args: flags, env: { CHAAC_ETCD_PASSWORD: 'chaacpw' } })
  t.teardown(async () => await cleanupAgent(agent))
  await shOk(`echo secure > '${agent.mount}/f' && mkdir '${agent.mount}/d' && mv '${agent.mount}/f' '${agent.mount}/d/g'`)
  t.equal(await shOk(`cat '${agent.mount}/d/g'`), 'secure\n', 'files written and read with the metadata over TLS')
  t.match(await ctl('get', '--prefix', '--keys-only', '/secure/d!'), /\/secure\/d!/, 'the records are in etcd under the prefix')

  await t.rejects(startAgent({ args: flags, env: { CHAAC_ETCD_PASSWORD: 'wrong' } }), /refused this agent.*(authentication|password)/i,
    'a wrong password stops the agent at start, saying etcd refused it')
  const noCa = flags.filter((x, i) => !['--etcd-ca', '--etcd-cert', '--etcd-key'].includes(x) && !['--etcd-ca', '--etcd-cert', '--etcd-key'].includes(flags[i - 1]))
  await t.rejects(startAgent({ args: noCa, env: { CHAAC_ETCD_PASSWORD: 'chaacpw' } }), /cannot reach etcd/,
    'without TLS the agent cannot reach members that speak TLS only, and says so')
})
