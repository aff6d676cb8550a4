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
import { Backoff } from './backoff.js'
import {
  ClientError, ClientInvalidOperation, CometdError, HttpStatusError, ServerError, TransportError, WebSocketUpgradeError
} from './errors.js'
import { ClientState } from './events.js'
import type { ClientEvents, ClientStats, StateChange } from './events.js'
import { Extension } from './extensions.js'
import type { Headers } from './extensions.js'
import type { ClientOptions, ConnectionType, Logger } from './options.js'
import { Outbox } from './outbox.js'
import type { Outgoing, OutboxHost } from './outgoing.js'
import { parsePayload } from './protocol/codec.js'
import { isReply } from './protocol/message.js'
import type { Message, Payload } from './protocol/message.js'
import {
  adviceFrom, authFailure, initialAdvice, limitError, resolveOptions, resolveUrl, silentLogger, unknownSession
} from './session-options.js'
import type { CurrentAdvice, ResolvedOptions } from './session-options.js'
import { LongPollingTransport } from './transport/long-polling.js'
import { SessionCookieJar } from './transport/transport.js'
import type { Transport, TransportContext } from './transport/transport.js'
import { proxyFor } from './proxy.js'
import { WebSocketTransport } from './transport/websocket.js'

export type { Outgoing } from './outgoing.js'
export { unknownSession } from './session-options.js'

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
  #cookies = new SessionCookieJar()
  #advice: CurrentAdvice
  /** requests: queue, batching, deadlines, reply correlation */
  readonly #outbox: Outbox
  /** the incoming hooks to await on every payload: auth, then the extensions; those that do not override incoming() are left out */
  readonly #incomingHooks: Extension[]
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
    this.url = resolveUrl(url)
    this.options = resolveOptions(options)
    this.logger = options.logger ?? silentLogger
    this.#backoff = new Backoff(options.backoff)
    this.#advice = initialAdvice(this.options)
    this.#incomingHooks = [...(this.options.auth === null ? [] : [this.options.auth]), ...this.options.extensions]
      .filter((extension) => extension.incoming !== Extension.prototype.incoming)
    const self = this
    const host: OutboxHost = {
      options: this.options,
      logger: this.logger,
      counters: this.counters,
      get transport () { return self.#transport },
      get connected () { return self.#state === ClientState.CONNECTED },
      get clientId () { return self.#clientId },
      get connectHoldMs () { return self.#advice.timeout },
      authenticate: async () => { await this.#authenticate() }
    }
    this.#outbox = new Outbox(host)
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
    this.#cookies = new SessionCookieJar()
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
    this.#advice = initialAdvice(this.options)
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
    this.#outbox.abortAll(new ClientInvalidOperation('The client is closing'))
    if (wasConnected && this.#clientId !== null && this.#transport !== null) {
      try {
        await this.#outbox.request([{ channel: '/meta/disconnect' }], { timeoutMs: this.options.maxNetworkDelayMs })
      } catch (error) {
        this.logger.debug({ err: error }, '/meta/disconnect failed; closing anyway')
      }
    }
    await this.#release(gen, new ClientInvalidOperation('The client was closed'), 'close')
  }

  /** Drops everything of this open(): requests, timers, transports. */
  async #release (gen: number, error: Error, reason: string): Promise<void> {
    if (this.gen === gen) this.gen++
    this.#outbox.release(error)
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
    let [reply] = await this.#outbox.request([message], { timeoutMs: this.options.maxNetworkDelayMs, transport })
    if (reply !== undefined && reply.successful !== true && this.options.auth !== null && authFailure(reply)) {
      await this.#authenticate()
      const again = { ...message }
      delete again.id
      ;[reply] = await this.#outbox.request([again], { timeoutMs: this.options.maxNetworkDelayMs, transport })
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
    const [reply] = await this.#outbox.request([message], { timeoutMs: held + this.options.maxNetworkDelayMs, isConnect: true })
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
          await this.#connectionLost('network', error as Error)
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
        await this.#connectionLost('internal', error as Error)
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
        await this.#connectionLost('session-unknown', error, limitError(reply))
      } else {
        this.#markDown()
        this.emit('transportError', error)
      }
      return
    }
    await this.#connectionLost('connect-failed', error, limitError(reply))
  }

  #markDown (): void {
    this.#downSince ??= Date.now()
  }

  /** The connection is down: report it, wait a backoff delay, decide whether the session can still be alive. */
  async #connectionLost (reason: string, error: Error, hard = false): Promise<void> {
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
        await this.#connectionLost('handshake-failed', error, limitError(reply))
        return
      }
      if (error instanceof ClientError) {
        await this.#terminate(gen, error)
        return
      }
      await this.#connectionLost('handshake-failed', error as Error)
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
      this.#outbox.scheduleFlush()
    }
  }

  #updateAdvice (reply: Message): void {
    const advice = reply.advice
    if (advice === undefined || (reply.channel !== '/meta/connect' && reply.channel !== '/meta/handshake')) return
    this.#advice = adviceFrom(advice, this.options.advice)
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
    return await this.#outbox.request(messages, { timeoutMs })
  }

  protected newOutgoing (message: Message): Outgoing {
    return this.#outbox.newOutgoing(message)
  }

  /** Queues a message for the next batch, sent while connected. `timeoutMs` also bounds the wait for a connection. */
  protected enqueue (entry: Outgoing, timeoutMs: number): void {
    this.#outbox.enqueue(entry, timeoutMs)
  }

  // ---------------------------------------------------------------- receiving

  get #context (): TransportContext {
    const self = this
    return {
      url: new URL(this.url),
      proxy: proxyFor(this.options.proxy, new URL(this.url)),
      cookies: this.#cookies,
      tls: this.options.tls,
      logger: this.logger,
      maxNetworkDelayMs: this.options.maxNetworkDelayMs,
      pingIntervalMs: this.options.pingIntervalMs,
      appendMessageTypeToURL: this.options.appendMessageTypeToURL,
      stringify: this.options.stringify,
      parse: (text) => parsePayload(text, this.options.parse),
      receive (payload, headers) { return self.#receive(payload, headers) },
      closed (transport, error) { self.#outbox.transportClosed(transport, error) }
    }
  }

  /**
   * A received payload. Without incoming hooks to await it is delivered synchronously and nothing is returned, so
   * a burst of websocket frames costs no promise per frame; otherwise the hooks run in order (auth first), then it is
   * delivered.
   */
  #receive (payload: Payload, headers: Headers | null): void | Promise<void> {
    if (this.#incomingHooks.length === 0) {
      this.#deliver(payload)
      return
    }
    return this.#receiveAfterHooks(payload, headers)
  }

  async #receiveAfterHooks (payload: Payload, headers: Headers | null): Promise<void> {
    for (const extension of this.#incomingHooks) await extension.incoming(payload, headers)
    this.#deliver(payload)
  }

  #deliver (payload: Payload): void {
    this.counters.messagesIn += payload.length
    this.counters.lastMessageAt = Date.now()
    for (const message of payload) {
      if (isReply(message)) {
        const entry = this.#outbox.matchReply(message)
        if (entry !== undefined) {
          if (!(message.successful === true) && authFailure(message) && this.options.auth !== null &&
              !entry.authRetried && !message.channel.startsWith('/meta/')) {
            // Re-authenticate and send once more with fresh headers.
            this.#outbox.retryAfterAuth(entry)
            continue
          }
          this.#outbox.settle(entry, message, null)
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
