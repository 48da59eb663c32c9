import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { ContainerFacts } from '../../src/containers/bin-labels.ts'
import { ContainerBins, type BinEngine } from '../../src/containers/container-bins.ts'
import type { BinEvent } from '../../src/containers/docker-engine.ts'
import { Bin } from '../../src/store/bin.ts'
import { waitFor } from '../helpers/wait.ts'

/** An engine in memory: containers by id, and the event stream the follower subscribed to. */
class FakeEngine implements BinEngine {
  readonly containers = new Map<string, ContainerFacts>()
  subscriptions = 0
  emit?: (e: BinEvent) => void
  end?: (err?: Error) => void
  async runningBins (): Promise<ContainerFacts[]> {
    return [...this.containers.values()].filter((c) => c.running)
  }

  async inspect (id: string): Promise<ContainerFacts | undefined> {
    return this.containers.get(id)
  }

  async events (onEvent: (e: BinEvent) => void, onEnd: (err?: Error) => void): Promise<() => void> {
    this.subscriptions++
    this.emit = onEvent
    this.end = onEnd
    return () => { this.emit = undefined }
  }
}

const facts = (id: string, labels: Record<string, string>, running = true): ContainerFacts => ({ id, name: `c-${id}`, labels, mounts: ['/balls'], running, pid: running ? 42 : 0 })
const DISK = { 'chaac.bin': 'disk', 'chaac.capacity': '1MiB' }

t.test('ContainerBins - adopts running containers, takes their bins away when they stop, brings them back, and follows the engine again after the stream ends', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'chaac-unit-cbins-'))
  t.teardown(async () => await rm(root, { recursive: true, force: true }))
  const engine = new FakeEngine()
  engine.containers.set('a'.repeat(64), facts('a'.repeat(64), DISK))
  engine.containers.set('b'.repeat(64), facts('b'.repeat(64), { ...DISK, 'chaac.bin': 'fast' }))
  const dirs: string[] = []
  const attached = new Set<Bin>()
  const warnings: string[] = []
  const follower = new ContainerBins({
    engine,
    agentId: 'me',
    // One directory per container: the same bin id comes back when the container starts again.
    attach: async (spec, dir) => {
      dirs.push(dir)
      const bin = new Bin({ level: spec.level, dir: join(root, spec.container.name), capacity: spec.capacity })
      await bin.open()
      attached.add(bin)
      return bin
    },
    detach: async (bin) => { attached.delete(bin) },
    log: { info: () => {}, warn: (_obj, msg) => warnings.push(msg) }
  })
  t.teardown(() => follower.close())
  follower.start()
  await waitFor(() => attached.size === 1, { timeoutMs: 5000, what: 'the running container adopted' })
  t.same(dirs, ['/proc/42/root/balls'], 'its directory is reached through its init process')
  const [bin] = attached
  t.same(follower.containerOf(bin.id)?.online, true)
  t.equal(warnings.length, 1, 'the container with wrong labels is refused once')
  t.match(warnings[0], /label chaac.bin=fast is not a level/)

  engine.containers.set('a'.repeat(64), facts('a'.repeat(64), DISK, false))
  engine.emit?.({ action: 'die', id: 'a'.repeat(64) })
  await follower.settled('a'.repeat(64))
  t.equal(attached.size, 0, 'a stopped container\'s bin is taken away')
  const [offline] = follower.offline()
  t.equal(offline.id, bin.id)
  t.equal(offline.container?.name, `c-${'a'.repeat(64)}`)
  t.type(offline.offline, 'number', 'listed offline since a moment')

  engine.containers.set('a'.repeat(64), facts('a'.repeat(64), DISK))
  engine.emit?.({ action: 'start', id: 'a'.repeat(64) })
  engine.emit?.({ action: 'start', id: 'b'.repeat(64) })
  await follower.settled('a'.repeat(64))
  t.equal([...attached][0]?.id, bin.id, 'started again: the same bin is back')
  t.same(follower.offline(), [])
  t.equal(warnings.length, 1, 'the refused container is not logged again')

  engine.end?.(new Error('engine restarted'))
  await waitFor(() => engine.subscriptions === 2, { timeoutMs: 5000, what: 'the follower to subscribe again' })
  t.pass('the follower subscribes again after the stream ends')
})
