// Docker's volume plugin protocol without Docker: the driver's answers to each
// endpoint against an in-memory store, and the plugin socket (a temporary
// folder here, not Docker's): HTTP framing, stale and live sockets, close.
import { execFile } from 'node:child_process'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { lstat, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { ChaacError } from '../../src/errors.ts'
import { PluginSocket } from '../../src/docker/plugin-socket.ts'
import { parseVolumeDriver } from '../../src/config.ts'
import { PLUGIN_CONTENT_TYPE, VolumeDriver, checkVolumeName, type VolumeInfo, type VolumeStore } from '../../src/docker/volume-driver.ts'

const execFileP = promisify(execFile)

class MemoryVolumes implements VolumeStore {
  readonly volumes = new Map<string, VolumeInfo>()
  async create (name: string, options: Record<string, string>): Promise<void> {
    if (!this.volumes.has(name)) this.volumes.set(name, { name, createdAt: Date.UTC(2026, 0, 2, 3, 4, 5), options })
  }

  async remove (name: string): Promise<void> {
    if (!this.volumes.delete(name)) throw new ChaacError('CHAAC_NOT_FOUND', `no volume named ${name}`)
  }

  async get (name: string): Promise<VolumeInfo | undefined> { return this.volumes.get(name) }
  async list (): Promise<VolumeInfo[]> { return [...this.volumes.values()] }
  mountpoint (name: string): string { return `/srv/chaac/mount/volumes/${name}` }

  readonly here = new Map<string, string[]>()
  /** Mounts other agents alive recorded. */
  readonly elsewhere = new Map<string, number>()
  writes = 0
  async mounts (name: string): Promise<{ here: string[], elsewhere: number }> {
    return { here: this.here.get(name) ?? [], elsewhere: this.elsewhere.get(name) ?? 0 }
  }

  async recordMounts (name: string, ids: string[]): Promise<void> {
    this.writes++
    // Slow, so that requests arriving together would lose each other's ids unless answered one at a time.
    await new Promise((resolve) => setTimeout(resolve, 5))
    if (ids.length > 0) this.here.set(name, ids)
    else this.here.delete(name)
  }
}

function setup (replicas = 2): { store: MemoryVolumes, driver: VolumeDriver } {
  const store = new MemoryVolumes()
  return { store, driver: new VolumeDriver(store, replicas) }
}

t.test('volume driver - activation and capabilities', async (t) => {
  const { driver } = setup()
  t.same(await driver.handle('/Plugin.Activate', {}), { status: 200, body: { Implements: ['VolumeDriver'] } })
  t.same(await driver.handle('/VolumeDriver.Capabilities', null), { status: 200, body: { Capabilities: { Scope: 'global' } } })
})

t.test('volume driver - create, get, list, path, remove', async (t) => {
  const { store, driver } = setup()
  t.same(await driver.handle('/VolumeDriver.Create', { Name: 'data1', Opts: { replicas: '2' } }), { status: 200, body: {} })
  t.same(store.volumes.get('data1')?.options, { replicas: '2' })
  // A second create of the name (another host of the cluster) keeps the volume as it is.
  t.same(await driver.handle('/VolumeDriver.Create', { Name: 'data1' }), { status: 200, body: {} })
  t.same(store.volumes.get('data1')?.options, { replicas: '2' })
  const got = await driver.handle('/VolumeDriver.Get', { Name: 'data1' })
  t.same(got, {
    status: 200,
    body: {
      Volume: {
        Name: 'data1',
        Mountpoint: '/srv/chaac/mount/volumes/data1',
        CreatedAt: '2026-01-02T03:04:05.000Z',
        Status: { options: { replicas: '2' }, replicas: 2, mountsHere: 0, mountsElsewhere: 0 }
      }
    }
  })
  t.same(await driver.handle('/VolumeDriver.List', {}), {
    status: 200, body: { Volumes: [{ Name: 'data1', Mountpoint: '/srv/chaac/mount/volumes/data1', CreatedAt: '2026-01-02T03:04:05.000Z' }] }
  })
  t.same(await driver.handle('/VolumeDriver.Path', { Name: 'data1' }), { status: 200, body: { Mountpoint: '/srv/chaac/mount/volumes/data1' } })
  t.same(await driver.handle('/VolumeDriver.Remove', { Name: 'data1' }), { status: 200, body: {} })
  t.same(await driver.handle('/VolumeDriver.Get', { Name: 'data1' }), { status: 500, body: { Err: 'no volume named data1' } })
  t.same(await driver.handle('/VolumeDriver.Remove', { Name: 'data1' }), { status: 500, body: { Err: 'no volume named data1' } })
  t.same(await driver.handle('/VolumeDriver.List', {}), { status: 200, body: { Volumes: [] } })
})

t.test('volume driver - mount ids are recorded per volume, and remove waits for the last unmount here and elsewhere', async (t) => {
  const { store, driver } = setup()
  const mountsHere = async (): Promise<number> => ((await driver.handle('/VolumeDriver.Get', { Name: 'shared' })).body as any).Volume.Status.mountsHere
  await driver.handle('/VolumeDriver.Create', { Name: 'shared' })
  // Requests arriving together are answered one at a time: no id is lost.
  const answers = await Promise.all(['c1', 'c2', 'c2'].map(async (ID) => await driver.handle('/VolumeDriver.Mount', { Name: 'shared', ID })))
  t.same(answers[0], { status: 200, body: { Mountpoint: '/srv/chaac/mount/volumes/shared' } })
  t.same(store.here.get('shared'), ['c1', 'c2'], 'an id mounted twice is recorded once')
  t.equal(store.writes, 2)
  t.equal(await mountsHere(), 2)
  t.same(await driver.handle('/VolumeDriver.Remove', { Name: 'shared' }), {
    status: 500, body: { Err: 'volume shared is in use by 2 containers (2 on this host, 0 on other hosts)' }
  })
  t.same(await driver.handle('/VolumeDriver.Unmount', { Name: 'shared', ID: 'c1' }), { status: 200, body: {} })
  // An id never recorded has nothing to undo.
  t.same(await driver.handle('/VolumeDriver.Unmount', { Name: 'shared', ID: 'unknown' }), { status: 200, body: {} })
  t.equal(store.writes, 3)
  await driver.handle('/VolumeDriver.Unmount', { Name: 'shared', ID: 'c2' })
  t.equal(await mountsHere(), 0)
  t.notOk(store.here.has('shared'), 'the last unmount drops the record')
  store.elsewhere.set('shared', 1)
  t.same(await driver.handle('/VolumeDriver.Remove', { Name: 'shared' }), {
    status: 500, body: { Err: 'volume shared is in use by 1 container (0 on this host, 1 on other hosts)' }
  })
  t.same(((await driver.handle('/VolumeDriver.Get', { Name: 'shared' })).body as any).Volume.Status, { options: {}, replicas: 2, mountsHere: 0, mountsElsewhere: 1 })
  store.elsewhere.delete('shared')
  t.same(await driver.handle('/VolumeDriver.Remove', { Name: 'shared' }), { status: 200, body: {} })
  t.same(await driver.handle('/VolumeDriver.Mount', { Name: 'shared', ID: 'c3' }), { status: 500, body: { Err: 'no volume named shared' } })
})

t.test('volume driver - bad names, options and requests get a clear Err', async (t) => {
  const { store, driver } = setup(2)
  const cases: Array<[string, unknown, RegExp]> = [
    ['/VolumeDriver.Create', {}, /a volume needs a name/],
    ['/VolumeDriver.Create', { Name: 'a' }, /'a' is not a valid volume name: at least 2 characters/],
    ['/VolumeDriver.Create', { Name: '.info' }, /not a valid volume name/],
    ['/VolumeDriver.Create', { Name: '../etc' }, /not a valid volume name/],
    ['/VolumeDriver.Create', { Name: 'a/b' }, /not a valid volume name/],
    ['/VolumeDriver.Create', { Name: 'x'.repeat(256) }, /at most 255/],
    ['/VolumeDriver.Create', { Name: 'ok1', Opts: { size: '1G' } }, /unknown volume option 'size' \(the chaac driver takes: replicas\)/],
    ['/VolumeDriver.Create', { Name: 'ok1', Opts: { replicas: 'three' } }, /replicas must be a whole number of copies, at least 1; got 'three'/],
    ['/VolumeDriver.Create', { Name: 'ok1', Opts: { replicas: '0' } }, /at least 1/],
    ['/VolumeDriver.Create', { Name: 'ok1', Opts: { replicas: '3' } }, /replicas=3: Chaac keeps every ball here in 2 copies .*a volume cannot have its own/],
    ['/VolumeDriver.Create', { Name: 'ok1', Opts: ['replicas=2'] }, /volume options must be an object/],
    ['/VolumeDriver.Create', 'data1', /the request body must be a JSON object/],
    ['/VolumeDriver.Mount', { Name: 'ok1' }, /no volume named ok1/],
    ['/VolumeDriver.Unmount', { Name: 'ok1' }, /needs the ID of the container's mount/],
    ['/VolumeDriver.Frobnicate', {}, /does not answer \/VolumeDriver.Frobnicate/]
  ]
  for (const [endpoint, body, err] of cases) {
    const answer = await driver.handle(endpoint, body)
    t.equal(answer.status, 500, `${endpoint} ${JSON.stringify(body)}`)
    t.match((answer.body as { Err: string }).Err, err, `${endpoint} ${JSON.stringify(body)}`)
  }
  t.equal(store.volumes.size, 0, 'nothing was created')
  t.equal(checkVolumeName('my_volume-1.0'), 'my_volume-1.0')
})

t.test('volume driver - a store failure is an Err, not a crash', async (t) => {
  const store = new MemoryVolumes()
  store.list = async () => { throw new Error('disk on fire') }
  const driver = new VolumeDriver(store, 1)
  t.same(await driver.handle('/VolumeDriver.List', {}), { status: 500, body: { Err: 'chaac: disk on fire' } })
})

interface Reply { status: number, type: string | undefined, body: any }

async function post (socketPath: string, path: string, body: string, method = 'POST'): Promise<Reply> {
  return await new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method, headers: { 'Content-Type': PLUGIN_CONTENT_TYPE }, timeout: 5000 }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (s: string) => { text += s })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: res.headers['content-type'], body: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.on('timeout', () => req.destroy(new Error('no answer')))
    req.end(body)
  })
}

t.test('plugin socket - answers HTTP POSTs with JSON, refuses the rest', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-plugins-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const socket = new PluginSocket(PluginSocket.pathFor('unit', dir), setup().driver)
  await socket.listen()
  t.teardown(async () => await socket.close())
  t.equal(socket.path, join(dir, 'unit.sock'))
  t.ok(socket.listening)
  t.equal((await lstat(socket.path)).mode & 0o777, 0o600, 'only root talks to the driver')
  const activated = await post(socket.path, '/Plugin.Activate', '')
  t.same(activated, { status: 200, type: PLUGIN_CONTENT_TYPE, body: { Implements: ['VolumeDriver'] } })
  t.same((await post(socket.path, '/VolumeDriver.Create', '{"Name":"v1","Opts":null}')).body, {})
  t.same((await post(socket.path, '/VolumeDriver.List', 'null')).body.Volumes.map((v: { Name: string }) => v.Name), ['v1'])
  t.same(await post(socket.path, '/VolumeDriver.Create', '{"Name":'), { status: 400, type: PLUGIN_CONTENT_TYPE, body: { Err: 'the request body is not JSON' } })
  t.same((await post(socket.path, '/VolumeDriver.List', '', 'GET')).status, 405)
  t.same((await post(socket.path, '/VolumeDriver.Create', JSON.stringify({ Name: 'v2', Opts: { x: 'y'.repeat(70_000) } }))).status, 413)
})

t.test('plugin socket - replaces a stale socket, leaves a live one and a non-socket alone, removes its own at close', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'chaac-plugins-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const path = PluginSocket.pathFor('unit', dir)

  // A live server on the path: another agent serves that driver name.
  const other = createServer((c) => c.end())
  await new Promise<void>((resolve) => other.listen(path, resolve))
  await t.rejects(new PluginSocket(path, setup().driver).listen(), { code: 'CHAAC_EXISTS', message: `another process serves the Docker plugin socket ${path}` })
  await new Promise<void>((resolve) => other.close(() => resolve()))
  // A process that dies without closing its socket (kill -9) leaves the file: nobody answers on it.
  await execFileP('python3', ['-c', 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])', path])
  t.ok((await lstat(path)).isSocket(), 'a stale socket is there')

  const socket = new PluginSocket(path, setup().driver)
  await socket.listen()
  t.same((await post(path, '/Plugin.Activate', '')).body, { Implements: ['VolumeDriver'] })
  await socket.close()
  await socket.close()
  await t.rejects(lstat(path), { code: 'ENOENT' }, 'the socket is gone after a clean stop')

  await writeFile(path, 'not a socket')
  await t.rejects(new PluginSocket(path, setup().driver).listen(), { message: `${path} exists and is not a socket` })
})

t.test('--volume-driver - a plugin name or none; anything else stops the agent with a clear message', async (t) => {
  t.equal(parseVolumeDriver('chaac'), 'chaac')
  t.equal(parseVolumeDriver('chaac-2.test_x'), 'chaac-2.test_x')
  t.equal(parseVolumeDriver('none'), undefined)
  for (const bad of ['', 'a/b', '../x', '-x', 'x'.repeat(129)]) {
    t.throws(() => parseVolumeDriver(bad), { message: `not a volume driver name: '${bad}' (letters, digits, '_', '.' and '-', starting with a letter or digit; or none)` })
  }
  const cli = join(import.meta.dirname, '..', '..', 'bin', 'chaac.mjs')
  const r = await execFileP(process.execPath, [cli, 'agent', '--volume-driver', 'a/b'], { timeout: 30_000 }).then(() => undefined, (err: { code: number, stderr: string }) => err)
  t.equal(r?.code, 1)
  t.match(r?.stderr, /--volume-driver: not a volume driver name: 'a\/b'/)
})
