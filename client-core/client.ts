/**
 * The public CometD client: aiocometd's API (open/close/subscribe/unsubscribe/publish/receive, async iteration)
 * plus push listeners, remote calls and observable state, on the session engine of session.ts.
 *
 * Subscriptions are the client's wish list: a subscription stays registered from subscribe() until
 * unsubscribe() (or until the server refuses it) and is sent again, with its `ext` computed afresh, after every
 * re-handshake. Events reach the listeners given to subscribe() synchronously; subscriptions without a listener
 * feed the bounded receive buffer read by receive() / `for await`.
 */
import { ClientError, ClientInvalidOperation, CometdError, ServerError } from './errors.js'
import { ClientState } from './events.js'
import type { StateChange } from './events.js'
import type { ClientOptions } from './options.js'
import { assertChannel, channelKind, ChannelRouter } from './protocol/channel.js'
import type { Message } from './protocol/message.js'
import { BoundedQueue } from './queue.js'
import { RemoteCalls } from './remote-calls.js'
import { Receiver } from './receiver.js'
import type { ReceiverHost } from './receiver.js'
import { BayeuxSession } from './session.js'

export type MessageListener = (message: Message) => void

export interface SubscribeOptions {
  /** `ext` for the /meta/subscribe message; a function is called for every (re)subscribe (e.g. a replay position). */
  ext?: Record<string, unknown> | (() => Record<string, unknown> | undefined)
  /** deadline for the server's confirmation, ms (default maxNetworkDelayMs) */
  timeoutMs?: number
}

export interface PublishOptions {
  ext?: Record<string, unknown>
  /** deadline, including any wait for the connection to come back, ms (default maxNetworkDelayMs) */
  timeoutMs?: number
}

interface Subscription {
  channel: string
  listeners: Set<MessageListener>
  /** how many subscribe() calls without a listener hold it (those feed receive()) */
  queued: number
  confirmed: boolean
  ext: SubscribeOptions['ext']
  inflight: Promise<void> | null
}

export class Client extends BayeuxSession implements AsyncIterable<Message> {
  /** by channel or pattern; also answers which subscriptions an event's channel matches (bounded cache) */
  readonly #subs = new ChannelRouter<Subscription>()
  readonly #calls = new RemoteCalls()
  #queue: BoundedQueue<Message>
  readonly #receivers = new Set<Receiver>()
  readonly #receiverHost: ReceiverHost = ((client: Client) => ({
    get downSince () { return client.downSince },
    get connected () { return client.state === ClientState.CONNECTED },
    get connectionTimeoutMs () { return client.options.connectionTimeoutMs }
  }))(this)
  #open = false

  constructor (url: string, options: ClientOptions = {}) {
    super(url, options)
    this.#queue = new BoundedQueue(this.options.maxPendingCount)
  }

  /** True until open() succeeds, and again after close() or after the server ended the session. */
  get closed (): boolean { return !this.#open }
  /** Channels the server has confirmed. */
  get subscriptions (): ReadonlySet<string> {
    return new Set([...this.#subs.values()].filter((s) => s.confirmed).map((s) => s.channel))
  }

  /** Every subscription the client holds, confirmed or waiting to be (re)sent. */
  get requestedSubscriptions (): ReadonlySet<string> { return new Set(this.#subs.keys()) }
  get pendingCount (): number { return this.#queue.size }
  get hasPendingMessages (): boolean { return this.#queue.size > 0 }

  protected override onOpened (): void {
    this.#open = true
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.close()
  }

  // ---------------------------------------------------------------- subscriptions

  /**
   * Subscribes to a channel or pattern (`/a/*`, `/a/**`) and resolves when the server confirmed. With a listener,
   * matching events are pushed to it; without, they go to receive(). A refused subscription (ServerError) is
   * dropped; one that failed on the network stays registered and is sent again when the connection is back.
   */
  async subscribe (channel: string, listener?: MessageListener, options: SubscribeOptions = {}): Promise<void> {
    this.#assertOpen()
    assertChannel(channel, true)
    if (channelKind(channel) === 'meta') throw new ClientError(`Cannot subscribe to a meta channel (${channel})`)
    let sub = this.#subs.get(channel)
    if (sub === undefined) {
      sub = { channel, listeners: new Set(), queued: 0, confirmed: false, ext: options.ext, inflight: null }
      this.#subs.set(channel, sub)
    } else if (options.ext !== undefined) {
      sub.ext = options.ext
    }
    if (listener !== undefined) sub.listeners.add(listener)
    else sub.queued++
    if (sub.confirmed) return
    try {
      await this.#sendSubscribe(sub, options.timeoutMs)
    } catch (error) {
      if (error instanceof ServerError) {
        if (listener !== undefined) sub.listeners.delete(listener)
        else sub.queued = Math.max(0, sub.queued - 1)
        if (sub.listeners.size === 0 && sub.queued === 0 && this.#subs.get(channel) === sub) this.#subs.delete(channel)
      }
      throw error
    }
  }

  #sendSubscribe (sub: Subscription, timeoutMs = this.options.maxNetworkDelayMs): Promise<void> {
    sub.inflight ??= (async () => {
      for (let attempt = 0; ; attempt++) {
        const reply = await this.#send(this.#subscribeMessage(sub), timeoutMs)
        if (this.#subs.get(sub.channel) !== sub) return
        if (reply.successful === true) {
          sub.confirmed = true
          return
        }
        if (attempt === 0 && await this.#retrySubscribe(sub.channel, reply)) continue
        this.#subs.delete(sub.channel)
        throw new ServerError('Subscribe request failed.', reply)
      }
    })().finally(() => { sub.inflight = null })
    return sub.inflight
  }

  /** Asks the extensions whether a refused subscription deserves one more try (e.g. a replay fallback). */
  async #retrySubscribe (channel: string, reply: Message): Promise<boolean> {
    let retry = false
    for (const extension of this.options.extensions) {
      if (await extension.subscribeFailed(channel, reply)) retry = true
    }
    return retry
  }

  #subscribeMessage (sub: Subscription): Message {
    const message: Message = { channel: '/meta/subscribe', subscription: sub.channel }
    const ext = typeof sub.ext === 'function' ? sub.ext() : sub.ext
    if (ext !== undefined) message.ext = { ...ext }
    return message
  }

  /** Removes a listener (or, without one, the whole subscription) and unsubscribes upstream when nothing is left. */
  async unsubscribe (channel: string, listener?: MessageListener, options: { timeoutMs?: number } = {}): Promise<void> {
    this.#assertOpen()
    assertChannel(channel, true)
    const sub = this.#subs.get(channel)
    if (sub === undefined) throw new ClientError(`Not subscribed to ${channel}`)
    if (listener !== undefined) sub.listeners.delete(listener)
    else { sub.listeners.clear(); sub.queued = 0 }
    if (sub.listeners.size > 0 || sub.queued > 0) return
    this.#subs.delete(channel)
    if (!sub.confirmed && sub.inflight === null) return
    if (this.state !== ClientState.CONNECTED) return // the server forgets it with the session, or ignores its events
    const reply = await this.#send({ channel: '/meta/unsubscribe', subscription: channel }, options.timeoutMs)
    if (reply.successful !== true) throw new ServerError('Unsubscribe request failed.', reply)
  }

  /** After a re-handshake: every subscription in one batch, sent alongside the first connect. */
  protected override onRehandshake (gen: number): void {
    const subs = [...this.#subs.values()]
    if (subs.length === 0) return
    const messages = subs.map((sub) => this.#subscribeMessage(sub))
    void this.request(messages, this.options.maxNetworkDelayMs).then((replies) => {
      if (this.gen !== gen) return
      replies.forEach((reply, i) => {
        const sub = subs[i]!
        if (this.#subs.get(sub.channel) !== sub) return
        if (reply.successful === true) {
          sub.confirmed = true
          return
        }
        void this.#retrySubscribe(sub.channel, reply).then(async (retry) => {
          if (retry && this.gen === gen && this.#subs.get(sub.channel) === sub) {
            await this.#sendSubscribe(sub)
            return
          }
          throw new ServerError('Subscribe request failed.', reply)
        }).catch((error: unknown) => {
          if (this.gen !== gen || !(error instanceof ServerError)) return
          if (this.#subs.get(sub.channel) === sub) this.#subs.delete(sub.channel)
          this.#resubscribeFailed(sub.channel, error)
        })
      })
    }, (error: unknown) => {
      if (this.gen !== gen) return
      // Still registered: sent again once connected (onConnected).
      for (const sub of subs) this.#resubscribeFailed(sub.channel, error as CometdError, false)
    })
  }

  #resubscribeFailed (channel: string, error: CometdError, dropped = true): void {
    this.counters.resubscribeFailures++
    this.logger.warn({ channel, err: error, dropped }, 'resubscription failed')
    this.emit('resubscribeFailed', { channel, error, dropped })
  }

  protected override onSessionLost (): void {
    for (const sub of this.#subs.values()) sub.confirmed = false
  }

  /** Connected (again): send whatever subscription is not confirmed and not on its way. */
  protected override onConnected (): void {
    for (const sub of this.#subs.values()) {
      if (!sub.confirmed && sub.inflight === null) {
        this.#sendSubscribe(sub).catch((error: unknown) => {
          if (error instanceof ServerError) this.#resubscribeFailed(sub.channel, error)
        })
      }
    }
  }

  // ---------------------------------------------------------------- publish and remote calls

  /** Publishes and resolves with the server's reply. ServerError when refused. */
  async publish (channel: string, data: unknown, options: PublishOptions = {}): Promise<Message> {
    this.#assertOpen()
    assertChannel(channel, false)
    if (channelKind(channel) === 'meta') throw new ClientError(`Publishing to a meta channel is not allowed (${channel})`)
    const message: Message = { channel, data }
    if (options.ext !== undefined) message.ext = { ...options.ext }
    const reply = await this.#send(message, options.timeoutMs)
    if (reply.successful !== true) {
      throw new ServerError(channelKind(channel) === 'service' ? 'Service request failed.' : 'Publish request failed.', reply)
    }
    return reply
  }

  /**
   * Request/response over a /service channel: publishes `data` and resolves with the `data` of the server's answer
   * (the message with the same id, or the next one on that channel when the server leaves the id out).
   * TransportTimeoutError after `timeoutMs` (default maxNetworkDelayMs). Faye cannot answer these.
   */
  async remoteCall (channel: string, data: unknown, options: { timeoutMs?: number } = {}): Promise<unknown> {
    this.#assertOpen()
    const target = channel.startsWith('/') ? channel : `/service/${channel}`
    assertChannel(target, false)
    if (channelKind(target) !== 'service') throw new ClientError(`A remote call goes to a /service channel (${target})`)
    const timeoutMs = options.timeoutMs ?? this.options.maxNetworkDelayMs
    const entry = this.newOutgoing({ channel: target, data })
    const id = entry.message.id!
    const answer = this.#calls.await(id, target, timeoutMs)
    this.enqueue(entry, timeoutMs)
    let reply: Message
    try {
      reply = await entry.promise
    } catch (error) {
      this.#calls.end(id)
      throw error
    }
    if (reply.successful !== true) {
      this.#calls.end(id)
      throw new ServerError('Service request failed.', reply)
    }
    return await answer
  }

  /** The reply's promise itself (no async frame of its own: every caller awaits it inside an async function). */
  #send (message: Message, timeoutMs = this.options.maxNetworkDelayMs): Promise<Message> {
    const entry = this.newOutgoing(message)
    this.enqueue(entry, timeoutMs)
    return entry.promise
  }

  protected override onUnmatchedReply (message: Message): void {
    // An unsuccessful message answering a remote call whose publish was already acknowledged.
    this.#calls.refused(message)
  }

  // ---------------------------------------------------------------- incoming events

  protected override onEvent (message: Message): void {
    const channel = message.channel
    const service = channelKind(channel) === 'service'
    if (service && this.#calls.answer(message)) return
    const subs = this.#subs.match(channel)
    let toQueue = false
    for (let i = 0; i < subs.length; i++) {
      const sub = subs[i]!
      // A listener of an earlier subscription may have dropped this one: it gets nothing more.
      if (i > 0 && this.#subs.get(sub.channel) !== sub) continue
      if (sub.queued > 0) toQueue = true
      for (const listener of sub.listeners) {
        try {
          listener(message)
        } catch (error) {
          this.logger.error({ err: error, channel }, 'a message listener threw')
        }
      }
    }
    // Messages on channels nobody subscribed to (server-side deliveries to /service, …) go to receive() as well.
    if (toQueue || (subs.length === 0 && service)) this.#enqueueReceived(message)
    else if (subs.length === 0) this.logger.debug({ channel }, 'dropped a message no subscription matches')
  }

  #enqueueReceived (message: Message): void {
    const dropped = this.#queue.push(message)
    if (dropped !== undefined) {
      this.counters.dropped++
      this.emit('overflow', { dropped, droppedTotal: this.counters.dropped })
    }
  }

  // ---------------------------------------------------------------- receive

  /**
   * The next event from a subscription without listener. Rejects with TransportTimeoutError when the connection has
   * been down for connectionTimeoutMs while waiting (the client keeps trying; a later call can succeed), with the
   * server's ServerError when it ended the session, and with ClientInvalidOperation once closed and drained.
   */
  async receive (): Promise<Message> {
    const queued = this.#queue.shift()
    if (queued !== undefined) return queued
    if (!this.#open) {
      throw this.terminalError ?? new ClientInvalidOperation('The client is closed and there are no pending messages.')
    }
    const wait = this.#queue.wait()
    return await new Promise<Message>((resolve, reject) => {
      const receiver = new Receiver(this.#receiverHost, (error) => {
        this.#dropReceiver(receiver)
        if (wait.cancel()) reject(error)
      })
      this.#receivers.add(receiver)
      receiver.arm()
      wait.promise.then((message) => {
        this.#dropReceiver(receiver)
        resolve(message)
      }, reject)
    })
  }

  #dropReceiver (receiver: Receiver): void {
    receiver.stop()
    this.#receivers.delete(receiver)
  }

  async * [Symbol.asyncIterator] (): AsyncIterator<Message> {
    while (true) {
      try {
        yield await this.receive()
      } catch (error) {
        if (error instanceof ClientInvalidOperation) return
        throw error
      }
    }
  }

  // ---------------------------------------------------------------- lifecycle hooks

  protected override onOpen (): void {
    this.#queue = new BoundedQueue(this.options.maxPendingCount)
    this.#subs.clear()
    this.counters.dropped = 0
  }

  protected override onStateChange (_change: StateChange): void {
    for (const receiver of this.#receivers) receiver.arm()
  }

  protected override onRelease (error: Error): void {
    this.#open = false
    this.#calls.rejectAll(error)
    this.#subs.clear()
    const failure = this.terminalError ?? new ClientInvalidOperation('The client is closed and there are no pending messages.')
    for (const receiver of [...this.#receivers]) receiver.fail(failure)
  }

  #assertOpen (): void {
    if (this.#open) return
    if (this.terminalError !== null) throw this.terminalError
    throw new ClientInvalidOperation('The client is not open.')
  }
}

