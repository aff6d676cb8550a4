/**
 * Requests from one replica to another through Redis pub/sub: publish, call and subscribe go to the replica that
 * holds the session (its own channel `<prefix>:bus:<replicaId>`), the answer comes back on the asker's channel.
 * The answer is what the holder would have answered itself (success, or its HTTP error with status and details);
 * 503 when no replica listens on the holder's channel, 504 when the holder does not answer in time.
 */
import { randomBytes } from 'node:crypto'
import { ErrorCode, HttpError } from '../errors.js'
import type { RedisLink } from './redis.js'
import { redisErrorText } from './errors.js'
import type { SessionLogger } from '../ops/lazy-log.js'

export type BusOp = 'publish' | 'call' | 'subscribe'

export interface BusRequest {
  op: BusOp
  session: string
  channel: string
  data?: unknown
  /** the asker's deadline for the upstream operation */
  timeoutMs: number
}

interface WireRequest extends BusRequest { id: string, from: string }

interface WireError { status: number, code: string, message: string, details?: Record<string, unknown>, headers?: Record<string, string> }

type WireReply = { re: string, ok: true, result: unknown } | { re: string, ok: false, error: WireError }

/** What the holder side does with a request (throws HttpError for an error answer). */
export type BusHandler = (request: BusRequest) => Promise<unknown>

/** Answers not in time: the asker waits this much longer than the holder's own deadline. */
const ANSWER_MARGIN_MS = 1_000

interface Pending { resolve: (v: unknown) => void, reject: (e: unknown) => void, timer: NodeJS.Timeout }

export class Bus {
  readonly #link: RedisLink
  readonly #log: SessionLogger
  readonly #pending = new Map<string, Pending>()
  #handler: BusHandler | null = null
  #next = 0
  readonly #prefix = randomBytes(4).toString('hex')

  constructor (link: RedisLink, log: SessionLogger) {
    this.#link = link
    this.#log = log
  }

  channelOf (replicaId: string): string { return this.#link.key('bus', replicaId) }

  /** Listens on this replica's channel: requests go to `handler`, answers to the requests this replica sent. */
  async start (handler: BusHandler): Promise<void> {
    this.#handler = handler
    await this.#link.subscribe(this.channelOf(this.#link.replicaId), (text) => { this.#receive(text) })
  }

  /** Sends `request` to `holder` and waits for its answer (rejects with the holder's HttpError, 503 or 504). */
  async request (holder: string, request: BusRequest): Promise<unknown> {
    const id = `${this.#prefix}-${++this.#next}`
    const wire: WireRequest = { ...request, id, from: this.#link.replicaId }
    const answer = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new HttpError(504, request.op === 'call' ? ErrorCode.CALL_TIMEOUT : ErrorCode.UPSTREAM_TIMEOUT,
          `The replica holding session "${request.session}" (${holder}) did not answer the ${request.op} in time`))
      }, request.timeoutMs + ANSWER_MARGIN_MS)
      timer.unref()
      this.#pending.set(id, { resolve, reject, timer })
    })
    let receivers: number
    try {
      receivers = await this.#link.publish(this.channelOf(holder), JSON.stringify(wire))
    } catch (err) {
      this.#settle(id, null, noHolder(request.session, `Redis is not reachable: ${redisErrorText(err)}`))
      return answer
    }
    if (receivers === 0) this.#settle(id, null, noHolder(request.session, `replica ${holder} is gone`))
    return answer
  }

  close (): void {
    for (const [id] of this.#pending) this.#settle(id, null, new HttpError(503, ErrorCode.SHUTTING_DOWN, 'The bridge is shutting down', { headers: { 'Retry-After': '1' } }))
  }

  #receive (text: string): void {
    let message: WireRequest | WireReply
    try {
      message = JSON.parse(text) as WireRequest | WireReply
    } catch {
      return
    }
    if ('re' in message) {
      if (message.ok) this.#settle(message.re, { value: message.result }, null)
      else this.#settle(message.re, null, fromWire(message.error))
      return
    }
    void this.#serve(message)
  }

  async #serve (request: WireRequest): Promise<void> {
    let reply: WireReply
    try {
      if (this.#handler === null) throw noHolder(request.session, 'not ready')
      const { id: _id, from: _from, ...plain } = request
      reply = { re: request.id, ok: true, result: await this.#handler(plain) }
    } catch (err) {
      reply = { re: request.id, ok: false, error: toWire(err) }
    }
    await this.#link.publish(this.channelOf(request.from), JSON.stringify(reply)).catch((err: unknown) => {
      this.#log.warn({ error: redisErrorText(err), op: request.op, session: request.session }, 'bus: answer not sent')
    })
  }

  #settle (id: string, ok: { value: unknown } | null, error: unknown): void {
    const pending = this.#pending.get(id)
    if (pending === undefined) return
    this.#pending.delete(id)
    clearTimeout(pending.timer)
    if (ok !== null) pending.resolve(ok.value)
    else pending.reject(error)
  }
}

export function noHolder (session: string, why: string): HttpError {
  return new HttpError(503, ErrorCode.UPSTREAM_UNAVAILABLE, `No replica holds session "${session}" right now (${why}); retry later`, {
    headers: { 'Retry-After': '1' }
  })
}

function toWire (err: unknown): WireError {
  if (err instanceof HttpError) {
    const out: WireError = { status: err.statusCode, code: err.code, message: err.message }
    if (err.details !== undefined) out.details = err.details
    if (err.headers !== undefined) out.headers = err.headers
    return out
  }
  return { status: 502, code: ErrorCode.UPSTREAM_REJECTED, message: err instanceof Error ? err.message : String(err) }
}

function fromWire (e: WireError): HttpError {
  const options: { details?: Record<string, unknown>, headers?: Record<string, string> } = {}
  if (e.details !== undefined) options.details = e.details
  if (e.headers !== undefined) options.headers = e.headers
  return new HttpError(e.status, e.code as ErrorCode, e.message, options)
}
