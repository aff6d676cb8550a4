/**
 * A replica of a cluster: its Redis link and the parts every cluster session shares — leases, the one stream
 * reader, the subscription interest, the request bus, the metrics — plus the holder's periodic look at what the
 * callers of all replicas want. app.ts opens it (by dynamic import) only when `cluster` is configured.
 */
import type { Registry } from 'prom-client'
import type { SessionConfig } from '../../config/index.js'
import { LazyChildLogger } from '../ops/lazy-log.js'
import type { SessionLogger } from '../ops/lazy-log.js'
import { Bus, noHolder } from './bus.js'
import { ClusterSession } from './cluster-session.js'
import type { ClusterSessionOptions } from './cluster-session.js'
import type { ClusterConfig } from '../../config/index.js'
import { redisErrorText } from './errors.js'
import { Interest } from './interest.js'
import { Leases } from './lease.js'
import { ClusterMetrics } from './metrics.js'
import { RedisLink } from './redis.js'
import { StreamReader } from './stream-reader.js'

export type { ClusterServices } from './replica-parts.js'

export interface ClusterOpenOptions {
  log: SessionLogger
  registry: Registry
  startTimeoutMs?: number
}

export class ClusterNode {
  readonly redis: RedisLink
  readonly leases: Leases
  readonly reader: StreamReader
  readonly interest: Interest
  readonly bus: Bus
  readonly metrics: ClusterMetrics
  readonly sessions = new Map<string, ClusterSession>()
  readonly #log: SessionLogger
  #sweep: NodeJS.Timeout | null = null
  #sweeping = false
  #closed = false

  private constructor (redis: RedisLink, o: ClusterOpenOptions) {
    this.redis = redis
    this.#log = o.log
    const log = (component: string): SessionLogger => new LazyChildLogger(o.log, { component })
    this.leases = new Leases(redis, log('lease'))
    this.reader = new StreamReader(redis, log('stream-reader'))
    this.interest = new Interest(redis, log('interest'))
    this.bus = new Bus(redis, log('bus'))
    this.metrics = new ClusterMetrics(o.registry, () => this.sessions.values(), () => redis.state === 'up')
  }

  /** Connects to Redis (refusing an evicting one) and listens for requests. Throws a ClusterError. */
  static async open (config: ClusterConfig, o: ClusterOpenOptions): Promise<ClusterNode> {
    const redis = await RedisLink.open(config, { log: new LazyChildLogger(o.log, { component: 'redis' }), ...(o.startTimeoutMs !== undefined ? { startTimeoutMs: o.startTimeoutMs } : {}) })
    const node = new ClusterNode(redis, o)
    await node.bus.start(async (request) => {
      const session = node.sessions.get(request.session)
      if (session === undefined) throw noHolder(request.session, `unknown to replica ${redis.replicaId}`)
      return await session.serve(request)
    })
    redis.onState((state, reason) => { node.#redisState(state, reason) })
    const every = Math.max(100, Math.floor(config.leaseMs / 3))
    node.#sweep = setInterval(() => { void node.#reconcile() }, every)
    node.#sweep.unref()
    o.log.info({ replicaId: config.replicaId, epoch: redis.epoch, leaseMs: config.leaseMs }, 'cluster: connected to Redis')
    return node
  }

  get replicaId (): string { return this.redis.replicaId }

  session (name: string, config: SessionConfig, options: Omit<ClusterSessionOptions, 'cluster'>): ClusterSession {
    const session = new ClusterSession(name, config, { ...options, cluster: this })
    this.sessions.set(name, session)
    return session
  }

  /** A session could not start (Redis away): start it again later. */
  retryStart (session: { readonly name: string, start: () => Promise<void> }): void {
    const timer = setTimeout(() => {
      if (!this.#closed && this.sessions.get(session.name) === session) void session.start()
    }, Math.max(1_000, this.redis.config.leaseMs))
    timer.unref()
  }

  /** After the sessions closed (their leases released): the reader, the bus and Redis. */
  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#sweep !== null) clearInterval(this.#sweep)
    this.bus.close()
    await this.leases.close()
    // closing the link ends a blocking read at once, even on a Redis that hangs
    const reading = this.reader.close()
    await this.redis.close()
    await reading
  }

  /** The holder subscribes to what the callers of every live replica want, and releases the rest. */
  async #reconcile (): Promise<void> {
    if (this.#sweeping || this.#closed || this.redis.state !== 'up') return
    const held = [...this.sessions.values()].filter((s) => s.isHolder)
    if (held.length === 0) return
    this.#sweeping = true
    try {
      const wanted = await this.interest.sweep()
      for (const s of held) s.wanted(wanted.get(s.name) ?? new Set())
    } catch (err) {
      this.#log.debug({ error: redisErrorText(err) }, 'cluster: interest sweep failed')
    } finally {
      this.#sweeping = false
    }
  }

  #redisState (state: string, reason: string): void {
    if (this.#closed || state === 'connecting' || state === 'closed') return
    if (state === 'up') void this.interest.rewrite()
    for (const s of this.sessions.values()) s.redisState(state, reason)
  }
}
