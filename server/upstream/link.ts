/**
 * The upstream link of one session: its client-core Client, opened at start-up and retried with backoff until
 * it works (then the client keeps itself alive), its reliability options (ack, replay, Bearer token, limits) and
 * its reference-counted upstream subscriptions. It tells its host what callers must hear about: messages, state
 * changes, re-handshakes and subscriptions the upstream refused.
 */
import { Backoff, Client, ServerError, originOutcome } from '../../client-core/index.js'
import type { ClientOptions, HandshakeEvent, Message, StateChange } from '../../client-core/index.js'
import { isWildcard } from '../channels.js'
import type { SessionConfig } from '../../config/index.js'
import { DeadlineError, errorText, withDeadline } from '../deadline.js'
import type { BridgeMetrics } from '../ops/metrics.js'
import { LazyChildLogger } from '../ops/lazy-log.js'
import type { SessionLogger } from '../ops/lazy-log.js'
import { mapUpstreamError, unavailable } from './errors.js'
import { originGates } from './origin-gates.js'
import { isLimitError, SessionReliability } from './reliability.js'
import { UpstreamSubscriptions } from './subscriptions.js'
import type { Listener, Outcome } from './subscriptions.js'
import { clientProxy } from './proxy-setting.js'

export type ClientFactory = (url: string, options: ClientOptions) => Client

/** The last upstream error, for GET /sessions (no secrets: the client's messages carry none). */
export interface LastError { message: string, code: string | null, at: string }

/** What the link counts (the session's view shows them with its own counters). */
export interface LinkStats {
  handshakes: number
  rehandshakes: number
  reconnects: number
  publishes: number
  publishFailures: number
  calls: number
  callFailures: number
}

/** What the link tells the session. */
export interface LinkHost {
  /** every upstream message, on any subscription (one message matching several subscriptions: once per subscription) */
  message: Listener
  /** the client's state changed (after the link's own bookkeeping) */
  state: (change: StateChange) => void
  /** the upstream session was lost and a new one made: `replayed` when replay positions cover the gap */
  rehandshake: (clientId: string, replayed: boolean) => void
  /** the server refused a subscription the client tried to restore */
  subscriptionLost: (pattern: string, error: unknown) => void
  /** a report of the reliability layer (token refreshed, replay fallback, limit reached) */
  report: (status: string, reason: string, extra: Record<string, unknown>, channel?: string) => void
  /** the position of the session's event log (subscription coverage, re-handshake marks) */
  currentSeq: () => number
}

export interface LinkOptions {
  metrics: BridgeMetrics
  stats: LinkStats
  log: SessionLogger
  createClient?: ClientFactory | undefined
  dataDir: string
  checkpointIntervalMs: number
}

/** First open attempts 0–0.5 s apart, growing to 0–30 s (full jitter); limit errors wait longer (reliability.ts). */
const OPEN_BACKOFF = { initialMs: 500, maxMs: 30_000, earlyMaxMs: 30_000 }

export class UpstreamLink {
  readonly name: string
  readonly config: SessionConfig
  readonly client: Client
  readonly reliable: SessionReliability
  readonly subs: UpstreamSubscriptions
  lastError: LastError | null = null
  readonly #host: LinkHost
  readonly #o: LinkOptions
  readonly #backoff = new Backoff(OPEN_BACKOFF)
  #closing = false
  #opening = false
  #openTimer: NodeJS.Timeout | null = null
  #nextOpenAt: number | null = null
  #everConnected = false
  #rehandshakeSeq: number | null = null

  constructor (name: string, config: SessionConfig, host: LinkHost, options: LinkOptions) {
    this.name = name
    this.config = config
    this.#host = host
    this.#o = options
    const log = options.log
    this.reliable = new SessionReliability(name, config, {
      dataDir: options.dataDir,
      checkpointIntervalMs: options.checkpointIntervalMs,
      log: new LazyChildLogger(log, { component: 'reliable' }),
      currentSeq: host.currentSeq,
      report: (status, reason, extra, channel) => { if (!this.#closing) host.report(status, reason, extra, channel) }
    })
    this.client = this.newClient('client', this.reliable.clientOptions())
    this.subs = new UpstreamSubscriptions({
      listener: (msg) => { if (!this.#closing) host.message(msg) },
      lingerMs: config.unsubscribeLingerMs,
      opTimeoutMs: this.opTimeoutMs,
      currentSeq: host.currentSeq,
      isRefusal: (err) => err instanceof ServerError,
      log,
      onLost: (pattern, error) => { host.subscriptionLost(pattern, error) }
    })
    for (const pattern of config.subscribe) this.subs.hold(pattern)
    this.client.on('state', (e: StateChange) => { this.reliable.noteState(e); this.#onState(e) })
    this.client.on('handshake', (e: HandshakeEvent) => { this.#onHandshake(e) })
    this.client.on('resubscribeFailed', (e: { channel: string, error: unknown }) => { this.subs.lost(e.channel, e.error) })
    this.client.on('transportError', (err: unknown) => {
      this.#setError(err)
      log.debug({ err }, 'upstream transport error')
    })
  }

  get state (): string { return this.client.state }
  get connected (): boolean { return this.client.state === 'connected' }
  get closing (): boolean { return this.#closing }
  /** the log position of the last re-handshake (messages after it may have been missed), null if none */
  get rehandshakeSeq (): number | null { return this.#rehandshakeSeq }
  /** deadline of one upstream round trip (open, subscribe) */
  get opTimeoutMs (): number { return this.config.maxNetworkDelayMs + this.config.connectionTimeoutMs }

  /**
   * Starts opening the upstream session (retried with backoff until it works). Settles when the first attempt is
   * over: open and the held subscriptions answered, or the open failed (retries go on in the background). Never
   * rejects; the bridge opens many sessions a few at a time with it (startup.ts).
   */
  async start (): Promise<void> {
    this.#openTimer = null
    if (this.#closing || this.#opening) return
    // open() only from 'disconnected': otherwise an earlier attempt is still going, or the client is up
    if (this.client.state !== 'disconnected') return
    this.#opening = true
    let subscribed: Promise<void> | null = null
    try {
      await withDeadline(this.client.open(), 2 * this.opTimeoutMs, 'open')
      this.#backoff.reset()
      this.#nextOpenAt = null
      this.reliable.opened()
      this.#o.log.info({ clientId: this.client.clientId, connectionType: this.client.connectionType }, 'upstream session open')
      if (!this.#closing) subscribed = this.subs.usable(this.client)
    } catch (err) {
      await this.#openFailed(err)
    } finally {
      this.#opening = false
    }
    if (subscribed !== null) await subscribed
  }

  /** Ready = connected and every permanent subscription confirmed. */
  readiness (): { ready: true } | { ready: false, reason: string } {
    if (this.#closing) return { ready: false, reason: 'shutting down' }
    if (this.client.state !== 'connected') return { ready: false, reason: `upstream ${this.client.state}` }
    const missing = this.subs.unconfirmedPermanent()
    if (missing.length > 0) return { ready: false, reason: `subscriptions not confirmed: ${missing.join(', ')}` }
    return { ready: true }
  }

  /** Seconds a caller should wait before retrying a request refused because the upstream is down. */
  retryAfterSeconds (): number {
    if (this.#nextOpenAt === null) return 1
    return Math.min(60, Math.max(1, Math.ceil((this.#nextOpenAt - Date.now()) / 1000)))
  }

  /** One more caller of `pattern`: the upstream outcome (bounded by opTimeoutMs). */
  acquire (pattern: string): Promise<Outcome> { return this.subs.acquire(pattern) }
  release (pattern: string): void { this.subs.release(pattern) }

  async publish (channel: string, data: unknown, timeoutMs: number): Promise<Message> {
    this.#requireConnected()
    try {
      const reply = await withDeadline(this.client.publish(channel, data), timeoutMs, 'publish')
      this.#o.stats.publishes++
      return reply
    } catch (err) {
      this.#o.stats.publishFailures++
      throw mapUpstreamError(err, this.name, 'publish', this.retryAfterSeconds())
    }
  }

  async call (channel: string, data: unknown, timeoutMs: number): Promise<unknown> {
    this.#requireConnected()
    try {
      // client-core has its own timeout; ours is a backstop a little later
      const result = await withDeadline(this.client.remoteCall(channel, data, { timeoutMs }), timeoutMs + 1_000, 'call')
      this.#o.stats.calls++
      return result
    } catch (err) {
      this.#o.stats.callFailures++
      throw mapUpstreamError(err, this.name, 'call', this.retryAfterSeconds())
    }
  }

  /** No more open attempts, no more messages to the host; the subscriptions stop retrying. */
  beginClose (): void {
    if (this.#closing) return
    this.#closing = true
    if (this.#openTimer !== null) clearTimeout(this.#openTimer)
    this.#openTimer = null
    this.subs.close()
  }

  /** Writes the final replay checkpoint, then closes the client (sends /meta/disconnect), each within `deadlineMs`. */
  async close (deadlineMs: number): Promise<void> {
    this.beginClose()
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

  /** A client of this session's upstream with the session's options (the session's own, and deep resumes). */
  newClient (component: string, extra: Partial<ClientOptions>): Client {
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
    clientOptions.proxy = clientProxy(config.proxy)
    return (this.#o.createClient ?? ((url, opts) => new Client(url, opts)))(config.url, clientOptions)
  }

  #requireConnected (): void {
    if (this.#closing || this.client.state !== 'connected') {
      throw unavailable(this.name, `upstream ${this.client.state}`, this.retryAfterSeconds())
    }
  }

  async #openFailed (err: unknown): Promise<void> {
    this.#setError(err)
    if (this.#closing) return
    // our deadline passed while the client still tries: stop that attempt before the next one
    if (err instanceof DeadlineError) await withDeadline(this.client.close(), this.config.maxNetworkDelayMs, 'close').catch(() => {})
    // a refusing origin is paced by its connect gate: wait in its queue, to go as soon as a probe is answered
    let delay = originOutcome(err) === 'refused' ? OPEN_BACKOFF.initialMs : this.#backoff.next()
    // a limit error (Salesforce concurrent clients, daily limits): wait long, never hammer the org
    if (isLimitError(err)) {
      delay = Math.max(delay, this.reliable.limitOpenDelay())
      this.reliable.noteLimit(err, delay)
    }
    // the upstream's trouble, not ours: the reason without a stack
    this.#o.log.warn({ error: errorText(err), code: this.lastError?.code, attempt: this.#backoff.attempt, retryInMs: delay }, 'upstream open failed')
    this.#scheduleOpen(delay)
  }

  #scheduleOpen (delay: number): void {
    if (this.#closing || this.#openTimer !== null) return
    this.#nextOpenAt = Date.now() + delay
    this.#openTimer = setTimeout(() => { void this.start() }, delay)
    this.#openTimer.unref()
  }

  #onState (e: StateChange): void {
    if (e.error !== undefined) this.#setError(e.error)
    // every transition at debug: a lost connection and its return are logged once each (ops/upstream-log.ts)
    this.#o.log.debug({ from: e.from, to: e.to, reason: e.reason, delayMs: e.delayMs }, 'upstream state')
    if (e.to === 'reconnecting' && typeof e.delayMs === 'number') this.#nextOpenAt = Date.now() + e.delayMs
    if (e.to === 'connected') {
      this.#nextOpenAt = null
      if (this.#everConnected && e.from !== 'connected') {
        this.#o.stats.reconnects++
        this.#o.metrics.reconnects.inc({ session: this.name })
      }
      this.#everConnected = true
    }
    this.#host.state(e)
    if (e.to === 'connected') {
      // during open() the client is not yet usable: start() hands it over when open() resolves
      if (!this.#closing && !this.client.closed) void this.subs.usable(this.client)
    } else if (e.to === 'disconnected' && !this.#closing && !this.#opening) {
      // the client gave up by itself (e.g. advice reconnect:none): open again, with backoff
      this.subs.unusable()
      this.#scheduleOpen(this.#backoff.next())
    }
  }

  #onHandshake (e: HandshakeEvent): void {
    this.#o.stats.handshakes++
    this.#o.metrics.handshakes.inc({ session: this.name, kind: e.rehandshake ? 'rehandshake' : 'first' })
    if (!e.rehandshake) return
    this.#o.stats.rehandshakes++
    this.#rehandshakeSeq = this.#host.currentSeq()
    // replay sessions resubscribe from their last positions: exact channels miss nothing the upstream retains
    const replayed = this.reliable.replay !== null && this.subs.view().every((v) => !isWildcard(v.channel))
    this.#o.log.warn({ clientId: e.clientId, replay: replayed }, replayed ? 'upstream re-handshake: resubscribing from the replay positions' : 'upstream re-handshake: messages may have been missed')
    this.#host.rehandshake(e.clientId, replayed)
  }

  #setError (err: unknown): void {
    const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : null
    this.lastError = { message: errorText(err), code, at: new Date().toISOString() }
  }
}
