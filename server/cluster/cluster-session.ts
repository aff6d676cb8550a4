/**
 * One configured session of a replica in a cluster: the same face as BridgeSession (attach, patterns, publish,
 * call, view, close) over a shared log. Every replica serves its callers from the session's Redis stream (the one
 * reader loop of the replica feeds the hub); the replica holding the lease also keeps the upstream (holder.ts).
 * Subscriptions are asked of the holder (interest.ts, bus.ts); publish and call go to the holder.
 */
import type { Message } from '../../client-core/index.js'
import { channelMatches } from '../channels.js'
import type { SessionConfig, SseConfig } from '../../config/index.js'
import { ErrorCode, HttpError } from '../errors.js'
import type { Gap } from '../event-log/resume.js'
import type { Frame } from '../frames.js'
import { Hub } from '../hub/hub.js'
import type { SessionLogger } from '../ops/lazy-log.js'
import type { BridgeMetrics } from '../ops/metrics.js'
import { timed } from '../ops/timed.js'
import { watchUpstream } from '../ops/upstream-log.js'
import { SessionCallers } from '../session/callers.js'
import type { ResumeStart } from '../session/callers.js'
import { newSessionStats } from '../session/view.js'
import type { SessionStats } from '../session/view.js'
import { sseFrame } from '../frames.js'
import type { ClientFactory, LastError } from '../upstream/link.js'
import { noHolder } from './bus.js'
import type { BusRequest } from './bus.js'
import { Holder } from './holder.js'
import type { RemoteOutcome } from './holder.js'
import type { Lease } from './lease.js'
import type { ClusterServices } from './replica-parts.js'
import { RedisStreamLog } from './stream-log.js'
import type { ClusterEntry, ClusterRead } from './stream-log.js'
import { clusterView, parseStatus, remoteState } from './cluster-view.js'
import type { ClusterSessionView, RemoteStatus } from './cluster-view.js'

export interface ClusterSessionOptions {
  sse: SseConfig
  metrics: BridgeMetrics
  log: SessionLogger
  cluster: ClusterServices
  createClient?: ClientFactory | undefined
  dataDir: string
  checkpointIntervalMs: number
}

export class ClusterSession {
  readonly name: string
  readonly config: SessionConfig
  readonly hub = new Hub()
  readonly log: RedisStreamLog
  readonly stats: SessionStats = newSessionStats()
  /** its callers: attach, patterns added and removed, resume, delivery (session/callers.ts) */
  readonly callers: SessionCallers

  lastMessageAt: number | null = null
  readonly #o: ClusterSessionOptions
  readonly #c: ClusterServices
  #lease: Lease | null = null
  #holder: Holder | null = null
  /** the upstream as the holder last reported it in the stream */
  #remote: RemoteStatus = { state: 'unknown', holder: null }
  /** the reader delivered a session status (the start-up GET of the last one must not overwrite it) */
  #statusSeen = false
  #closing = false

  constructor (name: string, config: SessionConfig, options: ClusterSessionOptions) {
    this.name = name
    this.config = config
    this.#o = options
    this.#c = options.cluster
    this.log = new RedisStreamLog(this.#c.redis, name, config.bufferSize)
    this.callers = new SessionCallers({
      name, sse: options.sse, metrics: options.metrics, stats: this.stats, log: options.log, hub: this.hub,
      lastSeq: () => this.log.lastSeq,
      resume: async (lastEventId, patterns) => await this.#resume(lastEventId, patterns),
      joinedWhileDown: (caller) => { if (this.state !== 'connected') caller.send(this.#status('down', 'not connected'), undefined, false) },
      acquire: async (pattern, waitMs) => {
        await this.#c.interest.add(this.name, pattern).catch(() => {})
        const outcome = await this.#ensure(pattern, waitMs)
        return outcome.status === 'refused' ? outcome.error : null
      },
      release: (pattern) => { this.#c.interest.remove(this.name, pattern) }
    })
    this.log.follow((entry) => { this.#onEntry(entry) })
    this.log.onReset((previous) => { this.#announceGap('unknown-id', previous, { detail: 'the shared log lost its data (Redis restarted empty)' }) })
    this.log.onLoss((missed, previous) => { this.#announceGap('too-old', previous, { missed }) })
  }

  get state (): string { return this.#holder?.upstream.state ?? this.#remote.state }
  get callerCount (): number { return this.hub.size }
  get upstreamSubscriptionCount (): number { return this.#holder?.upstream.subs.size ?? 0 }
  get bufferedCount (): number { return this.log.tailSize }
  get lastError (): LastError | null { return this.#holder?.upstream.lastError ?? null }
  get isHolder (): boolean { return this.#holder !== null }
  /** the replica holding the lease as far as this one knows */
  get holderId (): string | null { return this.#holder !== null ? this.#c.redis.replicaId : this.#lease?.holder ?? null }
  get lease (): Lease | null { return this.#lease }
  get holder (): Holder | null { return this.#holder }

  /** Reads the stream, the upstream's last status, and competes for the lease. Never rejects. */
  async start (): Promise<void> {
    try {
      // the reader first, then the last status: a status appended in between is seen by one or the other (the
      // other way round it fell between the two and a follower stayed not ready until the next status)
      await this.#c.reader.add(this.log)
      const last = await this.#c.redis.send(['GET', this.log.keys.status]) as string | null
      // a status the reader delivered meanwhile is newer than what the GET may have answered
      if (last !== null && !this.#statusSeen) this.#remote = remoteState(this.#remote, parseStatus(last))
      this.#lease = await this.#c.leases.add(this.name, {
        acquired: () => { void this.#take() },
        lost: (reason) => { this.#drop(reason) }
      }, this.#o.log)
    } catch (err) {
      this.#o.log.error({ err }, 'cluster session not started (retried when Redis is back)')
      this.#c.retryStart(this)
    }
  }

  readiness (): { ready: true } | { ready: false, reason: string } {
    if (this.#closing) return { ready: false, reason: 'shutting down' }
    const redis = this.#c.redis.readiness()
    if (!redis.ready) return redis
    if (this.#holder !== null) return this.#holder.upstream.readiness()
    if (this.holderId === null) return { ready: false, reason: 'no replica holds the session yet' }
    if (this.#remote.state !== 'connected') return { ready: false, reason: `upstream ${this.#remote.state} at ${this.holderId}` }
    return { ready: true }
  }

  retryAfterSeconds (): number { return this.#holder?.upstream.retryAfterSeconds() ?? 1 }


  async publish (channel: string, data: unknown, timeoutMs: number): Promise<Message> {
    return await this.#timed('publish', async () => await this.#toHolder({ op: 'publish', session: this.name, channel, data, timeoutMs }, async (h) => await h.publish(channel, data, timeoutMs)) as Message)
  }

  async call (channel: string, data: unknown, timeoutMs: number): Promise<unknown> {
    return await this.#timed('call', async () => await this.#toHolder({ op: 'call', session: this.name, channel, data, timeoutMs }, async (h) => await h.call(channel, data, timeoutMs)))
  }

  /** A request another replica forwarded to this one as the holder. */
  async serve (request: BusRequest): Promise<unknown> {
    const holder = this.#holder
    if (holder === null || this.#closing) throw noHolder(this.name, `replica ${this.#c.redis.replicaId} does not hold it`)
    if (request.op === 'publish') return await holder.publish(request.channel, request.data, request.timeoutMs)
    if (request.op === 'call') return await holder.call(request.channel, request.data, request.timeoutMs)
    const outcome = await holder.ensure(request.channel)
    if (outcome.status === 'refused') throw outcome.error
    return outcome.status
  }

  /** The patterns the callers of all replicas want now (the holder subscribes to exactly those). */
  wanted (patterns: ReadonlySet<string>): void {
    this.#holder?.reconcile(patterns)
  }

  /** Redis came and went: callers hear of it in band. */
  redisState (state: string, reason: string): void {
    if (this.#closing) return
    this.hub.announce(sseFrame('upstream', { session: this.name, status: state === 'up' ? 'log-up' : 'log-down', state: this.state, reason: `shared log (Redis) ${state}: ${reason}`, replicaId: this.#c.redis.replicaId }))
  }

  shutdownCallers (): void {
    this.hub.shutdown(this.#o.sse.retryMs)
  }

  /** Callers end; the holder closes its upstream, then releases the lease at once for another replica. */
  /** Ends this replica's side of the session for good or for a restart (a reload): callers are told, then it closes. */
  async retire (status: 'removed' | 'restarting', reason: string, deadlineMs: number): Promise<void> {
    if (this.#closing) return
    this.hub.announce(this.#status(status, reason))
    await this.close(deadlineMs)
  }

  async close (deadlineMs: number): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    this.shutdownCallers()
    this.#c.reader.remove(this.log)
    const holder = this.#holder
    this.#holder = null
    await holder?.stop(Math.min(deadlineMs, 2_000))
    await this.#c.leases.remove(this.name)
  }

  view (): ClusterSessionView {
    return clusterView(this, this.#c, this.#remote, (p) => this.hub.callersOf(p), this.readiness())
  }

  async #take (): Promise<void> {
    const lease = this.#lease
    const value = lease?.value ?? null
    if (lease === null || value === null || this.#closing) return
    let wanted = new Set<string>()
    try {
      wanted = (await this.#c.interest.sweep()).get(this.name) ?? wanted
      const holder = await Holder.take({
        ...this.#o, stats: this.stats, redis: this.#c.redis, session: this.name, config: this.config, lease: value,
        fenced: (reason) => { lease.fenced(reason) }
      }, wanted, this.#remote.holder)
      if (lease.value !== value || this.#closing) {
        void holder.stop(1_000)
        return
      }
      this.#holder = holder
      watchUpstream(holder.upstream, this.#o.log)
      this.#c.metrics.leaseChanges.inc({ session: this.name, change: 'acquired' })
    } catch (err) {
      this.#o.log.warn({ err }, 'taking the session over failed: the lease is given up')
      if (lease.value === value) lease.giveUp('the takeover failed')
    }
  }

  #drop (reason: string): void {
    const holder = this.#holder
    this.#holder = null
    this.#c.metrics.leaseChanges.inc({ session: this.name, change: 'lost' })
    if (holder !== null) void holder.stop(this.#c.redis.config.leaseMs).catch(() => {})
    this.#o.log.warn({ reason }, 'no longer the holder of this session')
  }

  /** Where a caller's stream starts: a read of the shared log that ends where its live tail continues. */
  async #resume (lastEventId: string | null, patterns: string[]): Promise<ResumeStart | { error: HttpError }> {
    if (lastEventId === null || lastEventId === '') return { entries: [], gap: null, afterId: this.log.lastId }
    let read: ClusterRead
    try {
      read = await this.log.readFrom(lastEventId, (c) => patterns.some((p) => channelMatches(p, c)), patterns)
    } catch (err) {
      return { error: new HttpError(503, ErrorCode.UPSTREAM_UNAVAILABLE, `The shared log of session "${this.name}" cannot be read now; retry later`, { headers: { 'Retry-After': '1' }, cause: err }) }
    }
    const base = { lastEventId, firstAvailableId: read.firstAvailableId, currentId: read.currentId }
    let gap: Gap | null = null
    if (read.gone !== null) gap = { reason: read.gone.reason, ...base }
    else if (read.uncovered.length > 0) gap = { reason: 'not-subscribed', ...base, channels: read.uncovered }
    else if (read.mayHaveMissed) gap = { reason: 'rehandshake', ...base }
    return { entries: read.entries, gap, afterId: read.afterId }
  }

  async #ensure (pattern: string, waitMs: number): Promise<RemoteOutcome> {
    if (this.#holder !== null) return await this.#holder.ensure(pattern)
    const holder = this.holderId
    if (holder === null) return { status: 'pending' }
    try {
      return { status: await this.#c.bus.request(holder, { op: 'subscribe', session: this.name, channel: pattern, timeoutMs: waitMs }) as 'subscribed' | 'pending' }
    } catch (err) {
      const refusal = err instanceof HttpError && (err.code === ErrorCode.UPSTREAM_DENIED || err.code === ErrorCode.UPSTREAM_REJECTED)
      return refusal ? { status: 'refused', error: err } : { status: 'pending' }
    }
  }

  async #toHolder (request: BusRequest, local: (h: Holder) => Promise<unknown>): Promise<unknown> {
    if (this.#closing) throw new HttpError(503, ErrorCode.SHUTTING_DOWN, 'The bridge is shutting down', { headers: { 'Retry-After': '1' } })
    if (this.#holder !== null) return await local(this.#holder)
    const holder = this.holderId
    if (holder === null) throw noHolder(this.name, 'the lease is vacant')
    return await timed(this.#c.metrics.forwardDuration, { session: this.name, op: request.op }, async () => await this.#c.bus.request(holder, request))
  }

  #onEntry (entry: ClusterEntry): void {
    if (this.#closing) return
    if (entry.kind === 'm') {
      this.lastMessageAt = Date.now()
      this.stats.eventsIn++
      this.#o.metrics.eventsIn.inc({ session: this.name })
      this.callers.deliver(entry)
    } else if (entry.kind === 'u') {
      const status = parseStatus(entry.payload)
      if (entry.channel === '') {
        this.#remote = remoteState(this.#remote, status)
        this.#statusSeen = true
      }
      if (status.status === 'holder' && typeof status.holder === 'string' && typeof status.term === 'number') this.#lease?.observe(status.holder, status.term)
      this.hub.announce(entry.frame, entry.channel === '' ? undefined : entry.channel)
      if (status.status === 'holder' && status.mayHaveMissed === true) this.#announceGap('rehandshake', null, { holder: status.holder })
    }
  }

  #announceGap (reason: Gap['reason'], lastEventId: string | null, extra: Record<string, unknown>): void {
    if (this.#closing || this.hub.size === 0) return
    this.callers.countGap(reason)
    this.hub.announce(sseFrame('gap', { reason, lastEventId, firstAvailableId: null, currentId: this.log.lastId, ...extra }))
  }

  async #timed<T> (kind: 'publish' | 'call', fn: () => Promise<T>): Promise<T> {
    return await timed(kind === 'publish' ? this.#o.metrics.publishDuration : this.#o.metrics.callDuration, { session: this.name }, fn)
  }

  #status (status: string, reason: string): Frame {
    return sseFrame('upstream', { session: this.name, status, state: this.state, holder: this.holderId, reason, lastEventId: this.log.lastId })
  }
}
