/**
 * One bridge session: the façade that joins an upstream link (upstream/link.ts), an event log
 * (event-log/memory-log.ts) and a hub (hub/hub.ts). Upstream messages go into the log; the hub follows the log's
 * tail and fans each event out to the matching callers. Callers attach with their patterns and Last-Event-ID:
 * they get what they missed from the log (or a `gap`), then live events, and their patterns hold the upstream
 * subscriptions. Publish and call go to the link.
 */
import type { ServerResponse } from 'node:http'
import type { Message, StateChange } from '../../client-core/index.js'
import { isMeta } from '../channels.js'
import type { SessionConfig, SseConfig } from '../../config/index.js'
import { errorText, withDeadline } from '../deadline.js'
import type { HttpError } from '../errors.js'
import { DeepResumes } from '../event-log/deep-resumes.js'
import type { DeepTarget } from '../event-log/deep-resumes.js'
import type { LogEntry } from '../event-log/event-log.js'
import { MemoryEventLog } from '../event-log/memory-log.js'
import { planResume } from '../event-log/resume.js'
import type { Gap, ResumePlan } from '../event-log/resume.js'
import type { Frame } from '../frames.js'
import { Caller } from '../hub/caller.js'
import type { CloseReason } from '../hub/caller.js'
import { Hub } from '../hub/hub.js'
import type { CallerSink } from '../hub/sinks.js'
import { LazyChildLogger } from '../ops/lazy-log.js'
import type { SessionLogger } from '../ops/lazy-log.js'
import type { BridgeMetrics } from '../ops/metrics.js'
import { timed } from '../ops/timed.js'
import { sseFrame } from '../frames.js'
import { refusedSubscription } from '../upstream/errors.js'
import { UpstreamLink } from '../upstream/link.js'
import type { ClientFactory, LastError } from '../upstream/link.js'
import type { ReliableView } from '../upstream/reliability.js'
import { isLimitError } from '../upstream/reliability.js'
import type { Outcome } from '../upstream/subscriptions.js'
import { sessionView } from './view.js'
import { newSessionStats } from './view.js'
import type { SessionStats, SessionView } from './view.js'

export type { ClientFactory } from '../upstream/link.js'

export interface SessionOptions {
  sse: SseConfig
  metrics: BridgeMetrics
  /** the session's logger (a LazyChildLogger, created on the first line logged) */
  log: SessionLogger
  createClient?: ClientFactory
  /** replay checkpoints (config `dataDir`, `checkpointIntervalMs`) */
  dataDir: string
  checkpointIntervalMs: number
}

/** `afterId`: the stream continues after this id (what a caller already has), null = from the start */
export type AttachResult = { caller: Caller, afterId: string | null } | { error: HttpError } | { gone: true }

export class BridgeSession {
  readonly name: string
  readonly config: SessionConfig
  readonly link: UpstreamLink
  readonly log: MemoryEventLog
  readonly hub = new Hub()
  readonly stats: SessionStats = newSessionStats()

  lastMessageAt: number | null = null
  readonly #o: SessionOptions
  readonly #deep: DeepResumes | null
  /** one message delivered to several matching upstream subscriptions is logged once */
  readonly #seen = new WeakSet<object>()
  #closing = false
  /** callers were told the upstream is down (and are told when it is back) */
  #downAnnounced = false

  constructor (name: string, config: SessionConfig, options: SessionOptions) {
    this.name = name
    this.config = config
    this.#o = options
    this.link = new UpstreamLink(name, config, {
      message: (msg) => { this.#ingest(msg) },
      state: (e) => { this.#onState(e) },
      rehandshake: (_clientId, replayed) => {
        this.hub.announce(this.#status('rehandshake', 'session lost upstream', { mayHaveMissed: !replayed, ...(replayed ? { replay: true } : {}) }))
      },
      subscriptionLost: (pattern, error) => { this.hub.announceTo(pattern, this.#status('subscription-lost', errorText(error), { channel: pattern })) },
      report: (status, reason, extra, channel) => { if (!this.#closing) this.hub.announce(this.#status(status, reason, extra), channel) },
      currentSeq: () => this.log.lastSeq
    }, { ...options, stats: this.stats })
    const replay = this.link.reliable.replay
    this.log = new MemoryEventLog(config.bufferSize, { replay })
    this.log.follow((entry) => { this.#deliver(entry) })
    this.#deep = replay === null
      ? null
      : new DeepResumes({
        log: this.log,
        replay,
        hub: this.hub,
        url: config.url,
        opTimeoutMs: this.link.opTimeoutMs,
        newClient: (extension) => this.link.newClient('deep-resume', { extensions: [extension], ...(this.link.reliable.tokens !== null ? { auth: this.link.reliable.tokens.bearer() } : {}) }),
        onError: (err) => { if (isLimitError(err)) this.link.reliable.noteLimit(err, null) },
        sendGap: (caller, gap) => { this.#sendGap(caller, gap) },
        closing: () => this.#closing,
        logger: new LazyChildLogger(options.log, { component: 'deep-resume' })
      })
  }

  get state (): string { return this.link.state }
  get client (): UpstreamLink['client'] { return this.link.client }
  get reliable (): UpstreamLink['reliable'] { return this.link.reliable }
  get epoch (): string { return this.log.epoch }
  get seq (): number { return this.log.lastSeq }
  get lastId (): string | null { return this.log.lastId }
  get lastError (): LastError | null { return this.link.lastError }
  get callerCount (): number { return this.hub.size }
  get upstreamSubscriptionCount (): number { return this.link.subs.size }
  get bufferedCount (): number { return this.log.ring.size }

  /** Starts opening the upstream session; settles when the first attempt is over (never rejects). */
  start (): Promise<void> { return this.link.start() }

  readiness (): { ready: true } | { ready: false, reason: string } { return this.link.readiness() }

  retryAfterSeconds (): number { return this.link.retryAfterSeconds() }

  /**
   * Registers a streaming caller: plans the resume (gap + replay), registers it for live events, then waits (at
   * most `waitMs`) for its upstream subscriptions. A refused subscription → a JSON 4xx instead of the stream.
   * The caller is returned not started: the route hijacks the reply, then calls `caller.start()`.
   */
  async attach (res: ServerResponse | CallerSink, patterns: string[], lastEventId: string | null, waitMs: number): Promise<AttachResult> {
    const caller = new Caller(res, patterns, this.#o.sse, lastEventId, (c, reason) => { this.#detach(c, reason) })
    // replay sessions: a one-channel stream resumes from its upstream position (ring or deep resume)
    const base = this.#planResume(lastEventId, patterns)
    const { plan, deep } = this.#deep?.resolve(lastEventId, patterns, base) ?? { plan: base, deep: null as DeepTarget | null }
    this.#sendResume(caller, plan, plan.gap)
    caller.lastSeq = this.log.lastSeq
    this.hub.add(caller)
    for (const p of patterns) this.hub.route(caller, p)
    // registered now (no live delivery to it from here on), started once its subscription is not refused
    const runner = deep !== null ? this.#deep!.prepare(caller, deep, lastEventId ?? '') : null
    const pending = patterns.map((p) => this.link.acquire(p))
    if (!this.link.connected) {
      caller.send(this.#status('down', 'not connected'), undefined, false)
      this.#downAnnounced = true
    }
    const refusal = await this.#refusal(patterns, pending, waitMs)
    if (caller.closed) return { gone: true }
    if (refusal !== null) {
      caller.discard()
      return { error: refusal }
    }
    this.stats.callersTotal++
    this.#o.metrics.callersTotal.inc({ session: this.name })
    if (runner !== null) {
      runner.start()
      return { caller, afterId: lastEventId }
    }
    return { caller, afterId: plan.afterSeq === 0 ? null : this.log.idAt(plan.afterSeq) }
  }

  /**
   * WebSocket callers: adds `patterns` to a live caller — resume after `lastEventId` for them (gap + replay, as
   * attach does), registers them for live events, then waits (at most `waitMs`) for the upstream subscriptions.
   * A refused subscription removes the patterns again and answers the error.
   */
  async addPatterns (caller: Caller, patterns: string[], lastEventId: string | null, waitMs: number): Promise<{ afterId: string | null } | { error: HttpError } | { gone: true }> {
    const added = patterns.filter((p) => !caller.patterns.includes(p))
    const plan = this.#planResume(lastEventId, patterns)
    this.#sendResume(caller, plan, plan.gap === null ? null : { ...plan.gap, subscription: patterns })
    if (caller.lastSeq < this.log.lastSeq) caller.lastSeq = this.log.lastSeq
    for (const p of added) {
      caller.addPattern(p)
      this.hub.route(caller, p)
    }
    const refusal = await this.#refusal(added, added.map((p) => this.link.acquire(p)), waitMs)
    if (caller.closed) return { gone: true }
    if (refusal !== null) {
      this.removePatterns(caller, added)
      return { error: refusal }
    }
    return { afterId: plan.afterSeq === 0 ? null : this.log.idAt(plan.afterSeq) }
  }

  /** WebSocket callers: stops delivering `patterns` to a live caller and releases their upstream subscriptions. */
  removePatterns (caller: Caller, patterns: readonly string[]): void {
    for (const p of patterns) {
      if (!caller.removePattern(p)) continue
      this.hub.unroute(caller, p)
      this.link.release(p)
    }
  }

  /** Publishes upstream; the duration is observed for every caller kind (HTTP and WebSocket alike). */
  async publish (channel: string, data: unknown, timeoutMs: number): Promise<Message> {
    return await this.#timed('publish', () => this.link.publish(channel, data, timeoutMs))
  }

  async call (channel: string, data: unknown, timeoutMs: number): Promise<unknown> {
    return await this.#timed('call', () => this.link.call(channel, data, timeoutMs))
  }

  /** Sends `event: shutdown` to every caller and closes them. */
  shutdownCallers (): void {
    this.hub.shutdown(this.#o.sse.retryMs)
  }

  /** Stops retrying, ends the callers, and closes the client (sends /meta/disconnect) within `deadlineMs`. */
  async close (deadlineMs: number): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    this.link.beginClose()
    this.#deep?.stopAll()
    this.shutdownCallers()
    // the final checkpoint: positions cannot move any more (#ingest ignores messages while closing)
    await this.link.close(deadlineMs)
  }

  /**
   * Ends the session for good (`removed`) or for a restart (`restarting`): every caller gets an in-band `upstream`
   * event with that status (then `event: shutdown`), and the session closes upstream within `deadlineMs`.
   */
  async retire (status: 'removed' | 'restarting', reason: string, deadlineMs: number): Promise<void> {
    if (this.#closing) return
    this.hub.announce(this.#status(status, reason))
    await this.close(deadlineMs)
  }

  view (): SessionView & ReliableView {
    return { ...sessionView(this, this.link.subs.view(), (p) => this.hub.callersOf(p), this.readiness()), ...this.link.reliable.view() }
  }

  #ingest (msg: { channel: string, data?: unknown, ext?: unknown }): void {
    try {
      if (this.#closing || typeof msg !== 'object' || msg === null) return
      if (this.#seen.has(msg)) return
      this.#seen.add(msg)
      const channel = msg.channel
      if (typeof channel !== 'string' || isMeta(channel)) return
      const entry = this.log.append({ channel, data: msg.data, ext: msg.ext, replayId: this.link.reliable.replay?.positionOf(msg as Message) })
      if (entry === null) return
      this.lastMessageAt = Date.now()
      this.stats.eventsIn++
      this.#o.metrics.eventsIn.inc({ session: this.name })
    } catch (err) {
      this.#o.log.error({ err }, 'message fan-out failed')
    }
  }

  /** The log's tail: each new event to the hub. */
  #deliver (entry: LogEntry): void {
    const delivered = this.hub.deliver(entry)
    if (delivered === 0) return
    this.stats.eventsOut += delivered
    this.#o.metrics.eventsOut.inc({ session: this.name }, delivered)
  }

  #planResume (lastEventId: string | null, patterns: string[]): ResumePlan {
    return planResume({
      log: this.log,
      rehandshakeSeq: this.link.rehandshakeSeq,
      coveredSince: (p, s) => this.link.subs.coveredSince(p, s)
    }, lastEventId, patterns)
  }

  /** The `gap` (when there is one) and the logged entries of a resume plan, queued for the caller. */
  #sendResume (caller: Caller, plan: ResumePlan, gap: object | null): void {
    if (plan.gap !== null) this.#sendGap(caller, plan.gap, gap ?? plan.gap)
    for (const entry of plan.replay) caller.send(entry.frame, entry.id, false)
  }

  #sendGap (caller: Caller, gap: Gap, shown: object = gap): void {
    this.stats.gaps++
    this.#o.metrics.gaps.inc({ session: this.name, reason: gap.reason })
    caller.send(sseFrame('gap', shown), undefined, false)
  }

  /**
   * Waits (at most `waitMs`; a subscription still pending then is no refusal) for the upstream subscriptions of
   * `patterns`, and maps the first refusal to the caller's HTTP error (null when none was refused).
   */
  async #refusal (patterns: string[], pending: Array<Promise<Outcome>>, waitMs: number): Promise<HttpError | null> {
    const outcomes = await Promise.all(pending.map(async (p) => {
      try {
        return await withDeadline(p, waitMs, 'subscription')
      } catch {
        return { status: 'pending' as const }
      }
    }))
    const refused = outcomes.findIndex((o) => o.status === 'refused')
    if (refused < 0) return null
    return refusedSubscription((outcomes[refused] as { error?: unknown }).error, this.name, patterns[refused] ?? '', this.retryAfterSeconds())
  }

  #detach (caller: Caller, reason: CloseReason): void {
    if (!this.hub.remove(caller)) return
    this.#deep?.stop(caller)
    for (const p of caller.patterns) this.link.release(p)
    this.#o.log.info({ caller: caller.id, reason, lastEventId: caller.lastWrittenId, durationMs: Date.now() - caller.createdAt }, 'stream closed')
    if (reason === 'slow') {
      this.stats.slowDrops++
      this.#o.metrics.slowDrops.inc({ session: this.name, reason: caller.slowReason ?? 'unknown' })
      this.#o.log.warn({ caller: caller.id, reason: caller.slowReason, lastEventId: caller.lastWrittenId, maxQueuedBytes: caller.maxQueuedBytes }, 'slow caller dropped')
    }
  }

  /** Callers hear of the upstream going down once, and of it coming back once. */
  #onState (e: StateChange): void {
    if (e.to === 'connected') {
      if (this.#downAnnounced) {
        this.#downAnnounced = false
        this.hub.announce(this.#status('up', e.reason))
      }
      return
    }
    if (e.from === 'connected' && !this.#closing && !this.#downAnnounced) {
      this.#downAnnounced = true
      this.hub.announce(this.#status('down', e.reason, e.error !== undefined ? { error: errorText(e.error) } : {}))
    }
  }

  async #timed<T> (kind: 'publish' | 'call', fn: () => Promise<T>): Promise<T> {
    return await timed(kind === 'publish' ? this.#o.metrics.publishDuration : this.#o.metrics.callDuration, { session: this.name }, fn)
  }

  /** An in-band `upstream` event: the session, its state, why, and the last id so far. */
  #status (status: string, reason: string, extra: Record<string, unknown> = {}): Frame {
    return sseFrame('upstream', { session: this.name, status, state: this.link.state, reason, lastEventId: this.lastId, ...extra })
  }
}
