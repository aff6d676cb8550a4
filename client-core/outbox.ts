/**
 * The request side of a session: outgoing messages from creation to reply. It queues messages, batches them
 * (`maxBatchMessages`, the byte cap, `transport.maxInFlight`), runs the outgoing extensions, serializes each
 * message once, sends the bodies, splits a batch refused with HTTP 413, retries once after re-authentication,
 * correlates replies, and fails every request whose deadline passes (one timer for all, see DeadlineList).
 *
 * It has no state of its own: whether messages may go, over which transport and for which clientId it asks its
 * host, the session, which owns the state field and the generation counter.
 */
import { byteCap, chunkEnd, joinedLength, loweredBodyCap, serializeEach } from './batch.js'
import { DeadlineList } from './deadlines.js'
import {
  ClientError, HttpStatusError, MessageEncodingError, MessageTooLargeError, TransportConnectionClosed, TransportError,
  TransportTimeoutError
} from './errors.js'
import type { ClientStats } from './events.js'
import type { Headers } from './extensions.js'
import type { Logger } from './options.js'
import type { Message, Payload } from './protocol/message.js'
import { toTransportError } from './session-options.js'
import type { ResolvedOptions } from './session-options.js'
import type { Transport } from './transport/transport.js'

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
  /** neighbours in the deadline list (sorted by deadline; one timer serves them all) */
  prev: Outgoing | null
  next: Outgoing | null
}

/** What the outbox reads from the session that owns it. */
export interface OutboxHost {
  readonly options: ResolvedOptions
  readonly logger: Logger
  readonly counters: ClientStats
  /** the negotiated transport (null before a handshake) */
  readonly transport: Transport | null
  /** whether queued messages may go now (the session is connected) */
  readonly connected: boolean
  readonly clientId: string | null
  /** how long the server may hold a /meta/connect (advice timeout), ms */
  readonly connectHoldMs: number
  /** (re)authenticates; rejects with a ClientError */
  authenticate: () => Promise<void>
}

export interface DispatchOptions { isConnect?: boolean, transport?: Transport }

export class Outbox {
  readonly #host: OutboxHost
  #nextId = 0
  #pending = new Map<string, Outgoing>()
  #queue: Outgoing[] = []
  readonly #deadlines = new DeadlineList<Outgoing>((entry) => { this.#timedOut(entry) })
  /** long-polling body cap learnt from an HTTP 413 (null: none seen) */
  #bodyCap: number | null = null
  /** the previous batch was over the byte cap: serialize message by message at once (no whole-payload attempt) */
  #splitting = false
  #inFlight = 0
  #flushScheduled = false
  #controllers = new Set<AbortController>()

  constructor (host: OutboxHost) {
    this.#host = host
  }

  newOutgoing (message: Message): Outgoing {
    message.id ??= String(++this.#nextId)
    let resolve!: (reply: Message) => void
    let reject!: (error: Error) => void
    const promise = new Promise<Message>((res, rej) => { resolve = res; reject = rej })
    // (settle() marks a promise handled before rejecting it: a caller that stopped listening causes no unhandled rejection)
    return { message, promise, resolve, reject, settled: false, transport: null, authRetried: false, deadline: 0, timeoutMs: 0, prev: null, next: null }
  }

  /** Sends messages now, in one payload (over `options.transport` or the current one), and resolves with their replies. */
  async request (messages: Message[], options: DispatchOptions & { timeoutMs: number }): Promise<Message[]> {
    const entries = messages.map((message) => this.newOutgoing(message))
    for (const entry of entries) this.#deadlines.arm(entry, options.timeoutMs)
    void this.#dispatch(entries, options)
    return await Promise.all(entries.map((entry) => entry.promise))
  }

  /** Queues a message for the next batch, sent while connected. `timeoutMs` also bounds the wait for a connection. */
  enqueue (entry: Outgoing, timeoutMs: number): void {
    this.#deadlines.arm(entry, timeoutMs)
    this.#queue.push(entry)
    this.scheduleFlush()
  }

  scheduleFlush (): void {
    if (this.#flushScheduled) return
    this.#flushScheduled = true
    setImmediate(() => {
      this.#flushScheduled = false
      this.#flush()
    })
  }

  /** Aborts every request on the wire and fails every pending one. */
  abortAll (error: Error): void {
    for (const controller of this.#controllers) controller.abort(error)
    this.#controllers.clear()
    for (const entry of this.#pending.values()) this.settle(entry, null, error)
    this.#pending.clear()
  }

  /** Fails everything, queued messages included, and stops the deadline timer. */
  release (error: Error): void {
    this.abortAll(error)
    for (const entry of this.#queue) this.settle(entry, null, error)
    this.#queue = []
    this.#deadlines.stopIfEmpty()
  }

  /** A connection-oriented transport lost its connection: requests sent over it fail. */
  transportClosed (transport: Transport, error: Error): void {
    const failure = error instanceof TransportError ? error : new TransportConnectionClosed(error.message, { cause: error })
    for (const entry of [...this.#pending.values()]) {
      if (entry.transport === transport) this.settle(entry, null, failure)
    }
  }

  settle (entry: Outgoing, reply: Message | null, error: Error | null): void {
    if (entry.settled) return
    entry.settled = true
    this.#deadlines.disarm(entry)
    const id = entry.message.id
    if (id !== undefined && this.#pending.get(id) === entry) this.#pending.delete(id)
    if (reply !== null) {
      entry.resolve(reply)
      return
    }
    entry.promise.catch(() => {}) // a caller that stopped listening must not cause an unhandled rejection
    entry.reject(error ?? new TransportError('request failed'))
  }

  /** By id; a reply without id (some servers omit it) goes to the oldest pending request on its channel. */
  matchReply (reply: Message): Outgoing | undefined {
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

  /** The server refused the entry for authentication: re-authenticate and send it once more, with fresh headers. */
  retryAfterAuth (entry: Outgoing): void {
    this.#renew(entry)
    void this.#host.authenticate().then(async () => await this.#dispatch([entry], {}))
      .catch((error: unknown) => this.settle(entry, null, error as Error))
  }

  /** A deadline passed. When it passed while the request was on the wire, no socket is trusted again. */
  #timedOut (entry: Outgoing): void {
    const timeoutMs = entry.timeoutMs
    const queued = this.#queue.indexOf(entry)
    if (queued >= 0) this.#queue.splice(queued, 1)
    const onWire = entry.transport
    this.settle(entry, null, new TransportTimeoutError(onWire === null
      ? `Not connected within ${timeoutMs} ms (${entry.message.channel})`
      : `No reply to ${entry.message.channel} within ${timeoutMs} ms`))
    // A stalled link looks exactly like this: drop every connection to that server.
    if (onWire !== null) onWire.reset('request timeout')
  }

  /**
   * Moves queued messages to the wire: up to `maxBatchMessages` per dispatch (1 without autoBatch), at most
   * `transport.maxInFlight` dispatches at once (long-polling: one, so publishes reach the server in order).
   * Bytes are counted after the outgoing extensions, in #dispatch, which splits a batch over the byte cap.
   */
  #flush (): void {
    const transport = this.#host.transport
    if (!this.#host.connected || transport === null) return
    const options = this.#host.options
    const max = options.autoBatch ? options.maxBatchMessages : 1
    while (this.#queue.length > 0 && this.#inFlight < transport.maxInFlight) {
      let batch = this.#queue
      if (batch.length <= max) this.#queue = []
      else batch = this.#queue.splice(0, max)
      this.#inFlight++
      void this.#dispatch(batch, {}).finally(() => {
        this.#inFlight--
        this.scheduleFlush()
      })
    }
  }

  #byteCap (transport: Transport): number {
    return byteCap(transport.type, this.#host.options.maxBatchBytes, this.#bodyCap)
  }

  /**
   * Sends one batch over the current (or given) transport: runs the outgoing extensions once, serializes each
   * message once (one that cannot be serialized fails alone), and sends the bodies one after another, each under
   * the byte cap. An HTTP 413 (the server read nothing) lowers the cap and the same messages go again, in order.
   * Never throws: every entry is settled or left to its reply.
   */
  async #dispatch (entries: Outgoing[], options: DispatchOptions): Promise<void> {
    const host = this.#host
    const transport = options.transport ?? host.transport
    if (entries.some((entry) => entry.settled)) entries = entries.filter((entry) => !entry.settled)
    if (entries.length === 0) return
    if (transport === null) {
      for (const entry of entries) this.settle(entry, null, new TransportConnectionClosed('Not connected'))
      return
    }
    const controller = new AbortController()
    this.#controllers.add(controller)
    const { auth, extensions, maxNetworkDelayMs, stringify } = host.options
    // Extensions may change or drop messages: they get copies, so that an entry's message stays as the user sent it.
    const copy = extensions.length > 0 || auth !== null
    const clientId = host.clientId
    const payload: Payload = new Array<Message>(entries.length)
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!
      const message = entry.message
      if (message.channel !== '/meta/handshake' && clientId !== null) message.clientId = clientId
      entry.transport = transport
      this.#pending.set(message.id!, entry)
      payload[i] = copy ? { ...message } : message
    }
    // owners[i]: the entry whose reply payload[i] awaits (null: a message an extension added)
    let owners: Array<Outgoing | null> = entries
    // sent[start…]: what is not on the wire yet (what a failure settles); reassigned as the batch is serialized and sent
    let sent: Array<Outgoing | null> = entries
    let start = 0
    const unserializable = (owner: Outgoing | null, message: Message, error: unknown): void => {
      if (owner !== null) {
        this.settle(owner, null, new MessageEncodingError(`The message for ${message.channel} cannot be serialized`, { cause: error }))
      }
    }
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
            if (!kept.has(entry)) this.settle(entry, null, new ClientError('The message was dropped by an extension'))
          }
        }
      }
      // Serialize once. Fast path: the whole payload in one call (about twice as fast as message by message). Message
      // by message when that throws (the unserializable message then fails alone, the others go) or when the body
      // has to be split (then the bodies are joined from the parts).
      const cap0 = this.#byteCap(transport)
      let messages: Message[] = payload
      sent = owners
      let whole: string | null = null
      let parts: string[] = []
      if (!this.#splitting || payload.length === 1) {
        try {
          whole = stringify(payload)
        } catch {
          whole = null
        }
        if (whole !== null && payload.length > 1 && whole.length > cap0) {
          whole = null
          this.#splitting = true
        }
      }
      if (whole === null) {
        ({ parts, sent, messages } = serializeEach(payload, owners, stringify, unserializable))
        if (parts.length === 0) return
        this.#splitting = joinedLength(parts) > cap0
      }
      host.counters.messagesOut += messages.length
      host.logger.trace({ count: messages.length, first: messages[0]!.channel, type: transport.type }, 'send')
      const isConnect = options.isConnect ?? false
      let maxCount = Infinity // halved by a 413, so that a retry is always smaller
      while (start < messages.length) {
        const end = whole === null ? chunkEnd(parts, start, maxCount, this.#byteCap(transport)) : messages.length
        const chunk = end - start === messages.length ? sent : sent.slice(start, end)
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
            ? host.connectHoldMs + maxNetworkDelayMs
            : maxNetworkDelayMs)
        }
        try {
          await transport.send(end - start === messages.length ? messages : messages.slice(start, end), headers, {
            timeoutMs: timeoutMs === 0 ? maxNetworkDelayMs : timeoutMs,
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
              ;({ parts, sent, messages } = serializeEach(messages, sent, stringify, unserializable))
              if (parts.length === 0) return
            }
            continue
          }
          const owner = sent[start]
          if (owner != null) {
            this.settle(owner, null, new MessageTooLargeError(
              `The message for ${first} (${body.length} bytes of JSON) is larger than the server accepts (HTTP 413)`, { cause: error }))
          }
          start = end
          continue
        }
        maxCount = Infinity
        if (transport.type === 'long-polling') {
          for (const entry of chunk) {
            if (entry !== null && !entry.settled) {
              this.settle(entry, null, new TransportError(`The server did not reply to ${entry.message.channel} (id ${entry.message.id})`))
            }
          }
        }
        start = end
      }
    } catch (error) {
      const failure = toTransportError(error)
      const unsent = sent.slice(start).filter((e): e is Outgoing => e !== null)
      let retry: Outgoing[] = []
      if (auth !== null && failure instanceof HttpStatusError && (failure.statusCode === 401 || failure.statusCode === 403) && !options.isConnect) {
        retry = unsent.filter((e) => !e.settled && !e.authRetried && e.message.channel !== '/meta/handshake')
        for (const entry of retry) this.#renew(entry)
      }
      const retried = new Set(retry)
      for (const entry of unsent) {
        if (!retried.has(entry)) this.settle(entry, null, failure)
      }
      if (retry.length > 0) {
        await host.authenticate().catch(() => {})
        await this.#dispatch(retry, options)
      }
    } finally {
      this.#controllers.delete(controller)
    }
  }

  /** An HTTP 413: halve the byte cap of this client's long-polling bodies (not below MIN_BODY_CAP). Logged once. */
  #lowerBodyCap (rejectedBytes: number): void {
    const before = this.#bodyCap
    this.#bodyCap = loweredBodyCap(before, rejectedBytes)
    if (before === null) {
      this.#host.logger.warn({ rejectedBytes, maxBatchBytes: this.#bodyCap },
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

  async #outgoingHeaders (): Promise<Headers> {
    const option = this.#host.options.headers
    if (option === undefined) return {}
    const value = typeof option === 'function' ? await option() : option
    return { ...value }
  }

  async #runOutgoing (payload: Payload, headers: Headers): Promise<void> {
    const { extensions, auth } = this.#host.options
    for (const extension of extensions) await extension.outgoing(payload, headers)
    if (auth !== null) await auth.outgoing(payload, headers)
  }
}
