// The containers' traffic through the mount, from the binding's per-process
// counts; and which container mounts reach the chaac path.
import t from 'tap'
import { reachesChaac } from '../../src/api/containers-api.ts'
import { ContainerIo, HOST } from '../../src/context/container-io.ts'

const A = 'a'.repeat(64)
const B = 'b'.repeat(64)

t.test('container io - bytes add up per container, the host\'s apart; rates are of the last round', async (t) => {
  const rounds: Array<Array<[string, number, number]>> = [
    [[A, 100, 0], [A, 0, 50], ['', 7, 7], [B, 1, 2]],
    [[A, 10, 10]]
  ]
  const io = new ContainerIo(() => rounds.shift() ?? [])
  io.sample()
  t.same({ read: io.traffic(A).read, written: io.traffic(A).written }, { read: 100, written: 50 })
  t.same({ read: io.traffic(HOST).read, written: io.traffic(HOST).written }, { read: 7, written: 7 })
  io.sample()
  t.same({ read: io.traffic(A).read, written: io.traffic(A).written }, { read: 110, written: 60 })
  t.ok(io.traffic(A).readRate > 0)
  t.equal(io.traffic(B).readRate, 0, 'no traffic in the last round: no rate')
  t.equal(io.traffic(B).written, 2, 'the total stays')
  t.same(io.containers().sort(), [A, B])
  t.same(io.traffic('c'.repeat(64)), { read: 0, written: 0, readRate: 0, writtenRate: 0 })
})

t.test('container io - the mounts that reach the chaac path: it, a folder in it, a folder above it, a chaac volume', async (t) => {
  const m = (type: string, source: string, driver?: string): { type: string, source: string, destination: string, driver?: string } => ({ type, source, destination: '/data', driver })
  t.ok(reachesChaac(m('bind', '/srv/chaac/mount'), '/srv/chaac/mount', 'chaac'))
  t.ok(reachesChaac(m('bind', '/srv/chaac/mount/app/'), '/srv/chaac/mount', 'chaac'))
  t.ok(reachesChaac(m('bind', '/srv/chaac'), '/srv/chaac/mount', 'chaac'))
  t.ok(reachesChaac(m('bind', '/'), '/srv/chaac/mount', 'chaac'))
  t.notOk(reachesChaac(m('bind', '/srv/chaac/mount2'), '/srv/chaac/mount', 'chaac'))
  t.notOk(reachesChaac(m('bind', '/srv/other'), '/srv/chaac/mount', 'chaac'))
  t.ok(reachesChaac(m('volume', 'data1', 'chaac'), '/srv/chaac/mount', 'chaac'))
  t.notOk(reachesChaac(m('volume', 'data1', 'local'), '/srv/chaac/mount', 'chaac'))
  t.notOk(reachesChaac(m('tmpfs', ''), '/srv/chaac/mount', 'chaac'))
})
