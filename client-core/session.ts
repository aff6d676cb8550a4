/**
 * The Bayeux session engine: one state field changed through `setState()`, the handshake with transport
 * negotiation, the advice-driven /meta/connect loop, request dispatch with deadlines, reply correlation, and
 * reconnection (backoff with full jitter; re-handshake on an unknown session). `Client` (client.ts) adds the user
 * API — subscriptions, publish, receive — on top of the hooks at the end of this class.
 *
 * A generation counter (`gen`) is bumped by every open() and close(): loops and callbacks of an older generation
 * see the change and stop, so a late reply can never act on a newer session.
 */
import { EventEmitter } from 'node:events'
import { CookieJar } from 'tough-cookie'
import { Backoff } from './backoff.js'
import { AckExtension } from './extensions/ack.js'
import {
  ClientError, ClientInvalidOperation, CometdError, HttpStatusError, MessageEncodingError, MessageTooLargeError, ServerError,
  TransportConnectionClosed, TransportError, TransportTimeoutError, WebSocketUpgradeError
} from './errors.js'
import { ClientState } from './events.js'
import type { ClientEvents, ClientStats, StateChange } from './events.js'
import type { AuthExtension, Extension, Headers } from './extensions.js'
import { ALL_CONNECTION_TYPES, DEFAULTS } from './options.js'
import type { ClientOptions, ConnectionType, HeadersOption, Logger, TlsOptions } from './options.js'
import { parsePayload } from './protocol/codec.js'
import { isReply } from './protocol/message.js'
import type { Advice, Message, Payload } from './protocol/message.js'
import { LongPollingTransport } from './transport/long-polling.js'
import type { Transport, TransportContext } from './transport/transport.js'
import { WebSocketTransport } from './transport/websocket.js'

const silentLogger: Logger = { trace () {}, debug () {}, info () {}, warn () {}, error () {} }

/** A message on its way out, and how its reply reaches whoever sent it. */
export interface Outgoing {
  message: Message
  /** settles with the reply (successful or not), or rejects with a transport/client error */
  promise: Promise<Message>
  resolve: (reply: Message) => void
  reject: (error: Error) => void
  settled: boolean
  /** the transport that carried it, once sent */
  transport: Transport | null
  authRetried: boolean
  /** the deadline (epoch ms, 0 = not armed): from enqueue (or send) to reply, retries included */
  deadline: number
  timeoutMs: number
  /** neighbours in the session's deadline list (sorted by deadline; one timer serves them all) */
  prev: Outgoing | null
  next: Outgoing | null
}

interface ResolvedOptions {
  connectionTypes: ConnectionType[]
  connectionTimeoutMs: number | null
  maxPendingCount: number
  extensions: Extension[]
  auth: AuthExtension | null
  headers: HeadersOption | undefined
  tls: TlsOptions | undefined
  stringify: (value: unknown) => string
  parse: (text: string) => unknown
  maxNetworkDelayMs: number
  pingIntervalMs: number
  appendMessageTypeToURL: boolean
  autoBatch: boolean
  maxBatchMessages: number
  /** null: per transport (long-polling DEFAULTS.maxBatchBytes, websocket DEFAULTS.maxFrameBytes) */
  maxBatchBytes: number | null
  advice: { timeout: number, interval: number }
  handshakeProps: Record<string, unknown>
}

interface CurrentAdvice { reconnect: 'retry' | 'handshake' | 'none', timeout: number, interval: number, maxInterval: number }

/** After an HTTP 413 the byte cap is halved, but not below this (Salesforce's limit is 32,768 bytes). */
const MIN_BODY_CAP = 8 * 1024

function positiveInteger (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < 1) throw new ClientError(`${name} must be a positive integer (got ${String(value)})`)
  return value
}

export function unknownSession (reply: Message): boolean {
  return typeof reply.error === 'string' && /^40[123]:[^:]*:\s*(unknown client|session_unknown)/i.test(reply.error)
}

function limitError (reply: Message): boolean {
  return typeof reply.error === 'string' && /limit exceeded/i.test(reply.error)
}

function authFailure (reply: Message): boolean {
  const error = typeof reply.error === 'string' ? reply.error : ''
  if (unknownSession(reply) || limitError(reply)) return false
  if (/^401:/.test(error)) return true
  return /^403:/.test(error) && (reply.channel === '/meta/handshake' || reply.channel === '/meta/connect')
}

export class BayeuxSession extends EventEmitter<ClientEvents> {
  readonly url: string
  protected readonly options: ResolvedOptions
  protected readonly logger: Logger
  protected gen = 0
  #state: ClientState = ClientState.DISCONNECTED
  #clientId: string | null = null
  #transport: Transport | null = null
  #transports = new Map<ConnectionType, Transport>()
  #wsRefused = false
  #cookies = new CookieJar()
  #advice: CurrentAdvice
  #nextId = 0
  #pending = new Map<string, Outgoing>()
  #outbox: Outgoing[] = []
  /** the deadline list: armed entries sorted by deadline, and the one timer set for the earliest */
  #armedHead: Outgoing | null = null
  #armedTail: Outgoing | null = null
  #deadlineTimer: NodeJS.Timeout | null = null
  #deadlineAt = Infinity
  /** long-polling body cap learnt from an HTTP 413 (null: none seen) */
  #bodyCap: number | null = null
  /** the previous batch was over the byte cap: serialize message by message at once (no whole-payload attempt) */
  #splitting = false
  #inFlight = 0
  #flushScheduled = false
  #controllers = new Set<AbortController>()
  #sleeps = new Set<{ timer: NodeJS.Timeout, resolve: () => void }>()
  #backoff: Backoff
  #firstConnect = true
  #needHandshake = false
  #rehandshakesWithoutConnect = 0
  #downSince: number | null = null
  #closing: Promise<void> | null = null
  #authenticating: Promise<void> | null = null
  protected terminalError: CometdError | null = null
  protected readonly counters: ClientStats = {
    handshakes: 0, reconnects: 0, messagesIn: 0, messagesOut: 0, dropped: 0, resubscribeFailures: 0, lastMessageAt: null
  }

  constructor (url: string, options: ClientOptions = {}) {
    super()
    let parsed: URL
    try {
      parsed = new URL(url)
    } catch (error) {
      throw new ClientError(`Invalid URL ${JSON.stringify(url)}`, { cause: error })
    }
    if (!['http:', 'https:', 'ws:', 'wss:'].includes(parsed.protocol)) {
      throw new ClientError(`Unsupported URL scheme ${parsed.protocol} (use http: or https:)`)
    }
    if (parsed.protocol === 'ws:') parsed.protocol = 'http:'
    if (parsed.protocol === 'wss:') parsed.protocol = 'https:'
    this.url = parsed.href
    const types = options.connectionTypes === undefined
      ? [...DEFAULTS.connectionTypes]
      : Array.isArray(options.connectionTypes) ? [...options.connectionTypes] : [options.connectionTypes]
    if (types.length === 0) throw new ClientError('connectionTypes must name at least one connection type')
    for (const type of types) {
      if (!ALL_CONNECTION_TYPES.includes(type)) throw new ClientError(`Unknown connection type ${JSON.stringify(type)}`)
    }
    const advice = { ...DEFAULTS.advice, ...options.advice }
    this.options = {
      connectionTypes: [...new Set(types)],
      connectionTimeoutMs: options.connectionTimeoutMs === undefined ? DEFAULTS.connectionTimeoutMs : options.connectionTimeoutMs,
      maxPendingCount: options.maxPendingCount ?? DEFAULTS.maxPendingCount,
      extensions: [...(options.extensions ?? []), ...(options.ack === true ? [new AckExtension()] : [])],
      auth: options.auth ?? null,
      headers: options.headers,
      tls: options.tls,
      stringify: options.jsonStringify ?? JSON.stringify,
      parse: options.jsonParse ?? JSON.parse,
      maxNetworkDelayMs: options.maxNetworkDelayMs ?? DEFAULTS.maxNetworkDelayMs,
      pingIntervalMs: options.pingIntervalMs ?? DEFAULTS.pingIntervalMs,
      appendMessageTypeToURL: options.appendMessageTypeToURL ?? false,
      autoBatch: options.autoBatch ?? true,
      maxBatchMessages: positiveInteger('maxBatchMessages', options.maxBatchMessages, DEFAULTS.maxBatchMessages),
      maxBatchBytes: options.maxBatchBytes === undefined ? null : positiveInteger('maxBatchBytes', options.maxBatchBytes, 0),
      advice,
      handshakeProps: options.handshakeProps ?? {}
    }
    this.logger = options.logger ?? silentLogger
    this.#backoff = new Backoff(options.backoff)
    this.#advice = { reconnect: 'retry', timeout: advice.timeout, interval: advice.interval, maxInterval: 0 }
  }

  // ---------------------------------------------------------------- observable state

  get state (): ClientState { return this.#state }
  get clientId (): string | null { return this.#clientId }
  get connectionType (): ConnectionType | null { return this.#transport?.type ?? null }
  get stats (): ClientStats { return { ...this.counters } }
  /** The latest advice from the server, merged over the defaults. */
  get advice (): Readonly<CurrentAdvice> { return { ...this.#advice } }
  /** ms the connection has been down, or 0 when connected. */
  get downForMs (): number { return this.#downSince === null ? 0 : Date.now() - this.#downSince }
  protected get downSince (): number | null { return this.#downSince }

  protected setState (to: ClientState, reason: string, extra: { error?: CometdError, delayMs?: number } = {}): void {
    const from = this.#state
    if (from === to && extra.error === undefined) return
    this.#state = to
    const change: StateChange = { from, to, reason, ...extra }
    this.logger.debug({ from, to, reason, delayMs: extra.delayMs, err: extra.error }, 'state change')
    this.onStateChange(change)
    this.emit('state', change)
  }

  // ---------------------------------------------------------------- lifecycle

  /** Handshakes and sends the first /meta/connect. On failure everything is released and the error is thrown. */
  async open (): Promise<void> {
    if (this.#closing !== null) await this.#closing
    if (this.#state !== ClientState.DISCONNECTED) throw new ClientInvalidOperation('Client is already open.')
    const gen = ++this.gen
    this.#cookies = new CookieJar()
    this.#transports = new Map()
    this.#transport = null
    this.#wsRefused = false
    this.#clientId = null
    this.#downSince = null
    this.#needHandshake = false
    this.#rehandshakesWithoutConnect = 0
    this.#firstConnect = true
    this.#backoff.reset()
    this.terminalError = null
    this.#advice = { reconnect: 'retry', timeout: this.options.advice.timeout, interval: this.options.advice.interval, maxInterval: 0 }
    this.onOpen()
    this.setState(ClientState.HANDSHAKING, 'open')
    try {
      await this.#handshake(gen, false)
      this.#checkGen(gen)
      this.setState(ClientState.CONNECTING, 'handshake-ok')
      const reply = await this.#sendConnect()
      this.#checkGen(gen)
      this.#updateAdvice(reply)
      if (reply.successful !== true) throw new ServerError('Connect request failed.', reply)
      this.onOpened()
      this.#onConnected('connect-ok')
    } catch (error) {
      if (this.gen === gen) await this.#release(gen, error as Error, 'open-failed')
      throw error
    }
    void this.#connectLoop(gen)
  }

  /** Sends /meta/disconnect when connected, stops every timer and request. Idempotent. */
  async close (): Promise<void> {
    if (this.#closing !== null) return await this.#closing
    if (this.#state === ClientState.DISCONNECTED) return
    this.#closing = this.#close().finally(() => { this.#closing = null })
    return await this.#closing
  }

  async #close (): Promise<void> {
    const wasConnected = this.#state === ClientState.CONNECTED
    const gen = ++this.gen
    this.setState(ClientState.DISCONNECTING, 'close')
    this.#abortAll(new ClientInvalidOperation('The client is closing'))
    if (wasConnected && this.#clientId !== null && this.#transport !== null) {
      try {
        await this.#request([{ channel: '/meta/disconnect' }], { timeoutMs: this.options.maxNetworkDelayMs })
      } catch (error) {
        this.logger.debug({ err: error }, '/meta/disconnect failed; closing anyway')
      }
    }
    await this.#release(gen, new ClientInvalidOperation('The client was closed'), 'close')
  }

  /** Drops everything of this open(): requests, timers, transports. */
  async #release (gen: number, error: Error, reason: string): Promise<void> {
    if (this.gen === gen) this.gen++
    this.#abortAll(error)
    for (const entry of this.#outbox) this.#settle(entry, null, error)
    this.#outbox = []
    for (const sleep of this.#sleeps) { clearTimeout(sleep.timer); sleep.resolve() }
    this.#sleeps.clear()
    if (this.#armedHead === null && this.#deadlineTimer !== null) {
      clearTimeout(this.#deadlineTimer)
      this.#deadlineTimer = null
      this.#deadlineAt = Infinity
    }
    const transports = [...this.#transports.values()]
    this.#transports.clear()
    this.#transport = null
    this.#clientId = null
    await Promise.all(transports.map(async (t) => await t.close().catch(() => {})))
    this.onRelease(error)
    this.setState(ClientState.DISCONNECTED, reason, error instanceof CometdError && reason !== 'close' ? { error } : {})
  }

  #abortAll (error: Error): void {
    for (const controller of this.#controllers) controller.abort(error)
    this.#controllers.clear()
    for (const entry of this.#pending.values()) this.#settle(entry, null, error)
    this.#pending.clear()
  }

  #checkGen (gen: number): void {
    if (this.gen !== gen) throw new ClientInvalidOperation('The client was closed')
  }

  /** The server ended the session for good (advice `none`): remember why and release everything. */
  async #terminate (gen: number, error: CometdError): Promise<void> {
    this.terminalError = error
    this.emit('transportError', error)
    await this.#release(gen, error, 'advice-none')
  }

  // ---------------------------------------------------------------- handshake and negotiation

  #transportFor (type: ConnectionType): Transport {
    let transport = this.#transports.get(type)
    if (transport === undefined) {
      transport = type === 'websocket' ? new WebSocketTransport(this.#context) : new LongPollingTransport(this.#context)
      this.#transports.set(type, transport)
    }
    return transport
  }

  /** Handshakes over the preferred transport, falling back to long-polling when the websocket upgrade fails. */
  async #handshake (gen: number, rehandshake: boolean): Promise<void> {
    this.#clientId = null
    const allowed = this.options.connectionTypes
    const candidates = allowed.filter((type) => type !== 'websocket' || !this.#wsRefused)
    if (candidates.length === 0) throw new ClientError('The server refused the websocket upgrade and long-polling is not allowed')
    let reply: Message | null = null
    let lastError: unknown = null
    let used: Transport | null = null
    for (const type of candidates) {
      const transport = this.#transportFor(type)
      try {
        reply = await this.#handshakeOn(transport)
        used = transport
        break
      } catch (error) {
        this.#checkGen(gen)
        lastError = error
        if (type === 'websocket' && error instanceof WebSocketUpgradeError) this.#wsRefused = true
        if (!(error instanceof TransportError)) throw error
        this.logger.debug({ err: error, type }, 'handshake failed over this transport')
      }
    }
    this.#checkGen(gen)
    if (reply === null || used === null) {
      if (this.#wsRefused && !allowed.includes('long-polling')) {
        throw new ClientError('The server does not accept websocket connections and only websocket was allowed', { cause: lastError })
      }
      throw lastError
    }
    this.#updateAdvice(reply)
    if (reply.successful !== true) throw new ServerError('Handshake request failed.', reply)
    if (typeof reply.clientId !== 'string' || reply.clientId === '') {
      throw new TransportError('The handshake reply has no clientId')
    }
    // Choose, in our order of preference, a type the server supports; websocket only if it worked or was not tried.
    const offered = Array.isArray(reply.supportedConnectionTypes) ? reply.supportedConnectionTypes : [used.type]
    const wsFailed = used.type !== 'websocket' && candidates.includes('websocket')
    const chosen = allowed.find((type) => offered.includes(type) && !(type === 'websocket' && (wsFailed || this.#wsRefused)))
    if (chosen === undefined) {
      throw new ClientError('None of the connection types offered by the server are supported.')
    }
    this.#transport = this.#transportFor(chosen)
    for (const [type, transport] of this.#transports) {
      if (type !== chosen) { this.#transports.delete(type); void transport.close() }
    }
    this.#clientId = reply.clientId
    this.#firstConnect = true
    this.counters.handshakes++
    this.logger.info({ clientId: reply.clientId, connectionType: chosen, rehandshake }, 'handshake successful')
    this.emit('handshake', { clientId: reply.clientId, connectionType: chosen, rehandshake, reply })
  }

  async #handshakeOn (transport: Transport): Promise<Message> {
    const props = this.options.handshakeProps
    const message: Message = {
      ...props,
      channel: '/meta/handshake',
      version: '1.0',
      minimumVersion: '1.0',
      supportedConnectionTypes: [...this.options.connectionTypes],
      advice: { timeout: this.options.advice.timeout, interval: this.options.advice.interval }
    }
    if (props.ext !== undefined) message.ext = structuredClone(props.ext as Record<string, unknown>)
    let [reply] = await this.#request([message], { timeoutMs: this.options.maxNetworkDelayMs, transport })
    if (reply !== undefined && reply.successful !== true && this.options.auth !== null && authFailure(reply)) {
      await this.#authenticate()
      const again = { ...message }
      delete again.id
      ;[reply] = await this.#request([again], { timeoutMs: this.options.maxNetworkDelayMs, transport })
    }
    if (reply === undefined) throw new TransportError('No reply to the handshake')
    return reply
  }

  async #authenticate (): Promise<void> {
    const auth = this.options.auth
    if (auth === null) return
    this.#authenticating ??= auth.authenticate().finally(() => { this.#authenticating = null })
    try {
      await this.#authenticating
    } catch (error) {
      throw new ClientError('Authentication failed', { cause: error })
    }
  }

  // ---------------------------------------------------------------- the /meta/connect loop

  async #sendConnect (): Promise<Message> {
    const message: Message = { channel: '/meta/connect', connectionType: this.#transport?.type ?? 'long-polling' }
    const held = this.#firstConnect ? 0 : this.#advice.timeout
    if (this.#firstConnect) message.advice = { timeout: 0 }
    const [reply] = await this.#request([message], { timeoutMs: held + this.options.maxNetworkDelayMs, isConnect: true })
    if (reply === undefined) throw new TransportError('No reply to /meta/connect')
    return reply
  }

  async #connectLoop (gen: number): Promise<void> {
    while (this.gen === gen) {
      try {
        if (this.#needHandshake) {
          await this.#rehandshake(gen)
          continue
        }
        const interval = this.#state === ClientState.CONNECTED ? this.#advice.interval : 0
        if (interval > 0) await this.#sleep(interval)
        if (this.gen !== gen) return
        let reply: Message
        try {
          reply = await this.#sendConnect()
        } catch (error) {
          if (this.gen !== gen) return
          await this.#connectionLost(gen, 'network', error as Error)
          continue
        }
        if (this.gen !== gen) return
        this.#updateAdvice(reply)
        if (reply.successful === true) {
          this.#firstConnect = false
          this.#onConnected(this.#state === ClientState.CONNECTED ? 'connect-ok' : 'reconnected')
          continue
        }
        await this.#connectRejected(gen, reply)
      } catch (error) {
        if (this.gen !== gen) return
        // Anything unexpected: report, back off, carry on. The loop must not die.
        this.logger.error({ err: error }, 'connect loop error')
        await this.#connectionLost(gen, 'internal', error as Error)
      }
    }
  }

  /** An unsuccessful /meta/connect reply: follow the advice. */
  async #connectRejected (gen: number, reply: Message): Promise<void> {
    const error = new ServerError('Connect request failed.', reply)
    let action = reply.advice?.reconnect ?? (unknownSession(reply) ? 'handshake' : 'retry')
    // Salesforce sometimes says `none` with 403::Unknown client: the session is gone, a new one is fine.
    if (action === 'none' && unknownSession(reply)) action = 'handshake'
    // Daily or concurrent limits: wait (hard backoff) and try again, never stop for good.
    if (action === 'none' && limitError(reply)) action = 'retry'
    if (this.options.auth !== null && authFailure(reply)) {
      await this.#authenticate().catch((err: unknown) => this.logger.warn({ err }, 'authenticate() failed'))
      action = 'handshake'
    }
    if (action === 'none') {
      await this.#terminate(gen, new ServerError('Connection closed by the server', reply))
      return
    }
    if (action === 'handshake') {
      this.#needHandshake = true
      if (this.#rehandshakesWithoutConnect > 0 || limitError(reply)) {
        await this.#connectionLost(gen, 'session-unknown', error, limitError(reply))
      } else {
        this.#markDown()
        this.emit('transportError', error)
      }
      return
    }
    await this.#connectionLost(gen, 'connect-failed', error, limitError(reply))
  }

  #markDown (): void {
    this.#downSince ??= Date.now()
  }

  /** The connection is down: report it, wait a backoff delay, decide whether the session can still be alive. */
  async #connectionLost (gen: number, reason: string, error: Error, hard = false): Promise<void> {
    this.#markDown()
    const cometdError = error instanceof CometdError ? error : new TransportError(error.message, { cause: error })
    this.emit('transportError', cometdError)
    this.#firstConnect = true
    if (error instanceof TransportError) this.#transport?.reset(reason)
    const now = Date.now()
    const delay = this.#backoff.next(now, this.#advice.interval, hard)
    const { timeout, interval, maxInterval } = this.#advice
    if (maxInterval > 0 && now - (this.#downSince ?? now) + delay > timeout + interval + maxInterval) {
      this.#needHandshake = true // the server has surely expired the session by now
    }
    if (error instanceof HttpStatusError && (error.statusCode === 401 || error.statusCode === 403) && this.options.auth !== null) {
      await this.#authenticate().catch((err: unknown) => this.logger.warn({ err }, 'authenticate() failed'))
    }
    this.setState(ClientState.RECONNECTING, reason, { error: cometdError, delayMs: delay })
    await this.#sleep(delay)
    void gen
  }

  async #rehandshake (gen: number): Promise<void> {
    this.#needHandshake = false
    this.#rehandshakesWithoutConnect++
    this.#markDown()
    this.onSessionLost()
    this.setState(ClientState.HANDSHAKING, 'session-unknown')
    try {
      await this.#handshake(gen, true)
    } catch (error) {
      if (this.gen !== gen) return
      this.#needHandshake = true
      if (error instanceof ServerError && error.response !== null) {
        const reply = error.response
        const action = reply.advice?.reconnect ?? 'handshake'
        // A limit error is waited out (hard backoff), never final: the org's limit frees up again.
        if (action === 'none' && !unknownSession(reply) && !limitError(reply) && !(this.options.auth !== null && authFailure(reply))) {
          await this.#terminate(gen, error)
          return
        }
        await this.#connectionLost(gen, 'handshake-failed', error, limitError(reply))
        return
      }
      if (error instanceof ClientError) {
        await this.#terminate(gen, error)
        return
      }
      await this.#connectionLost(gen, 'handshake-failed', error as Error)
      return
    }
    if (this.gen !== gen) return
    this.setState(ClientState.CONNECTING, 'handshake-ok')
    this.onRehandshake(gen)
  }

  #onConnected (reason: string): void {
    this.#rehandshakesWithoutConnect = 0
    this.#backoff.reset()
    if (this.#downSince !== null) {
      this.#downSince = null
      this.counters.reconnects++
    }
    if (this.#state !== ClientState.CONNECTED) {
      this.setState(ClientState.CONNECTED, reason)
      this.onConnected()
      this.#scheduleFlush()
    }
  }

  #updateAdvice (reply: Message): void {
    const advice: Advice | undefined = reply.advice
    if (advice === undefined || (reply.channel !== '/meta/connect' && reply.channel !== '/meta/handshake')) return
    const defaults = this.options.advice
    const num = (value: unknown, fallback: number): number =>
      typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.min(value, 600_000) : fallback
    const reconnect = advice.reconnect === 'handshake' || advice.reconnect === 'none' ? advice.reconnect : 'retry'
    this.#advice = {
      reconnect,
      timeout: num(advice.timeout, defaults.timeout),
      interval: num(advice.interval, defaults.interval),
      maxInterval: num(advice.maxInterval, 0)
    }
    if (advice['multiple-clients'] === true) {
      this.logger.warn('the server saw several sessions from this client\'s browser cookie (multiple-clients advice)')
    }
  }

  #sleep (ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve()
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => { this.#sleeps.delete(entry); resolve() }, ms),
        resolve
      }
      entry.timer.unref()
      this.#sleeps.add(entry)
    })
  }

  // ---------------------------------------------------------------- requests

  /** Sends messages now, in one payload, and resolves with their replies (in order). */
  protected async request (messages: Message[], timeoutMs: number): Promise<Message[]> {
    return await this.#request(messages, { timeoutMs })
  }

  async #request (messages: Message[], options: { timeoutMs: number, isConnect?: boolean, transport?: Transport }): Promise<Message[]> {
    const entries = messages.map((message) => this.newOutgoing(message))
    for (const entry of entries) this.#arm(entry, options.timeoutMs)
    void this.#dispatch(entries, options)
    return await Promise.all(entries.map(async (entry) => await entry.promise))
  }

  protected newOutgoing (message: Message): Outgoing {
    message.id ??= String(++this.#nextId)
    let resolve!: (reply: Message) => void
    let reject!: (error: Error) => void
    const promise = new Promise<Message>((res, rej) => { resolve = res; reject = rej })
    // (#settle marks a promise handled before rejecting it: a caller that stopped listening causes no unhandled rejection)
    return { message, promise, resolve, reject, settled: false, transport: null, authRetried: false, deadline: 0, timeoutMs: 0, prev: null, next: null }
  }

  /**
   * Starts the deadline of a request: the entry joins the deadline list (sorted; usually at the tail, as most
   * deadlines are equal) and one timer, set for the earliest deadline, serves every entry.
   */
  #arm (entry: Outgoing, timeoutMs: number): void {
    if (entry.deadline !== 0) this.#disarm(entry)
    entry.timeoutMs = timeoutMs
    entry.deadline = Date.now() + timeoutMs
    let after = this.#armedTail
    while (after !== null && after.deadline > entry.deadline) after = after.prev
    entry.prev = after
    entry.next = after === null ? this.#armedHead : after.next
    if (after === null) this.#armedHead = entry
    else after.next = entry
    if (entry.next === null) this.#armedTail = entry
    else entry.next.prev = entry
    if (entry.deadline < this.#deadlineAt) this.#setDeadlineTimer(entry.deadline)
  }

  #disarm (entry: Outgoing): void {
    if (entry.deadline === 0) return
    entry.deadline = 0
    if (entry.prev === null) this.#armedHead = entry.next
    else entry.prev.next = entry.next
    if (entry.next === null) this.#armedTail = entry.prev
    else entry.next.prev = entry.prev
    entry.prev = null
    entry.next = null
    // The timer is left alone: when it fires early it finds nothing due and is set again for the new earliest.
  }

  #setDeadlineTimer (at: number): void {
    if (this.#deadlineTimer !== null) clearTimeout(this.#deadlineTimer)
    this.#deadlineAt = at
    this.#deadlineTimer = setTimeout(() => { this.#expire() }, Math.max(1, at - Date.now()))
    this.#deadlineTimer.unref()
  }

  #expire (): void {
    this.#deadlineTimer = null
    this.#deadlineAt = Infinity
    const now = Date.now()
    let head = this.#armedHead
    while (head !== null && head.deadline <= now) {
      this.#timedOut(head)
      // #settle unlinked it; should it still be there (it cannot), unlink it so that the loop ends
      if (this.#armedHead === head) this.#disarm(head)
      head = this.#armedHead
    }
    if (head !== null) this.#setDeadlineTimer(head.deadline)
  }

  /** A deadline passed. When it passed while the request was on the wire, no socket is trusted again. */
  #timedOut (entry: Outgoing): void {
    const timeoutMs = entry.timeoutMs
    const queued = this.#outbox.indexOf(entry)
    if (queued >= 0) this.#outbox.splice(queued, 1)
    const onWire = entry.transport
    this.#settle(entry, null, new TransportTimeoutError(onWire === null
      ? `Not connected within ${timeoutMs} ms (${entry.message.channel})`
      : `No reply to ${entry.message.channel} within ${timeoutMs} ms`))
    // A stalled link looks exactly like this: drop every connection to that server.
    if (onWire !== null) onWire.reset('request timeout')
  }

  /** Queues a message for the next batch, sent while connected. `timeoutMs` also bounds the wait for a connection. */
  protected enqueue (entry: Outgoing, timeoutMs: number): void {
    this.#arm(entry, timeoutMs)
    this.#outbox.push(entry)
    this.#scheduleFlush()
  }

  #scheduleFlush (): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(() => {
      this.#flushScheduled = false
      this.#flush()
    })
  }

  /**
   * Moves queued messages to the wire: up to `maxBatchMessages` per dispatch (1 without autoBatch), at most
   * `transport.maxInFlight` dispatches at once (long-polling: one, so publishes reach the server in order).
   * Bytes are counted after the outgoing extensions, in #dispatch, which splits a batch over the byte cap.
   */
  #flush (): void {
    const transport = this.#transport
    if (this.#state !== ClientState.CONNECTED || transport === null) return
    const max = this.options.autoBatch ? this.options.maxBatchMessages : 1
    while (this.#outbox.length > 0 && this.#inFlight < transport.maxInFlight) {
      const batch = this.#outbox.length <= max ? this.#outbox : this.#outbox.slice(0, max)
      if (batch === this.#outbox) this.#outbox = []
      else this.#outbox.splice(0, max)
      this.#inFlight++
      void this.#dispatch(batch, {}).finally(() => {
        this.#inFlight--
        this.#scheduleFlush()
      })
    }
  }

  /** The byte cap of one request body or frame on this transport. */
  #byteCap (transport: Transport): number {
    const configured = this.options.maxBatchBytes ??
      (transport.type === 'websocket' ? DEFAULTS.maxFrameBytes : DEFAULTS.maxBatchBytes)
    return transport.type === 'long-polling' && this.#bodyCap !== null ? Math.min(configured, this.#bodyCap) : configured
  }

  /**
   * Sends one batch over the current (or given) transport: runs the outgoing extensions once, serializes each
   * message once (one that cannot be serialized fails alone), and sends the bodies one after another, each under
   * the byte cap. An HTTP 413 (the server read nothing) lowers the cap and the same messages go again, in order.
   * Never throws: every entry is settled or left to its reply.
   */
  async #dispatch (entries: Outgoing[], options: { isConnect?: boolean, transport?: Transport }): Promise<void> {
    const transport = options.transport ?? this.#transport
    if (entries.some((entry) => entry.settled)) entries = entries.filter((entry) => !entry.settled)
    if (entries.length === 0) return
    if (transport === null) {
      for (const entry of entries) this.#settle(entry, null, new TransportConnectionClosed('Not connected'))
      return
    }
    const controller = new AbortController()
    this.#controllers.add(controller)
    // Extensions may change or drop messages: they get copies, so that an entry's message stays as the user sent it.
    const copy = this.options.extensions.length > 0 || this.options.auth !== null
    const payload: Payload = new Array<Message>(entries.length)
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!
      const message = entry.message
      if (message.channel !== '/meta/handshake' && this.#clientId !== null) message.clientId = this.#clientId
      entry.transport = transport
      this.#pending.set(message.id!, entry)
      payload[i] = copy ? { ...message } : message
    }
    // owners[i]: the entry whose reply payload[i] awaits (null: a message an extension added)
    let owners: Array<Outgoing | null> = entries
    let unsent: Outgoing[] = entries
    try {
      const headers = await this.#outgoingHeaders()
      if (copy) {
        const copies = payload.slice()
        await this.#runOutgoing(payload, headers)
        if (payload.length !== copies.length || payload.some((m, i) => m !== copies[i])) {
          const ownerOf = new Map<Message, Outgoing>()
          for (let i = 0; i < copies.length; i++) ownerOf.set(copies[i]!, entries[i]!)
          owners = payload.map((m) => ownerOf.get(m) ?? null)
          const kept = new Set(owners)
          for (const entry of entries) {
            if (!kept.has(entry)) this.#settle(entry, null, new ClientError('The message was dropped by an extension'))
          }
        }
      }
      // Serialize once. Fast path: the whole payload in one call (about twice as fast as message by message). Message
      // by message when that throws (the unserializable message then fails alone, the others go) or when the body
      // has to be split (then the bodies are joined from the parts).
      const cap0 = this.#byteCap(transport)
      let messages: Message[] = payload
      let sent: Array<Outgoing | null> = owners
      let whole: string | null = null
      let parts: string[] = []
      if (!this.#splitting || payload.length === 1) {
        try {
          whole = this.options.stringify(payload)
        } catch {
          whole = null
        }
        if (whole !== null && payload.length > 1 && whole.length > cap0) {
          whole = null
          this.#splitting = true
        }
      }
      if (whole === null) {
        ({ parts, sent, messages } = this.#serializeEach(payload, owners))
        if (parts.length === 0) return
        let total = 1
        for (const part of parts) total += part.length + 1
        this.#splitting = total > cap0
      }
      this.counters.messagesOut += messages.length
      this.logger.trace({ channels: messages.map((m) => m.channel), type: transport.type }, 'send')
      const isConnect = options.isConnect ?? false
      let start = 0
      let maxCount = Infinity // halved by a 413, so that a retry is always smaller
      while (start < messages.length) {
        let end = messages.length
        if (whole === null) {
          const cap = this.#byteCap(transport)
          end = start + 1
          let bytes = 2 + parts[start]!.length
          while (end < parts.length && end - start < maxCount && bytes + 1 + parts[end]!.length <= cap) {
            bytes += 1 + parts[end]!.length
            end++
          }
        }
        const chunk = end - start === messages.length ? sent : sent.slice(start, end)
        unsent = sent.slice(start).filter((e): e is Outgoing => e !== null)
        // A later request of the batch: not after close(), nor when everything in it already failed (a dropped socket).
        if (controller.signal.aborted) throw controller.signal.reason
        if (start > 0 && chunk.every((e) => e === null || e.settled)) {
          start = end
          continue
        }
        const body = whole ?? (end - start === 1 ? `[${parts[start]!}]` : `[${parts.slice(start, end).join(',')}]`)
        const first = messages[start]!.channel
        let timeoutMs = 0
        for (const entry of chunk) {
          if (entry === null) continue
          timeoutMs = Math.max(timeoutMs, entry.message.channel === '/meta/connect'
            ? this.#advice.timeout + this.options.maxNetworkDelayMs
            : this.options.maxNetworkDelayMs)
        }
        try {
          await transport.send(end - start === messages.length ? messages : messages.slice(start, end), headers, {
            timeoutMs: timeoutMs === 0 ? this.options.maxNetworkDelayMs : timeoutMs,
            signal: controller.signal,
            isConnect,
            messageType: first.startsWith('/meta/') ? first.slice(6) : null,
            body
          })
        } catch (error) {
          if (!(error instanceof HttpStatusError && error.statusCode === 413 && !isConnect && !controller.signal.aborted)) throw error
          // The server refused the body unread: nothing of it was processed.
          if (end - start > 1) {
            this.#lowerBodyCap(body.length)
            maxCount = Math.ceil((end - start) / 2)
            if (whole !== null) {
              whole = null
              ;({ parts, sent, messages } = this.#serializeEach(messages, sent))
              if (parts.length === 0) return
            }
            continue
          }
          const owner = sent[start]
          if (owner != null) {
            this.#settle(owner, null, new MessageTooLargeError(
              `The message for ${first} (${body.length} bytes of JSON) is larger than the server accepts (HTTP 413)`, { cause: error }))
          }
          start = end
          continue
        }
        maxCount = Infinity
        if (transport.type === 'long-polling') {
          for (const entry of chunk) {
            if (entry !== null && !entry.settled) {
              this.#settle(entry, null, new TransportError(`The server did not reply to ${entry.message.channel} (id ${entry.message.id})`))
            }
          }
        }
        start = end
      }
    } catch (error) {
      const failure = toTransportError(error)
      const auth = this.options.auth
      let retry: Outgoing[] = []
      if (auth !== null && failure instanceof HttpStatusError && (failure.statusCode === 401 || failure.statusCode === 403) && !options.isConnect) {
        retry = unsent.filter((e) => !e.settled && !e.authRetried && e.message.channel !== '/meta/handshake')
        for (const entry of retry) this.#renew(entry)
      }
      const retried = new Set(retry)
      for (const entry of unsent) {
        if (!retried.has(entry)) this.#settle(entry, null, failure)
      }
      if (retry.length > 0) {
        await this.#authenticate().catch(() => {})
        await this.#dispatch(retry, options)
      }
    } finally {
      this.#controllers.delete(controller)
    }
  }

  /** Serializes message by message; one that cannot be serialized fails alone and is left out. */
  #serializeEach (payload: Message[], owners: Array<Outgoing | null>): { parts: string[], sent: Array<Outgoing | null>, messages: Message[] } {
    const parts: string[] = []
    const sent: Array<Outgoing | null> = []
    const messages: Message[] = []
    for (let i = 0; i < payload.length; i++) {
      const message = payload[i]!
      let part: string
      try {
        part = this.options.stringify(message)
      } catch (error) {
        // Data that cannot be serialized (a cycle, a BigInt, nesting deeper than the stack) fails alone.
        const owner = owners[i]
        if (owner != null) {
          this.#settle(owner, null, new MessageEncodingError(`The message for ${message.channel} cannot be serialized`, { cause: error }))
        }
        continue
      }
      parts.push(part)
      sent.push(owners[i] ?? null)
      messages.push(message)
    }
    return { parts, sent, messages }
  }

  /** An HTTP 413: halve the byte cap of this client's long-polling bodies (not below MIN_BODY_CAP). Logged once. */
  #lowerBodyCap (rejectedBytes: number): void {
    const before = this.#bodyCap
    this.#bodyCap = Math.max(MIN_BODY_CAP, Math.min(before ?? Infinity, Math.floor(rejectedBytes / 2)))
    if (before === null) {
      this.logger.warn({ rejectedBytes, maxBatchBytes: this.#bodyCap },
        'the server refused a request body as too large (HTTP 413): sending smaller batches from now on')
    }
  }

  /** Prepares an entry to be sent once more after re-authentication, under a new id. */
  #renew (entry: Outgoing): void {
    if (this.#pending.get(entry.message.id!) === entry) this.#pending.delete(entry.message.id!)
    entry.authRetried = true
    entry.transport = null
    entry.message.id = String(++this.#nextId)
  }

  #settle (entry: Outgoing, reply: Message | null, error: Error | null): void {
    if (entry.settled) return
    entry.settled = true
    this.#disarm(entry)
    const id = entry.message.id
    if (id !== undefined && this.#pending.get(id) === entry) this.#pending.delete(id)
    if (reply !== null) {
      entry.resolve(reply)
      return
    }
    entry.promise.catch(() => {}) // a caller that stopped listening must not cause an unhandled rejection
    entry.reject(error ?? new TransportError('request failed'))
  }

  async #outgoingHeaders (): Promise<Headers> {
    const option = this.options.headers
    if (option === undefined) return {}
    const value = typeof option === 'function' ? await option() : option
    return { ...value }
  }

  async #runOutgoing (payload: Payload, headers: Headers): Promise<void> {
    for (const extension of this.options.extensions) await extension.outgoing(payload, headers)
    if (this.options.auth !== null) await this.options.auth.outgoing(payload, headers)
  }

  // ---------------------------------------------------------------- receiving

  get #context (): TransportContext {
    const self = this
    return {
      url: new URL(this.url),
      cookies: this.#cookies,
      tls: this.options.tls,
      logger: this.logger,
      maxNetworkDelayMs: this.options.maxNetworkDelayMs,
      pingIntervalMs: this.options.pingIntervalMs,
      appendMessageTypeToURL: this.options.appendMessageTypeToURL,
      stringify: this.options.stringify,
      parse: (text) => parsePayload(text, this.options.parse),
      async receive (payload, headers, transport) { await self.#receive(payload, headers, transport) },
      closed (transport, error) { self.#transportClosed(transport, error) }
    }
  }

  #transportClosed (transport: Transport, error: Error): void {
    const failure = error instanceof TransportError ? error : new TransportConnectionClosed(error.message, { cause: error })
    for (const entry of [...this.#pending.values()]) {
      if (entry.transport === transport) this.#settle(entry, null, failure)
    }
  }

  async #receive (payload: Payload, headers: Headers | null, transport: Transport): Promise<void> {
    if (this.options.auth !== null) await this.options.auth.incoming(payload, headers)
    for (const extension of this.options.extensions) await extension.incoming(payload, headers)
    this.counters.messagesIn += payload.length
    this.counters.lastMessageAt = Date.now()
    for (const message of payload) {
      if (isReply(message)) {
        const entry = this.#matchReply(message)
        if (entry !== undefined) {
          if (!(message.successful === true) && authFailure(message) && this.options.auth !== null &&
              !entry.authRetried && !message.channel.startsWith('/meta/')) {
            // Re-authenticate and send once more with fresh headers.
            this.#renew(entry)
            void this.#authenticate().then(async () => await this.#dispatch([entry], {}))
              .catch((error: unknown) => this.#settle(entry, null, error as Error))
            continue
          }
          this.#settle(entry, message, null)
          continue
        }
        this.onUnmatchedReply(message)
        continue
      }
      if ('data' in message && !message.channel.startsWith('/meta/')) {
        try {
          this.onEvent(message)
        } catch (error) {
          this.logger.error({ err: error, channel: message.channel }, 'message dispatch failed')
        }
      }
    }
    void transport
  }

  /** By id; a reply without id (some servers omit it) goes to the oldest pending request on its channel. */
  #matchReply (reply: Message): Outgoing | undefined {
    if (reply.id !== undefined) {
      const entry = this.#pending.get(reply.id)
      if (entry !== undefined && entry.message.channel === reply.channel) return entry
      return undefined
    }
    for (const entry of this.#pending.values()) {
      if (entry.message.channel === reply.channel) return entry
    }
    return undefined
  }

  // ---------------------------------------------------------------- hooks for Client

  protected onOpen (): void {}
  /** open() succeeded: called just before the state becomes connected (listeners may use the client). */
  protected onOpened (): void {}
  protected onStateChange (_change: StateChange): void {}
  protected onEvent (_message: Message): void {}
  protected onUnmatchedReply (_message: Message): void {}
  /** The server lost the session: subscriptions must be sent again after the next handshake. */
  protected onSessionLost (): void {}
  /** A re-handshake succeeded: restore subscriptions (runs alongside the first connect). */
  protected onRehandshake (_gen: number): void {}
  /** The connection is (again) usable. */
  protected onConnected (): void {}
  protected onRelease (_error: Error): void {}
}

function toTransportError (error: unknown): CometdError {
  if (error instanceof CometdError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new TransportError(message, { cause: error })
}
