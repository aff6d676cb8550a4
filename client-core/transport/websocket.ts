/**
 * websocket over `ws`: one socket per client, opened on the first send with the headers (and cookies) of that send.
 * Replies arrive as frames and are matched by the session. A read deadline finds a dead (half-open) socket:
 * every `pingIntervalMs` the socket is pinged, and a socket from which nothing (not even a pong) arrived for two
 * intervals is terminated at once — no close handshake is awaited on a dead socket.
 */
import { WebSocket } from 'ws'
import type { RawData } from 'ws'
import type { TLSSocket } from 'node:tls'
import type { IncomingMessage } from 'node:http'
import type { Headers } from '../extensions.js'
import type { Payload } from '../protocol/message.js'
import { ProxyError, TransportConnectionClosed, TransportError, TransportTimeoutError, WebSocketUpgradeError } from '../errors.js'
import { checkPin, tlsConnectOptions } from './tls.js'
import { TunnelAgent } from './tunnel.js'
import type { SendOptions, Transport, TransportContext } from './transport.js'

/** Frames waiting for the previous one's receive() before the socket stops being read (ws pause()). */
const MAX_BACKLOG = 1024

/** A text frame as a string: ws hands over a Buffer (or the Buffers of a fragmented message); decode without copying. */
function decode (data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString('utf8')
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8')
  return Buffer.from(data).toString('utf8')
}

export class WebSocketTransport implements Transport {
  readonly type = 'websocket' as const
  readonly maxInFlight = Infinity
  readonly #ctx: TransportContext
  #socket: WebSocket | null = null
  #opening: Promise<WebSocket> | null = null
  #heartbeat: NodeJS.Timeout | null = null
  #lastSeen = 0
  /** a frame is being received (its `receive()` promise has not settled yet): later frames wait in #backlog */
  #busy = false
  /** frames received while #busy, in order, from #backlogHead on; bounded by pausing the socket */
  readonly #backlog: Array<{ socket: WebSocket, text: string }> = []
  #backlogHead = 0
  #closed = false

  constructor (context: TransportContext) {
    this.#ctx = context
  }

  get #wsUrl (): string {
    const url = new URL(this.#ctx.url.href)
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:'
    return url.href
  }

  async send (payload: Payload, headers: Headers, options: SendOptions): Promise<void> {
    if (this.#closed) throw new TransportConnectionClosed('The transport is closed')
    const socket = await this.#open(headers, options)
    const text = options.body ?? this.#ctx.stringify(payload)
    await new Promise<void>((resolve, reject) => {
      socket.send(text, (error) => {
        if (error == null) resolve()
        else reject(new TransportConnectionClosed(`WebSocket send failed: ${error.message}`, { cause: error }))
      })
    })
  }

  #open (headers: Headers, options: SendOptions): Promise<WebSocket> {
    if (this.#socket !== null && this.#socket.readyState === WebSocket.OPEN) return Promise.resolve(this.#socket)
    this.#opening ??= this.#connect(headers, options).finally(() => { this.#opening = null })
    return this.#opening
  }

  async #connect (headers: Headers, options: SendOptions): Promise<WebSocket> {
    const socket = await this.#newSocket(headers, options)
    return await new Promise<WebSocket>((resolve, reject) => {
      let settled = false
      const fail = (error: TransportError): void => {
        if (settled) return
        settled = true
        options.signal.removeEventListener('abort', onAbort)
        socket.removeAllListeners()
        socket.on('error', () => {})
        socket.terminate()
        reject(error)
      }
      const onAbort = (): void => {
        const reason: unknown = options.signal.reason
        fail(reason instanceof TransportError ? reason : new TransportConnectionClosed('WebSocket open aborted'))
      }
      options.signal.addEventListener('abort', onAbort, { once: true })
      socket.once('upgrade', (response: IncomingMessage) => {
        try {
          this.#upgraded(response)
        } catch (error) {
          fail(error as TransportError)
        }
      })
      socket.once('unexpected-response', (_request, response: IncomingMessage) => {
        response.resume()
        fail(new WebSocketUpgradeError(response.statusCode ?? 0))
      })
      socket.once('error', (error: Error) => { fail(openError(error)) })
      socket.once('open', () => {
        if (settled) return
        settled = true
        options.signal.removeEventListener('abort', onAbort)
        socket.removeAllListeners()
        this.#adopt(socket)
        resolve(socket)
      })
    })
  }

  /** The socket, connecting: the session's cookies on the upgrade, its TLS options, through its proxy when it has one. */
  async #newSocket (headers: Headers, options: SendOptions): Promise<WebSocket> {
    const ctx = this.#ctx
    const cookie = await ctx.cookies.getCookieString(ctx.url.href)
    const requestHeaders: Record<string, string> = { ...headers }
    if (cookie !== '') requestHeaders.cookie = cookie
    const handshakeTimeout = Math.min(options.timeoutMs, ctx.maxNetworkDelayMs)
    return new WebSocket(this.#wsUrl, {
      headers: requestHeaders,
      handshakeTimeout,
      perMessageDeflate: false,
      maxPayload: 64 * 1024 * 1024,
      ...tlsConnectOptions(ctx.tls),
      // through the proxy: the upgrade goes over a CONNECT tunnel (TLS inside it for https)
      ...(ctx.proxy !== null ? { agent: new TunnelAgent(ctx.proxy, ctx.url.protocol === 'https:', handshakeTimeout) } : {})
    })
  }

  /** The upgrade answer: the certificate pin (throws), and the cookies it sets go into the session's jar. */
  #upgraded (response: IncomingMessage): void {
    const ctx = this.#ctx
    if (ctx.url.protocol === 'https:') checkPin(ctx.tls, response.socket as TLSSocket)
    for (const line of response.headers['set-cookie'] ?? []) {
      ctx.cookies.setCookie(line, ctx.url.href, { ignoreError: true }).catch(() => {})
    }
  }

  #adopt (socket: WebSocket): void {
    this.#socket = socket
    this.#lastSeen = Date.now()
    socket.on('message', (data: RawData, isBinary: boolean) => {
      this.#lastSeen = Date.now()
      if (isBinary) {
        this.#drop(socket, new TransportError('Received a binary websocket frame'))
        return
      }
      const text = decode(data)
      if (!this.#busy) {
        this.#process(socket, text)
        return
      }
      this.#backlog.push({ socket, text })
      if (this.#backlog.length - this.#backlogHead >= MAX_BACKLOG && !socket.isPaused) socket.pause()
    })
    socket.on('pong', () => { this.#lastSeen = Date.now() })
    socket.on('error', (error: Error) => { this.#drop(socket, new TransportConnectionClosed(`WebSocket error: ${error.message}`, { cause: error })) })
    socket.on('close', (code: number, reason: Buffer) => {
      this.#drop(socket, new TransportConnectionClosed(`WebSocket closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ''})`))
    })
    const interval = this.#ctx.pingIntervalMs
    if (interval > 0) {
      // Dead when nothing at all (not even the pong) arrived since the previous ping: found within 2 intervals.
      let pingedAt = 0
      this.#heartbeat = setInterval(() => {
        if (socket.isPaused) { // our own backpressure (#backlog full): not reading is not silence
          pingedAt = 0
          return
        }
        if (pingedAt > 0 && this.#lastSeen < pingedAt) {
          this.#drop(socket, new TransportTimeoutError(`WebSocket silent for ${Date.now() - this.#lastSeen} ms: connection dead`))
          return
        }
        pingedAt = Date.now()
        try { socket.ping() } catch { /* the close event follows */ }
      }, interval)
      this.#heartbeat.unref()
    }
  }

  /**
   * Parses and hands over one frame. Synchronous when the session's receive() is (no incoming extension waits):
   * only the settling of its promise is awaited before the next frame, which keeps frames in order.
   */
  #process (socket: WebSocket, text: string): void {
    let payload: Payload
    try {
      payload = this.#ctx.parse(text)
    } catch (error) {
      this.#drop(socket, error as Error)
      return
    }
    // A context may finish synchronously and return nothing: then there is nothing to wait for.
    let done: Promise<void> | undefined
    try {
      done = this.#ctx.receive(payload, null, this) as Promise<void> | undefined
    } catch (error) {
      this.#failed(error)
      return
    }
    if (done === undefined) return
    this.#busy = true
    done.then(this.#settled, this.#settledWithError)
  }

  readonly #settled = (): void => {
    this.#busy = false
    this.#next()
  }

  readonly #settledWithError = (error: unknown): void => {
    this.#busy = false
    this.#failed(error)
    this.#next()
  }

  #failed (error: unknown): void {
    this.#ctx.logger.warn({ err: error }, 'websocket: processing a frame failed')
  }

  /** Works through the frames that arrived while the previous one was being received. */
  #next (): void {
    const backlog = this.#backlog
    while (!this.#busy && this.#backlogHead < backlog.length) {
      const frame = backlog[this.#backlogHead]!
      backlog[this.#backlogHead] = undefined as unknown as { socket: WebSocket, text: string }
      this.#backlogHead++
      this.#process(frame.socket, frame.text)
    }
    if (this.#backlogHead === backlog.length) {
      backlog.length = 0
      this.#backlogHead = 0
      const socket = this.#socket
      if (socket !== null && socket.isPaused) socket.resume()
    }
  }

  /** Forgets a socket without a close handshake and fails what was sent over it. */
  #drop (socket: WebSocket, error: Error): void {
    if (this.#socket !== socket) return
    this.#socket = null
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat)
    this.#heartbeat = null
    socket.removeAllListeners()
    socket.on('error', () => {})
    socket.terminate()
    this.#ctx.logger.debug({ err: error }, 'websocket: connection dropped')
    this.#ctx.closed(this, error)
  }

  reset (reason: string): void {
    const socket = this.#socket
    if (socket !== null) this.#drop(socket, new TransportConnectionClosed(`Connection reset: ${reason}`))
  }

  async close (): Promise<void> {
    this.#closed = true
    const socket = this.#socket
    if (socket === null) return
    this.#socket = null
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat)
    this.#heartbeat = null
    socket.removeAllListeners()
    socket.on('error', () => {})
    // A polite close, but never wait for the peer: a dead socket must not hold anything up.
    if (socket.readyState === WebSocket.OPEN) socket.close(1000, 'Disconnect')
    const timer = setTimeout(() => socket.terminate(), 1000)
    timer.unref()
    socket.once('close', () => clearTimeout(timer))
  }
}

/** Why the socket could not open, as a transport error (a proxy's refusal keeps its own type). */
function openError (error: Error): TransportError {
  if (error instanceof ProxyError) return error
  return /timed out|timeout/i.test(error.message)
    ? new TransportTimeoutError('WebSocket opening handshake timed out', { cause: error })
    : new TransportError(`WebSocket connection failed: ${error.message}`, { cause: error })
}
