/**
 * The Bayeux session engine: one state field changed through `setState()`, the handshake, the advice-driven
 * /meta/connect loop and reconnection (backoff with full jitter; re-handshake on an unknown session). Its parts
 * each read the session through a narrow host: Outbox (requests), Inbox (received payloads), Transports
 * (negotiation), reconnect.ts (what to do after a refusal). `Client` (client.ts) adds the user API —
 * subscriptions, publish, receive — on top of the hooks at the end of this class.
 *
 * A generation counter (`gen`) is bumped by every open() and close(): loops and callbacks of an older generation
 * see the change and stop, so a late reply can never act on a newer session.
 */
import { EventEmitter } from 'node:events'
import { Authenticator } from './authenticator.js'
import { Backoff } from './backoff.js'
import { throughGate } from './connect-gate.js'
import { ClientInvalidOperation, CometdError, ServerError, TransportError } from './errors.js'
import { ClientState } from './events.js'
import type { ClientEvents, ClientStats, StateChange } from './events.js'
import { Inbox } from './inbox.js'
import type { ClientOptions, ConnectionType, Logger } from './options.js'
import { Outbox } from './outbox.js'
import type { Outgoing, OutboxHost } from './outgoing.js'
import type { Message } from './protocol/message.js'
import { connectRejection, handshakeFailure, lostWait } from './reconnect.js'
import { adviceAfter, authFailure, credentialsRefused, initialAdvice, resolveOptions, resolveUrl, silentLogger } from './session-options.js'
import type { CurrentAdvice, ResolvedOptions } from './session-options.js'
import { Sleeps } from './sleeps.js'
import type { Transport } from './transport/transport.js'
import { Transports } from './transports.js'

export type { Outgoing } from './outgoing.js'
export { unknownSession } from './session-options.js'

export class BayeuxSession extends EventEmitter<ClientEvents> {
  readonly url: string
  protected readonly options: ResolvedOptions
  protected readonly logger: Logger
  protected gen = 0
  #state: ClientState = ClientState.DISCONNECTED
  #clientId: string | null = null
  /** negotiation: the transports by type, the current one, a refused websocket upgrade */
  readonly #transports: Transports
  #advice: CurrentAdvice
  /** requests: queue, batching, deadlines, reply correlation */
  readonly #outbox: Outbox
  /** received payloads: incoming hooks, replies to the outbox, events to the client */
  readonly #inbox: Inbox
  /** the waits of the connect loop, ended all at once by #release */
  readonly #sleeps = new Sleeps()
  #backoff: Backoff
  #firstConnect = true
  #needHandshake = false
  #rehandshakesWithoutConnect = 0
  #downSince: number | null = null
  #closing: Promise<void> | null = null
  readonly #auth: Authenticator
  /** aborted by #release: a wait for a connect-gate turn ends with the session */
  #attempts = new AbortController()
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
    this.#auth = new Authenticator(this.options.auth, this.logger)
    const self = this
    const common = { options: this.options, logger: this.logger, counters: this.counters }
    const host: OutboxHost = {
      ...common,
      get transport () { return self.#transports.current },
      get connected () { return self.#state === ClientState.CONNECTED },
      get clientId () { return self.#clientId },
      get connectHoldMs () { return self.#advice.timeout },
      authenticate: async () => { await this.#auth.authenticate() }
    }
    this.#outbox = new Outbox(host)
    this.#inbox = new Inbox({
      ...common,
      outbox: this.#outbox,
      onEvent: (message) => { this.onEvent(message) },
      onUnmatchedReply: (message) => { this.onUnmatchedReply(message) }
    })
    this.#transports = new Transports({
      ...common,
      url: this.url,
      receive: (payload, headers) => this.#inbox.receive(payload, headers),
      closed: (transport, error) => { this.#outbox.transportClosed(transport, error) },
      transportError: (error) => { this.emit('transportError', error) }
    })
  }

  // ---------------------------------------------------------------- observable state

  get state (): ClientState { return this.#state }
  get clientId (): string | null { return this.#clientId }
  get connectionType (): ConnectionType | null { return this.#transports.current?.type ?? null }
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
    this.#transports.reset()
    this.#clientId = null
    this.#downSince = null
    this.#needHandshake = false
    this.#rehandshakesWithoutConnect = 0
    this.#firstConnect = true
    this.#backoff.reset()
    this.#attempts = new AbortController()
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
      this.#advice = adviceAfter(reply, this.#advice, this.options.advice, this.logger)
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
    if (wasConnected && this.#clientId !== null && this.#transports.current !== null) {
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
    this.#attempts.abort(error)
    this.#outbox.release(error)
    this.#sleeps.releaseAll()
    this.#clientId = null
    await this.#transports.closeAll()
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

  /** Handshakes over the preferred transport, falling back to long-polling when the websocket upgrade fails. */
  async #handshake (gen: number, rehandshake: boolean): Promise<void> {
    this.#clientId = null
    const candidates = this.#transports.candidates()
    // each try is a connection to the origin: one turn of the connect gate each (a refused websocket try does not
    // bring a long-polling try at once)
    const { reply, used } = await this.#transports.firstReply(
      candidates, async (transport) => await this.#gated(async () => await this.#handshakeOn(transport)), () => { this.#checkGen(gen) })
    this.#checkGen(gen)
    this.#advice = adviceAfter(reply, this.#advice, this.options.advice, this.logger)
    if (reply.successful !== true) throw new ServerError('Handshake request failed.', reply)
    if (typeof reply.clientId !== 'string' || reply.clientId === '') {
      throw new TransportError('The handshake reply has no clientId')
    }
    const chosen = this.#transports.choose(reply, used, candidates)
    this.#clientId = reply.clientId
    this.#firstConnect = true
    this.counters.handshakes++
    this.logger.info({ clientId: reply.clientId, connectionType: chosen, rehandshake }, 'handshake successful')
    this.emit('handshake', { clientId: reply.clientId, connectionType: chosen, rehandshake, reply })
  }

  async #handshakeOn (transport: Transport): Promise<Message> {
    const message = this.#transports.handshakeMessage()
    let [reply] = await this.#outbox.request([message], { timeoutMs: this.options.maxNetworkDelayMs, transport })
    if (reply !== undefined && reply.successful !== true && this.options.auth !== null && authFailure(reply)) {
      await this.#auth.authenticate()
      const again = { ...message }
      delete again.id
      ;[reply] = await this.#outbox.request([again], { timeoutMs: this.options.maxNetworkDelayMs, transport })
    }
    if (reply === undefined) throw new TransportError('No reply to the handshake')
    return reply
  }

  // ---------------------------------------------------------------- the /meta/connect loop

  async #sendConnect (): Promise<Message> {
    const message: Message = { channel: '/meta/connect', connectionType: this.#transports.current?.type ?? 'long-polling' }
    const held = this.#firstConnect ? 0 : this.#advice.timeout
    if (this.#firstConnect) message.advice = { timeout: 0 }
    const reply = (await this.#outbox.request([message], { timeoutMs: held + this.options.maxNetworkDelayMs, isConnect: true }))[0]
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
        if (interval > 0) await this.#sleeps.sleep(interval)
        if (this.gen !== gen) return
        let reply: Message
        try {
          // after a loss each connect is an attempt at the origin: paced by the connect gate while it refuses
          reply = this.#state === ClientState.CONNECTED ? await this.#sendConnect() : await this.#gated(async () => await this.#sendConnect())
        } catch (error) {
          if (this.gen !== gen) return
          await this.#connectionLost('network', error as Error)
          continue
        }
        if (this.gen !== gen) return
        this.#advice = adviceAfter(reply, this.#advice, this.options.advice, this.logger)
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
    const { action, authenticate, hard } = connectRejection(reply, this.options.auth !== null)
    if (authenticate) await this.#auth.authenticateOrWarn()
    if (action === 'none') {
      await this.#terminate(gen, new ServerError('Connection closed by the server', reply))
      return
    }
    if (action === 'handshake') {
      this.#needHandshake = true
      if (this.#rehandshakesWithoutConnect > 0 || hard) {
        await this.#connectionLost('session-unknown', error, hard)
      } else {
        this.#markDown()
        this.emit('transportError', error)
      }
      return
    }
    await this.#connectionLost('connect-failed', error, hard)
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
    if (error instanceof TransportError) this.#transports.current?.reset(reason)
    const { delayMs: delay, paced, expired } = lostWait(this.options.connectGate, this.#backoff, this.#advice, this.#downSince, hard)
    if (expired) this.#needHandshake = true
    // every refusal of the credentials is told to the auth extension, so the next attempt has a fresh token
    if (this.options.auth !== null && credentialsRefused(error)) {
      await this.#auth.authenticateOrWarn()
    }
    this.setState(ClientState.RECONNECTING, reason, { error: cometdError, delayMs: delay })
    if (!paced) await this.#sleeps.sleep(delay)
  }

  /** One attempt at the origin, through the connect gate (if any). */
  async #gated<T> (attempt: () => Promise<T>): Promise<T> {
    return await throughGate(this.options.connectGate, this.#attempts.signal, attempt)
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
      const failure = handshakeFailure(error, this.options.auth !== null)
      if (failure.action === 'none') await this.#terminate(gen, error as CometdError)
      else await this.#connectionLost('handshake-failed', error as Error, failure.hard)
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
