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
  ClientError, ClientInvalidOperation, CometdError, HttpStatusError, MessageEncodingError, ServerError, TransportConnectionClosed,
  TransportError, TransportTimeoutError, WebSocketUpgradeError
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
  /** the deadline: from enqueue (or send) to reply, retries included */
  timer: NodeJS.Timeout | null
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
  advice: { timeout: number, interval: number }
  handshakeProps: Record<string, unknown>
}

interface CurrentAdvice { reconnect: 'retry' | 'handshake' | 'none', timeout: number, interval: number, maxInterval: number }

/** The largest batch sent in one request: Salesforce refuses bodies over 32,768 bytes. */
const MAX_BATCH_MESSAGES = 100
const MAX_BATCH_BYTES = 30_000

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
    promise.catch(() => {}) // a caller that stopped listening must not cause an unhandled rejection
    return { message, promise, resolve, reject, settled: false, transport: null, authRetried: false, timer: null }
  }

  /** Starts the deadline of a request. When it passes while the request is on the wire, no socket is trusted again. */
  #arm (entry: Outgoing, timeoutMs: number): void {
    entry.timer = setTimeout(() => {
      const queued = this.#outbox.indexOf(entry)
      if (queued >= 0) this.#outbox.splice(queued, 1)
      const onWire = entry.transport
      this.#settle(entry, null, new TransportTimeoutError(onWire === null
        ? `Not connected within ${timeoutMs} ms (${entry.message.channel})`
        : `No reply to ${entry.message.channel} within ${timeoutMs} ms`))
      // A stalled link looks exactly like this: drop every connection to that server.
      if (onWire !== null) onWire.reset('request timeout')
    }, timeoutMs)
    entry.timer.unref()
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

  #flush (): void {
    const transport = this.#transport
    if (this.#state !== ClientState.CONNECTED || transport === null) return
    while (this.#outbox.length > 0 && this.#inFlight < transport.maxInFlight) {
      const batch: Outgoing[] = []
      let bytes = 0
      while (this.#outbox.length > 0 && batch.length < (this.options.autoBatch ? MAX_BATCH_MESSAGES : 1)) {
        const next = this.#outbox[0]!
        let size: number
        try {
          size = this.options.stringify(next.message).length
        } catch (error) {
          // Data that cannot be serialized (a cycle, a BigInt, nesting deeper than the stack) fails alone.
          this.#outbox.shift()
          this.#settle(next, null, new MessageEncodingError(`The message for ${next.message.channel} cannot be serialized`, { cause: error }))
          continue
        }
        if (batch.length > 0 && bytes + size > MAX_BATCH_BYTES) break
        bytes += size
        batch.push(this.#outbox.shift()!)
      }
      this.#inFlight++
      void this.#dispatch(batch, {}).finally(() => {
        this.#inFlight--
        this.#scheduleFlush()
      })
    }
  }

  /** Sends one payload over the current (or given) transport. Never throws: every entry is settled or left to its reply. */
  async #dispatch (entries: Outgoing[], options: { isConnect?: boolean, transport?: Transport }): Promise<void> {
    const transport = options.transport ?? this.#transport
    entries = entries.filter((entry) => !entry.settled)
    if (entries.length === 0) return
    if (transport === null) {
      for (const entry of entries) this.#settle(entry, null, new TransportConnectionClosed('Not connected'))
      return
    }
    const controller = new AbortController()
    this.#controllers.add(controller)
    const copies: Message[] = []
    for (const entry of entries) {
      const message = entry.message
      if (message.channel !== '/meta/handshake' && this.#clientId !== null) message.clientId = this.#clientId
      entry.transport = transport
      this.#pending.set(message.id!, entry)
      copies.push({ ...message })
    }
    const payload: Payload = [...copies]
    try {
      const headers = await this.#outgoingHeaders()
      await this.#runOutgoing(payload, headers)
      if (payload.length !== copies.length || payload.some((m, i) => m !== copies[i])) {
        const kept = new Set(payload)
        for (const [i, entry] of entries.entries()) {
          if (!kept.has(copies[i]!)) this.#settle(entry, null, new ClientError('The message was dropped by an extension'))
        }
      }
      if (payload.length === 0) return
      this.counters.messagesOut += payload.length
      this.logger.trace({ channels: payload.map((m) => m.channel), type: transport.type }, 'send')
      const first = payload[0]!.channel
      await transport.send(payload, headers, {
        timeoutMs: entries.reduce((max, e) => Math.max(max, e.message.channel === '/meta/connect' ? this.#advice.timeout + this.options.maxNetworkDelayMs : this.options.maxNetworkDelayMs), 0),
        signal: controller.signal,
        isConnect: options.isConnect ?? false,
        messageType: first.startsWith('/meta/') ? first.slice(6) : null
      })
      if (transport.type === 'long-polling') {
        for (const entry of entries) {
          if (!entry.settled) this.#settle(entry, null, new TransportError(`The server did not reply to ${entry.message.channel} (id ${entry.message.id})`))
        }
      }
    } catch (error) {
      const failure = toTransportError(error)
      const auth = this.options.auth
      let retry: Outgoing[] = []
      if (auth !== null && failure instanceof HttpStatusError && (failure.statusCode === 401 || failure.statusCode === 403) && !options.isConnect) {
        retry = entries.filter((e) => !e.settled && !e.authRetried && e.message.channel !== '/meta/handshake')
        for (const entry of retry) this.#renew(entry)
      }
      for (const entry of entries) {
        if (!retry.includes(entry)) this.#settle(entry, null, failure)
      }
      if (retry.length > 0) {
        await this.#authenticate().catch(() => {})
        await this.#dispatch(retry, options)
      }
    } finally {
      this.#controllers.delete(controller)
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
    if (entry.timer !== null) clearTimeout(entry.timer)
    const id = entry.message.id
    if (id !== undefined && this.#pending.get(id) === entry) this.#pending.delete(id)
    if (reply !== null) entry.resolve(reply)
    else entry.reject(error ?? new TransportError('request failed'))
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
