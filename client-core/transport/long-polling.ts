/**
 * long-polling over two undici Clients (one connection each): one for the held /meta/connect and one for
 * everything else (the session keeps at most one other request in flight). Two Clients rather than a Pool: a Pool
 * preallocates a 2,048-slot request queue, 16 KB per session. Every request has a deadline and an abort signal;
 * after a timeout both are destroyed so that no socket from before a stall is reused.
 */
import { Client, buildConnector, errors as undiciErrors } from 'undici'
import { cookieCompare } from 'tough-cookie'
import type { TLSSocket } from 'node:tls'
import type { Headers } from '../extensions.js'
import type { Payload } from '../protocol/message.js'
import { TransportConnectionClosed, TransportError, TransportTimeoutError, HttpStatusError } from '../errors.js'
import { checkPin, tlsConnectOptions } from './tls.js'
import { openTunnel } from './tunnel.js'
import type { SendOptions, Transport, TransportContext } from './transport.js'

export class LongPollingTransport implements Transport {
  readonly type = 'long-polling' as const
  readonly maxInFlight = 1
  readonly #ctx: TransportContext
  #connector: buildConnector.connector | null = null
  /** [0]: the held /meta/connect, [1]: everything else */
  #clients: [Client | null, Client | null] = [null, null]
  /** the Cookie header derived from the jar at `version`, good until `until` (≤ 1 s, or the earliest expiry) */
  #cookie: { value: string, until: number, version: number } | null = null
  /** request paths by message type (the URL never changes): no string work per request */
  readonly #paths = new Map<string | null, string>()
  #closed = false

  constructor (context: TransportContext) {
    this.#ctx = context
  }

  #connect (): buildConnector.connector {
    if (this.#connector !== null) return this.#connector
    const ctx = this.#ctx
    // A resumed TLS session shows no peer certificate: with a pin, every connection does a full handshake.
    const pinned = typeof ctx.tls?.fingerprint256 === 'string'
    const base = buildConnector({ ...tlsConnectOptions(ctx.tls), timeout: ctx.maxNetworkDelayMs, ...(pinned ? { maxCachedSessions: 0 } : {}) })
    // https: the upstream's certificate against the pin, whichever way the socket came
    const checked = (callback: buildConnector.Callback): buildConnector.Callback => (err, socket) => {
      if (err !== null || socket === null) return callback(err ?? new TransportError('connect failed'), null)
      try {
        if (ctx.url.protocol === 'https:') checkPin(ctx.tls, socket as TLSSocket)
      } catch (error) {
        socket.destroy()
        return callback(error as Error, null)
      }
      callback(null, socket)
    }
    const proxy = ctx.proxy
    this.#connector = (options, callback) => {
      if (proxy === null) return base(options, checked(callback))
      // through the proxy: a CONNECT tunnel, then (https) TLS to the upstream inside it
      const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80)
      openTunnel(proxy, options.hostname, port, ctx.maxNetworkDelayMs).then((tunnel) => {
        if (options.protocol === 'https:') base({ ...options, httpSocket: tunnel }, checked(callback))
        else callback(null, tunnel)
      }, (error: Error) => { callback(error, null) })
    }
    return this.#connector
  }

  #client (isConnect: boolean): Client {
    const slot = isConnect ? 0 : 1
    let client = this.#clients[slot]
    if (client !== null) return client
    const ctx = this.#ctx
    client = new Client(ctx.url.origin, {
      pipelining: 1,
      connect: this.#connect(),
      keepAliveTimeout: 30_000,
      headersTimeout: ctx.maxNetworkDelayMs,
      bodyTimeout: ctx.maxNetworkDelayMs
    })
    this.#clients[slot] = client
    return client
  }

  /** The cached Cookie header while it is good, else null (read the jar through #cookieHeader). */
  #cachedCookie (): string | null {
    const cached = this.#cookie
    return cached !== null && Date.now() < cached.until && cached.version === this.#ctx.cookies.version ? cached.value : null
  }

  async #cookieHeader (): Promise<string> {
    const now = Date.now()
    const ctx = this.#ctx
    const version = ctx.cookies.version
    const cookies = await ctx.cookies.getCookies(ctx.url.href)
    let until = now + 1000
    for (const cookie of cookies) {
      const expiry = cookie.expiryTime()
      if (expiry !== undefined && expiry < until) until = expiry
    }
    const value = cookies.sort(cookieCompare).map((c) => c.cookieString()).join('; ')
    this.#cookie = { value, until, version }
    return value
  }

  #path (messageType: string | null): string {
    let path = this.#paths.get(messageType)
    if (path === undefined) {
      path = this.#pathOf(messageType)
      this.#paths.set(messageType, path)
    }
    return path
  }

  #pathOf (messageType: string | null): string {
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
    const body = options.body ?? ctx.stringify(payload)
    // a cached header without an await: no promise and no extra turn per request
    const cookie = this.#cachedCookie() ?? await this.#cookieHeader()
    const requestHeaders: Record<string, string> = {
      'content-type': 'application/json;charset=UTF-8',
      accept: 'application/json',
      ...headers
    }
    if (cookie !== '') requestHeaders.cookie = cookie
    let response
    try {
      response = await this.#client(options.isConnect).request({
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
    const setCookie = response.headers['set-cookie']
    if (setCookie !== undefined) await this.#storeCookies(setCookie)
    if (response.statusCode < 200 || response.statusCode >= 300) {
      throw new HttpStatusError(response.statusCode, text.slice(0, 200))
    }
    const handled = ctx.receive(ctx.parse(text), responseHeaders, this)
    if (handled !== undefined) await handled
  }

  async #storeCookies (setCookie: string | string[]): Promise<void> {
    for (const line of Array.isArray(setCookie) ? setCookie : [setCookie]) {
      try {
        await this.#ctx.cookies.setCookie(line, this.#ctx.url.href, { ignoreError: true })
      } catch (error) {
        this.#ctx.logger.debug({ err: error }, 'ignored an invalid Set-Cookie header')
      }
    }
  }

  reset (reason: string): void {
    const clients = this.#clients
    this.#clients = [null, null]
    this.#cookie = null
    const error = new TransportConnectionClosed(`Connection reset: ${reason}`)
    if (clients[0] !== null || clients[1] !== null) this.#ctx.logger.debug({ reason }, 'long-polling: dropping every connection')
    for (const client of clients) {
      if (client !== null) client.destroy(error).catch(() => {})
    }
  }

  async close (): Promise<void> {
    this.#closed = true
    const clients = this.#clients
    this.#clients = [null, null]
    await Promise.all(clients.map(async (client) => { if (client !== null) await client.destroy().catch(() => {}) }))
  }
}

function flattenHeaders (headers: Record<string, string | string[] | undefined>): Headers {
  const out: Headers = {}
  // keys rather than entries: no [key, value] array per header per response
  for (const key of Object.keys(headers)) {
    const value = headers[key]
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
