/** What a cluster session uses of its replica (services.ts's ClusterNode): the parts every session shares. */
import type { Bus } from './bus.js'
import type { Interest } from './interest.js'
import type { Leases } from './lease.js'
import type { ClusterMetrics } from './metrics.js'
import type { RedisLink } from './redis.js'
import type { StreamReader } from './stream-reader.js'

export interface ClusterServices {
  readonly redis: RedisLink
  readonly leases: Leases
  readonly reader: StreamReader
  readonly interest: Interest
  readonly bus: Bus
  readonly metrics: ClusterMetrics
  /** a session whose start failed is started again later (after about a lease) */
  retryStart: (session: { readonly name: string, start: () => Promise<void> }) => void
}
