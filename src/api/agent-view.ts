// What the HTTP API reads of a running agent.
import type { AgentConfig } from '../config.ts'
import type { ContextMonitor } from '../context/context-monitor.ts'
import type { CloudCollector } from '../fs/cloud-collector.ts'
import type { CloudUploader } from '../fs/cloud-uploader.ts'
import type { Filesystem } from '../fs/filesystem.ts'
import type { ClusterHistory } from '../history/cluster-history.ts'
import type { ChaacMount } from '../fuse/mount.ts'
import type { DataPlane } from '../cluster/data-plane.ts'
import type { Pool } from '../meta/pool.ts'
import type { AgentCounters, AgentReport } from '../meta/schema.ts'
import type { Policy } from '../placement/types.ts'
import type { Balls } from '../balls/balls.ts'
import type { Launcher } from '../containers/launcher.ts'
import type { HttpApi } from './http-api.ts'

export interface AgentView {
  readonly id: string
  readonly version: string
  readonly startedAt: number
  readonly config: AgentConfig
  readonly pool: Pool
  readonly store: Balls
  readonly fs: Filesystem
  readonly mount: ChaacMount
  readonly uploader: CloudUploader
  readonly collector: CloudCollector
  readonly context: ContextMonitor
  readonly http: HttpApi
  /** Where peers reach this agent; null for an agent alone. */
  readonly peerUrl: string | null
  /** The data plane, in a cluster. */
  readonly plane?: DataPlane
  /** The Docker volume driver, unless turned off; `reason` says why its socket does not listen. */
  readonly volumeDriver?: { readonly name: string, readonly socket: { readonly path: string, readonly listening: boolean }, readonly reason?: string }
  /** The election of the background worker, in a cluster on etcd. */
  readonly worker?: { readonly elected: boolean }
  /** Read outcomes and bytes through the mount so far (the binding's own reads included). */
  counters: () => AgentCounters
  /** This agent as it reports itself to the data pool. */
  report: () => AgentReport
  /** The cluster's history, sampled here. */
  readonly history: ClusterHistory
  /** The allocator policy in use. */
  readonly policy: Policy
  /** Creates and removes data container bins on this host (once the agent runs). */
  readonly launcher?: Launcher
  /** Changes the cluster's allocator policy (every agent follows). */
  changePolicy: (policy: Policy) => Promise<void>
}
