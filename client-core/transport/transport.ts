/**
 * The seam between the session (Bayeux logic) and the network. A transport moves payloads; it knows nothing of
 * advice, ids or subscriptions. Every payload it receives — an HTTP response or a websocket frame — goes to
 * `TransportContext.receive()`. The session never imports undici or ws.
 */
import type { Headers } from '../extensions.js'
import type { ConnectionType, Logger, TlsOptions } from '../options.js'
import type { Payload } from '../protocol/message.js'
import { CookieJar } from 'tough-cookie'

/**
 * The session's cookie jar, shared by its transports. `version` changes with every cookie stored (by either
 * transport), so that a transport may cache the Cookie header it derived from the jar.
 */
export class SessionCookieJar extends CookieJar {
  version = 0

  override setCookie: CookieJar['setCookie'] = ((...args: unknown[]) => {
    this.version++
    return (CookieJar.prototype.setCookie as (...a: unknown[]) => unknown).apply(this, args)
  }) as CookieJar['setCookie']
}

export interface TransportContext {
  /** the Bayeux endpoint as the user gave it (http: or https:) */
  readonly url: URL
  readonly cookies: SessionCookieJar
  readonly tls: TlsOptions | undefined
  readonly logger: Logger
  readonly maxNetworkDelayMs: number
  readonly pingIntervalMs: number
  readonly appendMessageTypeToURL: boolean
  /** the HTTP(S) proxy to tunnel through, or null (direct) */
  readonly proxy: URL | null
  stringify (value: unknown): string
  /** Parses a body or frame into a payload; throws TransportError when it is not a Bayeux payload. */
  parse (text: string): Payload
  /**
   * Every payload received, with the response headers (HTTP) or null (websocket). Returns undefined when the payload
   * was handled synchronously (no incoming hook to await), else a promise that settles once it was handled.
   */
  receive (payload: Payload, headers: Headers | null, transport: Transport): void | Promise<void>
  /** A connection-oriented transport lost its connection: pending requests sent over it fail. */
  closed (transport: Transport, error: Error): void
}

export interface SendOptions {
  /** the request's own deadline, ms */
  timeoutMs: number
  signal: AbortSignal
  /** a held /meta/connect (long-polling keeps it in its own slot) */
  isConnect: boolean
  /** the /meta/* type of the first message, for URL suffixes */
  messageType: string | null
  /** the payload already serialized (the session serializes each message once); sent instead of stringifying it again */
  body?: string
}

export interface Transport {
  readonly type: ConnectionType
  /** Requests that may be in flight besides the connect (long-polling 1, websocket unlimited). */
  readonly maxInFlight: number
  /**
   * Sends one payload with the given headers (as `options.body` when given). Long-polling resolves after the response was handed to
   * `context.receive()`; websocket resolves once the frame is written (replies arrive as frames).
   * Rejects with a TransportError subclass.
   */
  send (payload: Payload, headers: Headers, options: SendOptions): Promise<void>
  /** Drops every connection at once, without a close handshake (after a timeout or a dead socket). */
  reset (reason: string): void
  /** Releases everything; the transport is not used again. */
  close (): Promise<void>
}

export type TransportFactory = (context: TransportContext) => Transport
