/**
 * long-polling over an undici Pool: two connections per client, one for the held /meta/connect and one for
 * everything else (the session keeps at most one other request in flight). Every request has a deadline and an
 * abort signal; after a timeout the whole pool is destroyed so that no socket from before a stall is reused.
 */
import { Pool, buildConnector, errors as undiciErrors } from 'undici'
import type { TLSSocket } from 'node:tls'
import type { Headers } from '../extensions.js'
import type { Payload } from '../protocol/message.js'
import { TransportConnectionClosed, TransportError, TransportTimeoutError, HttpStatusError } from '../errors.js'
import { checkPin, tlsConnectOptions } from './tls.js'
import type { SendOptions, Transport, TransportContext } from './transport.js'

export class LongPollingTransport implements Transport {
  readonly type = 'long-polling' as const
  readonly maxInFlight = 1
  readonly #ctx: TransportContext
  #pool: Pool | null = null
  #closed = false

  constructor (context: TransportContext) {
    this.#ctx = context
  }

  #getPool (): Pool {
    if (this.#pool !== null) return this.#pool
    const ctx = this.#ctx
    // A resumed TLS session shows no peer certificate: with a pin, every connection does a full handshake.
    const pinned = typeof ctx.tls?.fingerprint256 === 'string'
    const base = buildConnector({ ...tlsConnectOptions(ctx.tls), timeout: ctx.maxNetworkDelayMs, ...(pinned ? { maxCachedSessions: 0 } : {}) })
    const connect: buildConnector.connector = (options, callback) => base(options, (err, socket) => {
      if (err !== null || socket === null) return callback(err ?? new TransportError('connect failed'), null)
      try {
        if (ctx.url.protocol === 'https:') checkPin(ctx.tls, socket as TLSSocket)
      } catch (error) {
        socket.destroy()
        return callback(error as Error, null)
      }
      callback(null, socket)
    })
    this.#pool = new Pool(ctx.url.origin, {
      connections: 2,
      pipelining: 1,
      connect,
      keepAliveTimeout: 30_000,
      headersTimeout: ctx.maxNetworkDelayMs,
      bodyTimeout: ctx.maxNetworkDelayMs
    })
    return this.#pool
  }

  #path (messageType: string | null): string {
    const url = this.#ctx.url
    let path = url.pathname + url.search
    const last = url.pathname.split('/').pop() ?? ''
    if (this.#ctx.appendMessageTypeToURL && messageType !== null && url.search === '' && !last.includes('.')) {
      path = url.pathname.replace(/\/$/, '') + '/' + messageType
    }
    return path
  }

  async send (payload: Payload, headers: Headers, options: SendOptions): Promise<void> {
    if (this.#closed) throw new TransportConnectionClosed('The transport is closed')
    const ctx = this.#ctx
    const body = ctx.stringify(payload)
    const cookie = await ctx.cookies.getCookieString(ctx.url.href)
    const requestHeaders: Record<string, string> = {
      'content-type': 'application/json;charset=UTF-8',
      accept: 'application/json',
      ...headers
    }
    if (cookie !== '') requestHeaders.cookie = cookie
    let response
    try {
      response = await this.#getPool().request({
        method: 'POST',
        path: this.#path(options.messageType),
        headers: requestHeaders,
        body,
        signal: options.signal,
        headersTimeout: options.timeoutMs,
        bodyTimeout: options.timeoutMs
      })
    } catch (error) {
      throw mapError(error, options.signal)
    }
    let text: string
    try {
      text = await response.body.text()
    } catch (error) {
      throw mapError(error, options.signal)
    }
    const responseHeaders = flattenHeaders(response.headers)
    await this.#storeCookies(response.headers['set-cookie'])
    if (response.statusCode < 200 || response.statusCode >= 300) {
      throw new HttpStatusError(response.statusCode, text.slice(0, 200))
    }
    const received = ctx.parse(text)
    await ctx.receive(received, responseHeaders, this)
  }

  async #storeCookies (setCookie: string | string[] | undefined): Promise<void> {
    if (setCookie === undefined) return
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      try {
        await this.#ctx.cookies.setCookie(line, this.#ctx.url.href, { ignoreError: true })
      } catch (error) {
        this.#ctx.logger.debug({ err: error }, 'ignored an invalid Set-Cookie header')
      }
    }
  }

  reset (reason: string): void {
    const pool = this.#pool
    this.#pool = null
    if (pool !== null) {
      this.#ctx.logger.debug({ reason }, 'long-polling: dropping every pooled connection')
      pool.destroy(new TransportConnectionClosed(`Connection reset: ${reason}`)).catch(() => {})
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    const pool = this.#pool
    this.#pool = null
    if (pool !== null) await pool.destroy().catch(() => {})
  }
}

function flattenHeaders (headers: Record<string, string | string[] | undefined>): Headers {
  const out: Headers = {}
  for (const [key, value] of Object.entries(headers)) {
    if (value !== undefined) out[key] = Array.isArray(value) ? value.join(', ') : value
  }
  return out
}

function mapError (error: unknown, signal: AbortSignal): TransportError {
  if (signal.aborted && signal.reason instanceof TransportError) return signal.reason
  if (error instanceof TransportError) return error
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError ||
      error instanceof undiciErrors.ConnectTimeoutError) {
    return new TransportTimeoutError('HTTP request timed out', { cause: error })
  }
  if (signal.aborted) return new TransportConnectionClosed('HTTP request aborted', { cause: error })
  const message = error instanceof Error ? error.message : String(error)
  return new TransportError(`HTTP request failed: ${message}`, { cause: error })
}
