// GET /api/v1/containers: the containers on this agent's host that use the
// chaac path (a bind mount of it, of a folder in it, or of a folder above it)
// or a chaac volume, or that read or wrote through the mount: their CPU,
// memory, network and block I/O from Docker's stats, and the bytes they
// moved through Chaac.
import { resolve, sep } from 'node:path'
import type { ContainerDetail } from '../context/container-probe.ts'
import { HOST, type ContainerTraffic } from '../context/container-io.ts'
import type { Sample } from '../history/history-store.ts'
import type { AgentView } from './agent-view.ts'

/** A container as /api/v1/containers shows it: Docker's figures, by its short id. */
export type ContainerEntry = Omit<ContainerDetail, 'mounts'> & {
  /** Its mounts that reach the chaac path or are chaac volumes. */
  uses: ContainerDetail['mounts']
  /** Bytes it asked to read and wrote through the mount since the agent started, and per second lately. */
  chaac: ContainerTraffic
}

/** Whether a mount of a container reaches the chaac path `mountDir`, or is a volume of `volumeDriver`. */
export function reachesChaac (m: ContainerDetail['mounts'][number], mountDir: string, volumeDriver: string): boolean {
  if (m.type === 'volume') return m.driver === volumeDriver
  if (m.type !== 'bind') return false
  const source = resolve(m.source)
  const dir = resolve(mountDir)
  return source === dir || source.startsWith(dir + sep) || dir.startsWith(source === sep ? sep : source + sep)
}

/** The containers that use Chaac on this host, by what the last context sample saw. */
export function chaacContainers (agent: AgentView): ContainerEntry[] {
  const probe = agent.context.containers
  if (probe === undefined) return []
  const io = probe.io
  const moved = new Set(io?.containers() ?? [])
  // Chaac volumes are those of this agent's volume driver (by its name, 'chaac' by default).
  const driver = agent.config.volumeDriver ?? 'chaac'
  const out: ContainerEntry[] = []
  for (const d of probe.details) {
    const uses = d.mounts.filter((m) => reachesChaac(m, agent.config.mount, driver))
    if (uses.length === 0 && !moved.has(d.id)) continue
    const { mounts, ...figures } = d
    out.push({ ...figures, id: d.id.slice(0, 12), uses, chaac: io?.traffic(d.id) ?? { read: 0, written: 0, readRate: 0, writtenRate: 0 } })
  }
  return out.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
}

export function containers (agent: AgentView): object {
  const io = agent.context.containers?.io
  return {
    agent: agent.id,
    docker: agent.context.docker,
    containers: chaacContainers(agent),
    // What processes outside any container moved through the mount.
    host: io?.traffic(HOST) ?? { read: 0, written: 0, readRate: 0, writtenRate: 0 }
  }
}

/** This host's Chaac containers as history samples (their subject: the short id). */
export function containerSamples (agent: AgentView): Sample[] {
  return chaacContainers(agent).flatMap((c) => [
    { metric: 'container.cpu', agent: c.id, value: c.cpu },
    { metric: 'container.memory', agent: c.id, value: c.memoryBytes },
    { metric: 'container.netRx', agent: c.id, value: c.netRx },
    { metric: 'container.netTx', agent: c.id, value: c.netTx },
    { metric: 'container.blkRead', agent: c.id, value: c.blkRead },
    { metric: 'container.blkWrite', agent: c.id, value: c.blkWrite },
    { metric: 'container.chaacRead', agent: c.id, value: c.chaac.readRate },
    { metric: 'container.chaacWritten', agent: c.id, value: c.chaac.writtenRate }
  ])
}
