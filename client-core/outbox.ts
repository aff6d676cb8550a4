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
import type { Headers } from './extensions.js'
import type { Message, Payload } from './protocol/message.js'
import { toTransportError } from './session-options.js'
import type { Transport } from './transport/transport.js'
import { Batch } from './outgoing.js'
import type { DispatchOptions, Outgoing, OutboxHost } from './outgoing.js'

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
    // one message (every /meta/connect): its own promise, without Promise.all's array and extra promise
    if (entries.length === 1) return [await entries[0]!.promise]
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
    const transport = options.transport ?? this.#host.transport
    if (entries.some((entry) => entry.settled)) entries = entries.filter((entry) => !entry.settled)
    if (entries.length === 0) return
    if (transport === null) {
      for (const entry of entries) this.settle(entry, null, new TransportConnectionClosed('Not connected'))
      return
    }
    const b = new Batch(entries, this.#prepare(entries, transport), transport, options.isConnect ?? false)
    this.#controllers.add(b.controller)
    try {
      // neither headers nor hooks configured (the common case): no await, no promise per batch
      if (this.#host.options.headers !== undefined) b.headers = await this.#outgoingHeaders()
      if (this.#hasOutgoingHooks()) await this.#applyExtensions(b)
      if (!this.#serialize(b)) return
      this.#host.counters.messagesOut += b.messages.length
      this.#host.logger.trace({ count: b.messages.length, first: b.messages[0]!.channel, type: transport.type }, 'send')
      while (b.start < b.messages.length) await this.#sendNext(b)
    } catch (error) {
      await this.#failed(b, error, options)
    } finally {
      this.#controllers.delete(b.controller)
    }
  }

  /** Stamps the clientId, registers the replies awaited, and builds the payload (copies when extensions may change it). */
  #prepare (entries: Outgoing[], transport: Transport): Payload {
    // Extensions may change or drop messages: they get copies, so that an entry's message stays as the user sent it.
    const copy = this.#hasOutgoingHooks()
    const clientId = this.#host.clientId
    const payload: Payload = new Array<Message>(entries.length)
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!
      const message = entry.message
      if (message.channel !== '/meta/handshake' && clientId !== null) message.clientId = clientId
      entry.transport = transport
      this.#pending.set(message.id!, entry)
      payload[i] = copy ? { ...message } : message
    }
    return payload
  }

  #hasOutgoingHooks (): boolean {
    const { auth, extensions } = this.#host.options
    return extensions.length > 0 || auth !== null
  }

  /** Runs the outgoing extensions on the payload; an entry whose message an extension dropped fails. */
  async #applyExtensions (b: Batch): Promise<void> {
    const { payload, entries } = b
    const copies = payload.slice()
    await this.#runOutgoing(payload, b.headers)
    if (payload.length === copies.length && payload.every((m, i) => m === copies[i])) return
    const ownerOf = new Map<Message, Outgoing>()
    for (let i = 0; i < copies.length; i++) ownerOf.set(copies[i]!, entries[i]!)
    b.owners = payload.map((m) => ownerOf.get(m) ?? null)
    const kept = new Set(b.owners)
    for (const entry of entries) {
      if (!kept.has(entry)) this.settle(entry, null, new ClientError('The message was dropped by an extension'))
    }
  }

  /**
   * Serializes once. Fast path: the whole payload in one call (about twice as fast as message by message). Message by
   * message when that throws (the unserializable message then fails alone, the others go) or when the body has to be
   * split (then the bodies are joined from the parts). False when nothing is left to send.
   */
  #serialize (b: Batch): boolean {
    const { stringify } = this.#host.options
    const cap = this.#byteCap(b.transport)
    b.messages = b.payload
    b.sent = b.owners
    if (!this.#splitting || b.payload.length === 1) {
      try {
        b.whole = stringify(b.payload)
      } catch {
        b.whole = null
      }
      if (b.whole !== null && b.payload.length > 1 && b.whole.length > cap) {
        b.whole = null
        this.#splitting = true
      }
    }
    if (b.whole !== null) return true
    if (!this.#serializeEach(b, b.payload, b.owners)) return false
    this.#splitting = joinedLength(b.parts) > cap
    return true
  }

  #serializeEach (b: Batch, payload: Message[], owners: Array<Outgoing | null>): boolean {
    ({ parts: b.parts, sent: b.sent, messages: b.messages } = serializeEach(payload, owners, this.#host.options.stringify, this.#unserializable))
    return b.parts.length > 0
  }

  readonly #unserializable = (owner: Outgoing | null, message: Message, error: unknown): void => {
    if (owner !== null) this.settle(owner, null, new MessageEncodingError(`The message for ${message.channel} cannot be serialized`, { cause: error }))
  }

  /** Sends the next body of the batch (what fits the byte cap), or gets it split after a 413. */
  async #sendNext (b: Batch): Promise<void> {
    const { messages, sent } = b
    const all = messages.length
    const end = b.whole === null ? chunkEnd(b.parts, b.start, b.maxCount, this.#byteCap(b.transport)) : all
    const chunk = end - b.start === all ? sent : sent.slice(b.start, end)
    // A later request of the batch: not after close(), nor when everything in it already failed (a dropped socket).
    if (b.controller.signal.aborted) throw b.controller.signal.reason
    if (b.start > 0 && chunk.every((e) => e === null || e.settled)) {
      b.start = end
      return
    }
    const body = b.whole ?? (end - b.start === 1 ? `[${b.parts[b.start]!}]` : `[${b.parts.slice(b.start, end).join(',')}]`)
    const first = messages[b.start]!.channel
    try {
      await b.transport.send(end - b.start === all ? messages : messages.slice(b.start, end), b.headers, {
        timeoutMs: this.#timeoutOf(chunk),
        signal: b.controller.signal,
        isConnect: b.isConnect,
        messageType: first.startsWith('/meta/') ? first.slice(6) : null,
        body
      })
    } catch (error) {
      if (!(error instanceof HttpStatusError && error.statusCode === 413 && !b.isConnect && !b.controller.signal.aborted)) throw error
      this.#tooLarge(b, end, body, first, error)
      return
    }
    b.maxCount = Infinity
    if (b.transport.type === 'long-polling') {
      for (const entry of chunk) {
        if (entry !== null && !entry.settled) {
          this.settle(entry, null, new TransportError(`The server did not reply to ${entry.message.channel} (id ${entry.message.id})`))
        }
      }
    }
    b.start = end
  }

  /** The longest reply wait of the messages in one body: a held /meta/connect waits for the advice timeout too. */
  #timeoutOf (chunk: Array<Outgoing | null>): number {
    const { maxNetworkDelayMs } = this.#host.options
    let timeoutMs = 0
    for (const entry of chunk) {
      if (entry === null) continue
      timeoutMs = Math.max(timeoutMs, entry.message.channel === '/meta/connect'
        ? this.#host.connectHoldMs + maxNetworkDelayMs
        : maxNetworkDelayMs)
    }
    return timeoutMs === 0 ? maxNetworkDelayMs : timeoutMs
  }

  /** The server refused a body unread (HTTP 413): nothing of it was processed. Split it, or fail the lone message. */
  #tooLarge (b: Batch, end: number, body: string, first: string, error: HttpStatusError): void {
    if (end - b.start > 1) {
      this.#lowerBodyCap(body.length)
      b.maxCount = Math.ceil((end - b.start) / 2) // halved, so that a retry is always smaller
      if (b.whole !== null) {
        b.whole = null
        if (!this.#serializeEach(b, b.messages, b.sent)) b.start = b.messages.length
      }
      return
    }
    const owner = b.sent[b.start]
    if (owner != null) {
      this.settle(owner, null, new MessageTooLargeError(
        `The message for ${first} (${body.length} bytes of JSON) is larger than the server accepts (HTTP 413)`, { cause: error }))
    }
    b.start = end
  }

  /** A request of the batch failed: what is not on the wire yet fails too, or goes once more after re-authentication. */
  async #failed (b: Batch, error: unknown, options: DispatchOptions): Promise<void> {
    const failure = toTransportError(error)
    const unsent = b.sent.slice(b.start).filter((e): e is Outgoing => e !== null)
    let retry: Outgoing[] = []
    const refused = failure instanceof HttpStatusError && (failure.statusCode === 401 || failure.statusCode === 403)
    if (this.#host.options.auth !== null && refused && !b.isConnect) {
      retry = unsent.filter((e) => !e.settled && !e.authRetried && e.message.channel !== '/meta/handshake')
      for (const entry of retry) this.#renew(entry)
    }
    const retried = new Set(retry)
    for (const entry of unsent) {
      if (!retried.has(entry)) this.settle(entry, null, failure)
    }
    if (retry.length > 0) {
      await this.#host.authenticate().catch(() => {})
      await this.#dispatch(retry, options)
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
