/**
 * One bridge session: the façade that joins an upstream link (upstream/link.ts), an event log
 * (event-log/memory-log.ts) and a hub (hub/hub.ts). Upstream messages go into the log; the hub follows the log's
 * tail and fans each event out to the matching callers. Callers attach with their patterns and Last-Event-ID:
 * they get what they missed from the log (or a `gap`), then live events, and their patterns hold the upstream
 * subscriptions. Publish and call go to the link.
 */
import type { Message, StateChange } from '../../client-core/index.js'
import { isMeta } from '../channels.js'
import type { SessionConfig, SseConfig } from '../../config/index.js'
import { errorText } from '../deadline.js'
import { DeepResumes } from '../event-log/deep-resumes.js'
import { MemoryEventLog } from '../event-log/memory-log.js'
import { planResume } from '../event-log/resume.js'
import type { ResumePlan } from '../event-log/resume.js'
import type { Frame } from '../frames.js'
import { Hub } from '../hub/hub.js'
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
import { SessionCallers } from './callers.js'
import type { ResumeStart } from './callers.js'
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

export class BridgeSession {
  readonly name: string
  readonly config: SessionConfig
  readonly link: UpstreamLink
  readonly log: MemoryEventLog
  readonly hub = new Hub()
  readonly stats: SessionStats = newSessionStats()
  /** its callers: attach, patterns added and removed, resume, delivery (session/callers.ts) */
  readonly callers: SessionCallers

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
    this.callers = new SessionCallers({
      name, sse: options.sse, metrics: options.metrics, stats: this.stats, log: options.log, hub: this.hub,
      lastSeq: () => this.log.lastSeq,
      resume: (lastEventId, patterns, deep) => this.#resume(lastEventId, patterns, deep),
      joinedWhileDown: (caller) => {
        if (this.link.connected) return
        caller.send(this.#status('down', 'not connected'), undefined, false)
        this.#downAnnounced = true
      },
      acquire: async (pattern) => {
        const outcome = await this.link.acquire(pattern)
        return outcome.status === 'refused' ? refusedSubscription(outcome.error, name, pattern, this.retryAfterSeconds()) : null
      },
      release: (pattern) => { this.link.release(pattern) },
      left: (caller) => { this.#deep?.stop(caller) }
    })
    this.log.follow((entry) => { this.callers.deliver(entry) })
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
        sendGap: (caller, gap) => { this.callers.sendGap(caller, gap) },
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

  #planResume (lastEventId: string | null, patterns: string[]): ResumePlan {
    return planResume({
      log: this.log,
      rehandshakeSeq: this.link.rehandshakeSeq,
      coveredSince: (p, s) => this.link.subs.coveredSince(p, s)
    }, lastEventId, patterns)
  }

  /**
   * Where a caller's stream starts: the memory log's plan, synchronously. A one-channel stream of a replay session
   * may resume from its upstream position (the ring, or a deep resume prepared once the caller is routed).
   */
  #resume (lastEventId: string | null, patterns: string[], deep: boolean): ResumeStart {
    const base = this.#planResume(lastEventId, patterns)
    const resolved = deep ? this.#deep?.resolve(lastEventId, patterns, base) : undefined
    const plan = resolved?.plan ?? base
    const target = resolved?.deep ?? null
    const start: ResumeStart = { gap: plan.gap, entries: plan.replay, afterId: plan.afterSeq === 0 ? null : this.log.idAt(plan.afterSeq) }
    if (target === null) return start
    return { ...start, afterId: lastEventId, routed: (caller) => this.#deep!.prepare(caller, target, lastEventId ?? '') }
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
