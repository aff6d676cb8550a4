/**
 * One configured upstream session: a client-core Client opened at start-up (retried with backoff until it
 * works, then kept alive by the client itself), its ref-counted upstream subscriptions, the resume ring, and
 * the fan-out of every upstream message to the matching SSE callers. Each message is serialized once.
 */
import { randomBytes } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import { Client, ServerError, originOutcome } from '../../client-core/index.js'
import type { ClientOptions, HandshakeEvent, Message, StateChange } from '../../client-core/index.js'
import { Caller } from '../hub/caller.js'
import type { CloseReason } from '../hub/caller.js'
import type { Frame } from '../frames.js'
import type { CallerSink } from '../hub/sinks.js'
import { ChannelRouter, channelMatches, isMeta } from '../channels.js'
import type { SessionConfig, SseConfig } from '../config-types.js'
import { ErrorCode, HttpError } from '../errors.js'
import type { BridgeMetrics } from '../ops/metrics.js'
import { formatId, planResume } from '../event-log/resume.js'
import { Ring } from '../event-log/ring.js'
import type { RingEntry } from '../event-log/ring.js'
import { messageFrame, sseFrame } from '../sse.js'
import { mapUpstreamError, unavailable } from '../upstream/errors.js'
import { DeadlineError, UpstreamSubscriptions, errorText, withDeadline } from '../upstream/subscriptions.js'
import type { Listener } from '../upstream/subscriptions.js'
import { LazyChildLogger } from '../ops/lazy-log.js'
import type { SessionLogger } from '../ops/lazy-log.js'
import { sessionView } from './view.js'
import type { LastError, SessionStats, SessionView } from './view.js'
import { DeepResume } from '../event-log/deep-resume.js'
import type { DeepOutcome } from '../event-log/deep-resume.js'
import type { Gap, ResumePlan } from '../event-log/resume.js'
import { isLimitError, SessionReliability } from '../upstream/reliability.js'
import type { ReliableView } from '../upstream/reliability.js'
import { positionKey } from '../event-log/replay.js'
import type { ReplayExtension } from '../../client-core/index.js'
import { originGates } from '../upstream/origin-gates.js'

export type ClientFactory = (url: string, options: ClientOptions) => Client

export interface SessionOptions {
  sse: SseConfig
  metrics: BridgeMetrics
  /** the session's logger (app.ts: a LazyChildLogger, created on the first line logged) */
  log: SessionLogger
  createClient?: ClientFactory
  /** issue 6: replay checkpoints (config `dataDir`, `checkpointIntervalMs`) */
  dataDir?: string | undefined
  checkpointIntervalMs?: number | undefined
}

/** `afterId`: the stream continues after this id (what a caller already has), null = from the start */
export type AttachResult = { caller: Caller, afterId: string | null } | { error: HttpError } | { gone: true }

const OPEN_RETRY_MIN_MS = 500
const OPEN_RETRY_MAX_MS = 30_000

export class BridgeSession {
  readonly name: string
  readonly config: SessionConfig
  /** changes on every start: ids of an earlier run are unknown */
  readonly epoch = Date.now().toString(36) + randomBytes(3).toString('hex')
  readonly ring: Ring
  readonly client: Client
  readonly stats: SessionStats = {
    eventsIn: 0, eventsOut: 0, callersTotal: 0, slowDrops: 0, gaps: 0, handshakes: 0, rehandshakes: 0,
    reconnects: 0, publishes: 0, publishFailures: 0, calls: 0, callFailures: 0
  }

  lastError: LastError | null = null
  lastMessageAt: number | null = null
  readonly #o: SessionOptions
  readonly #subs: UpstreamSubscriptions
  readonly #callers = new Set<Caller>()
  /** callers by the pattern they asked for; match() answers a channel without building its pattern list */
  readonly #byPattern = new ChannelRouter<Set<Caller>>()
  readonly #seen = new WeakSet<object>()
  #seq = 0
  #rehandshakeSeq: number | null = null
  #closing = false
  #opening = false
  #openAttempt = 0
  #openTimer: NodeJS.Timeout | null = null
  #nextOpenAt: number | null = null
  #downAnnounced = false
  #everConnected = false
  /** issue 6: ack, replay + checkpoints, upstream token, limit reports (reliable.ts) */
  readonly reliable: SessionReliability
  /** callers catching up through a deep resume: no live fan-out until they join */
  readonly #deep = new Map<Caller, DeepResume>()
  /** after a deep resume that ended without meeting the ring: replayIds the caller already got */
  readonly #skipLive = new Map<Caller, Set<string>>()
  #lastMessageId: string | null = null

  constructor (name: string, config: SessionConfig, options: SessionOptions) {
    this.name = name
    this.config = config
    this.#o = options
    this.ring = new Ring(config.bufferSize)
    const log = options.log
    this.reliable = new SessionReliability(name, config, {
      dataDir: options.dataDir,
      checkpointIntervalMs: options.checkpointIntervalMs,
      log: new LazyChildLogger(log, { component: 'reliable' }),
      currentSeq: () => this.#seq,
      report: (status, reason, extra, channel) => { this.#reportUpstream(status, reason, extra, channel) }
    })
    this.client = this.#newClient('client', this.reliable.clientOptions())
    this.#subs = new UpstreamSubscriptions({
      listener: this.#onMessage,
      lingerMs: config.unsubscribeLingerMs,
      opTimeoutMs: config.maxNetworkDelayMs + config.connectionTimeoutMs,
      currentSeq: () => this.#seq,
      isRefusal: (err) => err instanceof ServerError,
      log,
      onLost: (pattern, error) => { this.#announceLost(pattern, error) }
    })
    for (const pattern of config.subscribe) this.#subs.hold(pattern)
    this.client.on('state', (e: StateChange) => { this.reliable.noteState(e); this.#onState(e) })
    this.client.on('handshake', (e: HandshakeEvent) => { this.#onHandshake(e) })
    this.client.on('resubscribeFailed', (e: { channel: string, error: unknown }) => { this.#subs.lost(e.channel, e.error) })
    this.client.on('transportError', (err: unknown) => {
      this.#setError(err)
      log.debug({ err }, 'upstream transport error')
    })
  }

  get state (): string { return this.client.state }
  get seq (): number { return this.#seq }
  get callerCount (): number { return this.#callers.size }
  get upstreamSubscriptionCount (): number { return this.#subs.size }
  get bufferedCount (): number { return this.ring.size }
  get lastId (): string | null { return this.#seq === 0 ? null : this.#lastMessageId ?? formatId(this.epoch, this.#seq) }

  /**
   * Starts opening the upstream session (retried with backoff until it works). The promise settles when the
   * first attempt is over: open and the held subscriptions answered, or the open failed (retries go on in the
   * background). It never rejects; the bridge uses it to open many sessions a few at a time (app.ts).
   */
  start (): Promise<void> {
    return this.#tryOpen()
  }

  /** Ready = connected and every permanent subscription confirmed. */
  readiness (): { ready: true } | { ready: false, reason: string } {
    if (this.#closing) return { ready: false, reason: 'shutting down' }
    if (this.client.state !== 'connected') return { ready: false, reason: `upstream ${this.client.state}` }
    const missing = this.#subs.unconfirmedPermanent()
    if (missing.length > 0) return { ready: false, reason: `subscriptions not confirmed: ${missing.join(', ')}` }
    return { ready: true }
  }

  /** Seconds a caller should wait before retrying a request refused because the upstream is down. */
  retryAfterSeconds (): number {
    if (this.#nextOpenAt === null) return 1
    return Math.min(60, Math.max(1, Math.ceil((this.#nextOpenAt - Date.now()) / 1000)))
  }

  /**
   * Registers an SSE caller: plans the resume (gap + replay), registers it for live messages, then waits (at
   * most `waitMs`) for its upstream subscriptions. A refused subscription → a JSON 4xx instead of the stream.
   * The caller is returned not started: the route hijacks the reply, then calls `caller.start()`.
   */
  async attach (res: ServerResponse | CallerSink, patterns: string[], lastEventId: string | null, waitMs: number): Promise<AttachResult> {
    const caller = new Caller(res, patterns, this.#o.sse, lastEventId, (c, reason) => { this.#detach(c, reason) })
    // replay sessions (issue 6): a one-channel stream resumes from its upstream position (ring or deep resume)
    const { plan, deep } = this.#resolveReplay(lastEventId, patterns, this.#planResume(lastEventId, patterns))
    this.#sendResume(caller, plan, plan.gap)
    caller.lastSeq = this.#seq
    this.#callers.add(caller)
    for (const p of patterns) this.#route(caller, p)
    // registered now (no live fan-out to it from here on), started once its subscription is not refused
    const runner = deep !== null ? this.#deepResume(caller, deep, lastEventId ?? '') : null
    const pending = patterns.map((p) => this.#subs.acquire(p))
    if (this.client.state !== 'connected') {
      caller.send(sseFrame('upstream', this.#upstreamData('down', 'not connected')), undefined, false)
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
    return { caller, afterId: plan.afterSeq === 0 ? null : this.#idAt(plan.afterSeq) }
  }

  async publish (channel: string, data: unknown, timeoutMs: number): Promise<Message> {
    if (this.#closing || this.client.state !== 'connected') {
      throw unavailable(this.name, `upstream ${this.client.state}`, this.retryAfterSeconds())
    }
    try {
      const reply = await withDeadline(this.client.publish(channel, data), timeoutMs, 'publish')
      this.stats.publishes++
      return reply
    } catch (err) {
      this.stats.publishFailures++
      throw mapUpstreamError(err, this.name, 'publish', this.retryAfterSeconds())
    }
  }

  async call (channel: string, data: unknown, timeoutMs: number): Promise<unknown> {
    if (this.#closing || this.client.state !== 'connected') {
      throw unavailable(this.name, `upstream ${this.client.state}`, this.retryAfterSeconds())
    }
    try {
      // client-core has its own timeout; ours is a backstop a little later
      const data2 = await withDeadline(this.client.remoteCall(channel, data, { timeoutMs }), timeoutMs + 1_000, 'call')
      this.stats.calls++
      return data2
    } catch (err) {
      this.stats.callFailures++
      throw mapUpstreamError(err, this.name, 'call', this.retryAfterSeconds())
    }
  }

  /** Sends `event: shutdown` to every caller and closes them. */
  shutdownCallers (): void {
    for (const caller of [...this.#callers]) {
      const retry = this.#o.sse.retryMs
      caller.shutdown(retry + Math.round(Math.random() * retry))
    }
  }

  /** Stops retrying, ends the callers, and closes the client (sends /meta/disconnect) within `deadlineMs`. */
  async close (deadlineMs: number): Promise<void> {
    if (this.#closing) return
    this.#closing = true
    if (this.#openTimer !== null) clearTimeout(this.#openTimer)
    this.#openTimer = null
    this.#subs.close()
    for (const runner of this.#deep.values()) runner.stop()
    this.#deep.clear()
    this.shutdownCallers()
    // the final checkpoint: positions cannot move any more (#onMessage ignores messages while closing)
    await withDeadline(this.reliable.close(), deadlineMs, 'checkpoint').catch((err: unknown) => {
      this.#o.log.error({ err }, 'final replay checkpoint not written')
    })
    try {
      await withDeadline(this.client.close(), deadlineMs, 'close')
      this.#o.log.info('upstream session closed')
    } catch (err) {
      this.#o.log.warn({ err }, 'upstream close did not complete')
    }
  }

  /**
   * WebSocket callers (issue 7): adds `patterns` to a live caller — resume after `lastEventId` for them (gap +
   * replay, as attach does), registers them for live messages, then waits (at most `waitMs`) for the upstream
   * subscriptions. A refused subscription removes the patterns again and answers the error.
   */
  async addPatterns (caller: Caller, patterns: string[], lastEventId: string | null, waitMs: number): Promise<{ afterId: string | null } | { error: HttpError } | { gone: true }> {
    const added = patterns.filter((p) => !caller.patterns.includes(p))
    const plan = this.#planResume(lastEventId, patterns)
    this.#sendResume(caller, plan, plan.gap === null ? null : { ...plan.gap, subscription: patterns })
    if (caller.lastSeq < this.#seq) caller.lastSeq = this.#seq
    for (const p of added) {
      caller.addPattern(p)
      this.#route(caller, p)
    }
    const refusal = await this.#refusal(added, added.map((p) => this.#subs.acquire(p)), waitMs)
    if (caller.closed) return { gone: true }
    if (refusal !== null) {
      this.removePatterns(caller, added)
      return { error: refusal }
    }
    return { afterId: plan.afterSeq === 0 ? null : this.#idAt(plan.afterSeq) }
  }

  /** WebSocket callers: stops delivering `patterns` to a live caller and releases their upstream subscriptions. */
  removePatterns (caller: Caller, patterns: readonly string[]): void {
    for (const p of patterns) {
      if (caller.removePattern(p)) this.#unroute(caller, p)
    }
  }

  view (): SessionView & ReliableView {
    return { ...sessionView(this, this.#subs.view(), (p) => this.#byPattern.get(p)?.size ?? 0, this.readiness()), ...this.reliable.view() }
  }

  readonly #onMessage: Listener = (msg) => {
    try {
      if (this.#closing || typeof msg !== 'object' || msg === null) return
      // one message delivered to several matching subscriptions is ingested once
      if (this.#seen.has(msg)) return
      this.#seen.add(msg)
      const channel = msg.channel
      if (typeof channel !== 'string' || isMeta(channel)) return
      const seq = this.#seq + 1
      const replay = this.reliable.replay
      const position = replay?.positionOf(msg as Message)
      // replay sessions: an event the ring already holds (a fallback to -2, an overlapping replay) is not taken twice
      if (replay !== null && position !== undefined && replay.isDuplicate(channel, position)) return
      const id = replay !== null ? replay.messageId(this.epoch, seq, channel, position) : formatId(this.epoch, seq)
      const frame = messageFrame(id, channel, msg.data, msg.ext)
      this.#seq = seq
      this.#lastMessageId = id
      this.lastMessageAt = Date.now()
      const entry: RingEntry = { seq, channel, frame }
      if (position !== undefined) { entry.id = id; entry.replayId = position }
      const evicted = this.ring.push(entry)
      // the position is checkpointed only now that the message is in the ring
      replay?.pushed(entry, evicted)
      this.stats.eventsIn++
      this.#o.metrics.eventsIn.inc({ session: this.name })
      let delivered = 0
      const deep = this.#deep.size > 0
      const skipLive = this.#skipLive.size > 0
      for (const set of this.#byPattern.match(channel)) {
        for (const caller of set) {
          if (caller.lastSeq >= seq) continue
          if (deep && this.#deep.has(caller)) continue // catching up: it gets this from the ring when it joins
          caller.lastSeq = seq
          if (skipLive && this.#alreadySent(caller, position)) continue
          caller.send(frame, id)
          delivered++
        }
      }
      if (delivered > 0) {
        this.stats.eventsOut += delivered
        this.#o.metrics.eventsOut.inc({ session: this.name }, delivered)
      }
    } catch (err) {
      this.#o.log.error({ err }, 'message fan-out failed')
    }
  }

  #planResume (lastEventId: string | null, patterns: string[]): ResumePlan {
    return planResume({
      epoch: this.epoch,
      seq: this.#seq,
      ring: this.ring,
      rehandshakeSeq: this.#rehandshakeSeq,
      coveredSince: (p, s) => this.#subs.coveredSince(p, s)
    }, lastEventId, patterns)
  }

  /** The `gap` (when there is one) and the ring entries of a resume plan, queued for the caller. */
  #sendResume (caller: Caller, plan: ResumePlan, gap: object | null): void {
    if (plan.gap !== null) {
      this.stats.gaps++
      this.#o.metrics.gaps.inc({ session: this.name, reason: plan.gap.reason })
      caller.send(sseFrame('gap', gap), undefined, false)
    }
    for (const entry of plan.replay) caller.send(entry.frame, entry.id ?? formatId(this.epoch, entry.seq), false)
  }

  /** Live messages matching `pattern` go to the caller from now on. */
  #route (caller: Caller, pattern: string): void {
    let set = this.#byPattern.get(pattern)
    if (set === undefined) this.#byPattern.set(pattern, set = new Set())
    set.add(caller)
  }

  /** The reverse of #route, and the upstream subscription is released. */
  #unroute (caller: Caller, pattern: string): void {
    const set = this.#byPattern.get(pattern)
    set?.delete(caller)
    if (set?.size === 0) this.#byPattern.delete(pattern)
    this.#subs.release(pattern)
  }

  /**
   * Waits (at most `waitMs`; a subscription still pending then is no refusal) for the upstream subscriptions of
   * `patterns`, and maps the first refusal to the caller's HTTP error (null when none was refused).
   */
  async #refusal (patterns: string[], pending: Array<Promise<{ status: string, error?: unknown }>>, waitMs: number): Promise<HttpError | null> {
    const outcomes = await Promise.all(pending.map(async (p) => {
      try {
        return await withDeadline(p, waitMs, 'subscription')
      } catch {
        return { status: 'pending' as const }
      }
    }))
    const refused = outcomes.findIndex((o) => o.status === 'refused')
    if (refused < 0) return null
    const mapped = mapUpstreamError((outcomes[refused] as { error?: unknown }).error, this.name, 'publish', this.retryAfterSeconds())
    const status = mapped.statusCode === 403 ? 403 : mapped.statusCode >= 500 ? 502 : mapped.statusCode
    return new HttpError(status, status === 403 ? ErrorCode.UPSTREAM_DENIED : ErrorCode.UPSTREAM_REJECTED,
      `The upstream server refused the subscription to ${patterns[refused] ?? ''}`, { details: mapped.details })
  }

  #detach (caller: Caller, reason: CloseReason): void {
    if (!this.#callers.delete(caller)) return
    const runner = this.#deep.get(caller)
    if (runner !== undefined) {
      this.#deep.delete(caller)
      runner.stop()
      this.#deepFinished(runner, 'stopped')
    }
    this.#skipLive.delete(caller)
    for (const p of caller.patterns) this.#unroute(caller, p)
    this.#o.log.info({ caller: caller.id, reason, lastEventId: caller.lastWrittenId, durationMs: Date.now() - caller.createdAt }, 'stream closed')
    if (reason === 'slow') {
      this.stats.slowDrops++
      this.#o.metrics.slowDrops.inc({ session: this.name, reason: caller.slowReason ?? 'unknown' })
      this.#o.log.warn({ caller: caller.id, reason: caller.slowReason, lastEventId: caller.lastWrittenId, maxQueuedBytes: caller.maxQueuedBytes }, 'slow caller dropped')
    }
  }

  async #tryOpen (): Promise<void> {
    this.#openTimer = null
    if (this.#closing || this.#opening) return
    // open() only from 'disconnected': otherwise an earlier attempt is still going, or the client is up
    if (this.client.state !== 'disconnected') return
    this.#opening = true
    const budget = 2 * (this.config.connectionTimeoutMs + this.config.maxNetworkDelayMs)
    let subscribed: Promise<void> | null = null
    try {
      await withDeadline(this.client.open(), budget, 'open')
      this.#openAttempt = 0
      this.#nextOpenAt = null
      this.reliable.opened()
      this.#o.log.info({ clientId: this.client.clientId, connectionType: this.client.connectionType }, 'upstream session open')
      if (!this.#closing) subscribed = this.#subs.usable(this.client)
    } catch (err) {
      this.#setError(err)
      if (this.#closing) return
      // our deadline passed while the client still tries: stop that attempt before the next one
      if (err instanceof DeadlineError) await withDeadline(this.client.close(), this.config.maxNetworkDelayMs, 'close').catch(() => {})
      const cap = Math.min(OPEN_RETRY_MAX_MS, OPEN_RETRY_MIN_MS * 2 ** Math.min(this.#openAttempt, 10))
      // a refusing origin is paced by its connect gate: wait in its queue, to go as soon as a probe is answered
      let delay = originOutcome(err) === 'refused' ? OPEN_RETRY_MIN_MS : Math.round(cap / 2 + Math.random() * cap / 2)
      // a limit error (Salesforce concurrent clients, daily limits): wait long, never hammer the org
      if (isLimitError(err)) {
        delay = Math.max(delay, this.reliable.limitOpenDelay())
        this.reliable.noteLimit(err, delay)
      }
      this.#openAttempt++
      this.#o.log.warn({ err, attempt: this.#openAttempt, retryInMs: delay }, 'upstream open failed')
      this.#scheduleOpen(delay)
    } finally {
      this.#opening = false
    }
    if (subscribed !== null) await subscribed
  }

  #scheduleOpen (delay: number): void {
    if (this.#closing || this.#openTimer !== null) return
    this.#nextOpenAt = Date.now() + delay
    this.#openTimer = setTimeout(() => { void this.#tryOpen() }, delay)
    this.#openTimer.unref()
  }

  #onState (e: StateChange): void {
    if (e.error !== undefined) this.#setError(e.error)
    this.#o.log.info({ from: e.from, to: e.to, reason: e.reason, delayMs: e.delayMs }, 'upstream state')
    if (e.to === 'reconnecting' && typeof e.delayMs === 'number') this.#nextOpenAt = Date.now() + e.delayMs
    if (e.to === 'connected') {
      this.#nextOpenAt = null
      if (this.#everConnected && e.from !== 'connected') {
        this.stats.reconnects++
        this.#o.metrics.reconnects.inc({ session: this.name })
      }
      this.#everConnected = true
      if (this.#downAnnounced) {
        this.#downAnnounced = false
        this.#broadcast(sseFrame('upstream', this.#upstreamData('up', e.reason)))
      }
      // during open() the client is not yet usable: #tryOpen() hands it over when open() resolves
      if (!this.#closing && !this.client.closed) this.#subs.usable(this.client)
      return
    }
    if (e.from === 'connected' && !this.#closing && !this.#downAnnounced) {
      this.#downAnnounced = true
      this.#broadcast(sseFrame('upstream', this.#upstreamData('down', e.reason, e.error)))
    }
    if (e.to === 'disconnected' && !this.#closing && !this.#opening) {
      // the client gave up by itself (e.g. advice reconnect:none): open again, with backoff
      this.#subs.unusable()
      const delay = OPEN_RETRY_MIN_MS + Math.round(Math.random() * OPEN_RETRY_MIN_MS)
      this.#scheduleOpen(delay)
    }
  }

  #onHandshake (e: HandshakeEvent): void {
    this.stats.handshakes++
    this.#o.metrics.handshakes.inc({ session: this.name, kind: e.rehandshake ? 'rehandshake' : 'first' })
    if (!e.rehandshake) return
    this.stats.rehandshakes++
    this.#rehandshakeSeq = this.#seq
    // replay sessions resubscribe from their last positions: exact channels miss nothing the upstream retains
    const replayed = this.reliable.replay !== null && this.#subs.view().every((v) => !/\/\*{1,2}$/.test(v.channel))
    this.#o.log.warn({ clientId: e.clientId, replay: replayed }, replayed ? 'upstream re-handshake: resubscribing from the replay positions' : 'upstream re-handshake: messages may have been missed')
    this.#broadcast(sseFrame('upstream', { ...this.#upstreamData('rehandshake', 'session lost upstream'), mayHaveMissed: !replayed, ...(replayed ? { replay: true } : {}) }))
  }

  /** A client of this session's upstream with the session's options (the session's own, and deep resumes). */
  #newClient (component: string, extra: Partial<ClientOptions>): Client {
    const config = this.config
    const clientOptions: ClientOptions = {
      connectionTypes: config.connectionTypes,
      connectionTimeoutMs: config.connectionTimeoutMs,
      maxNetworkDelayMs: config.maxNetworkDelayMs,
      headers: { ...config.headers },
      logger: new LazyChildLogger(this.#o.log, { component }),
      connectGate: originGates.gateFor(config.url, config),
      ...extra
    }
    if (config.tls !== undefined && config.tls !== null) clientOptions.tls = config.tls as ClientOptions['tls']
    if (config.maxBatchBytes !== undefined) clientOptions.maxBatchBytes = config.maxBatchBytes
    return (this.#o.createClient ?? ((url, opts) => new Client(url, opts)))(config.url, clientOptions)
  }

  /** The id of a ring entry (with its replay suffix), or `<epoch>-<seq>` when it is gone. */
  #idAt (seq: number): string {
    const entry = this.ring.since(seq - 1, (e) => e.seq === seq)[0]
    return entry !== undefined && entry.seq === seq && entry.id !== undefined ? entry.id : formatId(this.epoch, seq)
  }

  #resolveReplay (lastEventId: string | null, patterns: string[], base: ResumePlan): { plan: ResumePlan, deep: { channel: string, position: number | string, anchorSeq: number } | null } {
    const replay = this.reliable.replay
    if (replay === null) return { plan: base, deep: null }
    const d = replay.resolve(lastEventId, patterns, base, { epoch: this.epoch, seq: this.#seq, ring: this.ring })
    if (d === null) return { plan: base, deep: null }
    if (d.kind === 'ring') {
      return { plan: { replay: replay.ringEntries(this.ring, d.channel, d.afterSeq), gap: d.gap, afterSeq: d.afterSeq }, deep: null }
    }
    if (this.#closing || this.#deep.size >= replay.config.deepResumeMaxClients) {
      replay.deepStats.busy++
      const gap = base.gap === null ? null : { ...base.gap, deepResume: 'busy' } as Gap
      return { plan: { ...base, gap }, deep: null }
    }
    return { plan: { replay: [], gap: null, afterSeq: d.anchorSeq }, deep: d }
  }

  #deepResume (caller: Caller, d: { channel: string, position: number | string, anchorSeq: number }, lastEventId: string): DeepResume {
    const replay = this.reliable.replay!
    const self = this
    const runner = new DeepResume({
      epoch: this.epoch,
      url: this.config.url,
      get seq () { return self.#seq },
      seqOf: (c, p) => replay.seqOf(c, p),
      covers: (c, s) => replay.covers(c, s),
      createClient: (extension: ReplayExtension) => this.#newClient('deep-resume', { extensions: [extension], ...(this.reliable.tokens !== null ? { auth: this.reliable.tokens.bearer() } : {}) }),
      join: (c, channel, afterSeq, skip, gap, outcome) => { this.#join(c, channel, afterSeq, skip, gap, outcome) },
      onError: (err) => { if (isLimitError(err)) this.reliable.noteLimit(err, null) },
      log: new LazyChildLogger(this.#o.log, { component: 'deep-resume' }),
      opTimeoutMs: this.config.maxNetworkDelayMs + this.config.connectionTimeoutMs
    }, caller, { channel: d.channel, position: d.position, anchorSeq: d.anchorSeq, lastEventId, timeoutMs: replay.config.deepResumeTimeoutMs })
    this.#deep.set(caller, runner)
    replay.deepStats.started++
    replay.deepStats.active = this.#deep.size
    return runner
  }

  /** The end of a deep resume: the caller gets the ring from `afterSeq` on (what it already got skipped), then live. */
  #join (caller: Caller, channel: string, afterSeq: number, skip: Set<string>, gap: Gap | null, outcome: DeepOutcome): void {
    const runner = this.#deep.get(caller)
    if (runner === undefined) return
    this.#deep.delete(caller)
    this.#deepFinished(runner, outcome)
    if (caller.closed || this.#closing) return
    if (gap !== null) {
      this.stats.gaps++
      this.#o.metrics.gaps.inc({ session: this.name, reason: gap.reason })
      caller.send(sseFrame('gap', gap), undefined, false)
    }
    for (const entry of this.ring.since(afterSeq, (e) => channelMatches(channel, e.channel))) {
      if (entry.replayId !== undefined && skip.has(positionKey(entry.replayId))) continue
      caller.send(entry.frame, entry.id ?? formatId(this.epoch, entry.seq), false)
    }
    caller.lastSeq = this.#seq
    if (outcome !== 'joined' && skip.size > 0) this.#skipLive.set(caller, skip)
  }

  #deepFinished (runner: DeepResume, outcome: DeepOutcome): void {
    const stats = this.reliable.replay?.deepStats
    if (stats === undefined) return
    stats.active = this.#deep.size
    stats.replayedEvents += runner.replayed
    if (outcome === 'joined' || outcome === 'idle') stats.joined++
    else if (outcome !== 'stopped') stats.failed++
  }

  /** After a deep resume that did not meet the ring: a live message the caller already got from the replay. */
  #alreadySent (caller: Caller, position: number | string | undefined): boolean {
    const skip = this.#skipLive.get(caller)
    if (skip === undefined) return false
    if (position !== undefined && skip.delete(positionKey(position))) return true
    // the live stream is past what was replayed
    this.#skipLive.delete(caller)
    return false
  }

  #reportUpstream (status: string, reason: string, extra: Record<string, unknown>, channel?: string): void {
    if (this.#closing) return
    const frame = sseFrame('upstream', { ...this.#upstreamData(status, reason), ...extra })
    for (const caller of this.#callers) {
      if (channel === undefined || caller.patterns.some((p) => channelMatches(p, channel))) caller.send(frame, undefined, false)
    }
  }

  #announceLost (pattern: string, error: unknown): void {
    const frame = sseFrame('upstream', { ...this.#upstreamData('subscription-lost', errorText(error)), channel: pattern })
    const set = this.#byPattern.get(pattern)
    if (set !== undefined) for (const caller of set) caller.send(frame, undefined, false)
  }

  #upstreamData (status: string, reason: string, error?: unknown): Record<string, unknown> {
    const data: Record<string, unknown> = { session: this.name, status, state: this.client.state, reason, lastEventId: this.lastId }
    if (error !== undefined) data.error = errorText(error)
    return data
  }

  #broadcast (frame: Frame): void {
    for (const caller of this.#callers) caller.send(frame, undefined, false)
  }

  #setError (err: unknown): void {
    const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : null
    this.lastError = { message: errorText(err), code, at: new Date().toISOString() }
  }
}
