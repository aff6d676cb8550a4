/**
 * Metrics of a replica in a cluster, in the app's registry: lease held (0/1 per session), lease changes, how far
 * this replica's reader is behind each stream, the latency of publishes and calls forwarded to the holder, and
 * whether Redis answers.
 */
import { Counter, Gauge, Histogram } from 'prom-client'
import type { Registry } from 'prom-client'

export interface ClusterGaugeSource {
  readonly name: string
  readonly isHolder: boolean
  readonly log: { lagMs: number }
}

export class ClusterMetrics {
  readonly leaseChanges: Counter<'session' | 'change'>
  readonly forwardDuration: Histogram<'session' | 'op' | 'outcome'>

  constructor (registry: Registry, sources: () => Iterable<ClusterGaugeSource>, redisUp: () => boolean) {
    const registers = [registry]
    this.leaseChanges = new Counter({ name: 'cometd_bridge_cluster_lease_changes_total', help: 'Leases this replica acquired or lost', labelNames: ['session', 'change'], registers })
    this.forwardDuration = new Histogram({
      name: 'cometd_bridge_cluster_forward_duration_seconds',
      help: 'Publishes, calls and subscribes forwarded to the holder through Redis, round trip included',
      labelNames: ['session', 'op', 'outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers
    })
    new Gauge({
      name: 'cometd_bridge_cluster_lease_held',
      help: '1 when this replica holds the session (and keeps its upstream)',
      labelNames: ['session'],
      registers,
      collect () {
        this.reset()
        for (const s of sources()) this.set({ session: s.name }, s.isHolder ? 1 : 0)
      }
    })
    new Gauge({
      name: 'cometd_bridge_cluster_read_lag_seconds',
      help: 'Age of the newest stream entry this replica read when it read it (Redis clock vs this replica\'s)',
      labelNames: ['session'],
      registers,
      collect () {
        this.reset()
        for (const s of sources()) this.set({ session: s.name }, s.log.lagMs / 1000)
      }
    })
    new Gauge({
      name: 'cometd_bridge_cluster_redis_up',
      help: '1 when Redis answers and may be used (noeviction, epoch checked)',
      registers,
      collect () { this.set(redisUp() ? 1 : 0) }
    })
  }
}
