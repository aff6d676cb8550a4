/** Client options and their defaults. */
import type { Extension, AuthExtension, Headers } from './extensions.js'

export const ConnectionType = {
  WEBSOCKET: 'websocket',
  LONG_POLLING: 'long-polling'
} as const
export type ConnectionType = typeof ConnectionType[keyof typeof ConnectionType]

/** Every connection type, in the default preference order: the one list the client, the config and the server use. */
export const ALL_CONNECTION_TYPES = [ConnectionType.WEBSOCKET, ConnectionType.LONG_POLLING] as const

/** A pino-compatible logger (only the methods the client calls). */
export interface Logger {
  trace: LogFn
  debug: LogFn
  info: LogFn
  warn: LogFn
  error: LogFn
  child?: (bindings: Record<string, unknown>) => Logger
}
export type LogFn = (obj: unknown, msg?: string, ...args: unknown[]) => void

export interface TlsOptions {
  /** default true */
  rejectUnauthorized?: boolean
  /** PEM CA certificate(s) to trust */
  ca?: string | Buffer | Array<string | Buffer>
  /** Pin the server certificate: SHA-256 fingerprint as "AB:CD:…" (colons optional, case-insensitive). */
  fingerprint256?: string
}

export interface BackoffOptions {
  /** first retry delay cap, ms (default 250) */
  initialMs?: number
  /** largest delay during the first minute of an outage, ms (default 1_000): back within ~1 s of the server returning */
  earlyMaxMs?: number
  /** largest delay after that, ms (default 8_000: with full jitter ≈ 0.25 attempts/s) */
  maxMs?: number
}

export type HeadersOption = Headers | (() => Headers | Promise<Headers>)

export interface ClientOptions {
  /** Preference order; a single type means that type or `ClientError`. Default ['websocket', 'long-polling']. */
  connectionTypes?: ConnectionType | ConnectionType[]
  /** `receive()` rejects with TransportTimeoutError after the connection has been down this long. null = never. Default 10_000. */
  connectionTimeoutMs?: number | null
  /** Bound of the receive buffer; <= 0 = unbounded. Default 100. When full the oldest message is dropped and counted. */
  maxPendingCount?: number
  extensions?: Extension[]
  auth?: AuthExtension | null
  /** Headers on every HTTP request and on the websocket upgrade; a function is called before each. */
  headers?: HeadersOption
  tls?: TlsOptions
  jsonStringify?: (value: unknown) => string
  jsonParse?: (text: string) => unknown
  /** Deadline of a request beyond the time the server may hold it, ms. Default 10_000. */
  maxNetworkDelayMs?: number
  logger?: Logger
  /** Reconnect backoff (full jitter). */
  backoff?: BackoffOptions
  /** Post handshakes to `<url>/handshake`, connects to `<url>/connect`… (CometD convention). Default false; off anyway when the URL has a query or a dotted last segment. */
  appendMessageTypeToURL?: boolean
  /** Merge queued publishes/subscribes into one request (long-polling) or frame. Default true. */
  autoBatch?: boolean
  /** With autoBatch: the most messages taken from the queue for one batch. Default 1_000. */
  maxBatchMessages?: number
  /**
   * The most characters of JSON (bytes, for ASCII) in one long-polling request body or websocket frame; a batch
   * over it goes as several requests, one after another, and a single larger message goes alone. Default 524_288
   * (512 KiB) for long-polling and 32_768 for websocket frames (Jetty-based CometD servers refuse frames over
   * 64 KiB by default); setting it applies to both. When a server answers a long-polling batch with HTTP 413,
   * the client halves its cap (not below 8 KiB) for the rest of its life and sends the same messages again in
   * smaller requests; a message refused alone fails with MessageTooLargeError.
   */
  maxBatchBytes?: number
  /** Websocket: interval of ws pings that find a dead socket, ms (default 5_000); a socket silent for 3 intervals is dropped. */
  pingIntervalMs?: number
  /** Advice the client sends on handshake (timeout/interval, ms). */
  advice?: { timeout?: number, interval?: number }
  /** Acknowledged delivery (the CometD ack extension): events lost with a broken connection are re-sent by the server. */
  ack?: boolean
  /** Extra fields merged into the handshake message (e.g. `{ ext: { … } }`); kept for re-handshakes. */
  handshakeProps?: Record<string, unknown>
  /**
   * Reach the server through an HTTP(S) proxy (a CONNECT tunnel, both transports): its URL, credentials allowed
   * (`http://user:pass@proxy.internal:3128`), `'env'` to follow HTTPS_PROXY / HTTP_PROXY / NO_PROXY, or false.
   * Default false: connect directly, whatever the environment says.
   */
  proxy?: string | false
}

export const DEFAULTS = {
  connectionTypes: [...ALL_CONNECTION_TYPES] as ConnectionType[],
  connectionTimeoutMs: 10_000,
  maxPendingCount: 100,
  maxNetworkDelayMs: 10_000,
  pingIntervalMs: 5_000,
  maxBatchMessages: 1_000,
  maxBatchBytes: 512 * 1024,
  maxFrameBytes: 32 * 1024,
  backoff: { initialMs: 250, earlyMaxMs: 1_000, maxMs: 8_000 },
  advice: { timeout: 60_000, interval: 0 }
} as const
