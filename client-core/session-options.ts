/**
 * What the session needs besides its state: the resolved options (validated once, in the constructor), the advice
 * merged over the defaults, and small predicates on replies and errors.
 */
import type { ConnectGate } from './connect-gate.js'
import { AckExtension } from './extensions/ack.js'
import { ClientError, CometdError, HttpStatusError, ServerError, TransportError } from './errors.js'
import type { AuthExtension, Extension } from './extensions.js'
import { ALL_CONNECTION_TYPES, DEFAULTS } from './options.js'
import type { ClientOptions, ConnectionType, HeadersOption, Logger, TlsOptions } from './options.js'
import type { Advice, Message } from './protocol/message.js'
import { resolveProxySetting } from './proxy.js'
import type { ResolvedProxy } from './proxy.js'

export const silentLogger: Logger = { trace () {}, debug () {}, info () {}, warn () {}, error () {} }

export interface ResolvedOptions {
  connectionTypes: ConnectionType[]
  connectionTimeoutMs: number | null
  maxPendingCount: number
  extensions: Extension[]
  auth: AuthExtension | null
  headers: HeadersOption | undefined
  tls: TlsOptions | undefined
  stringify: (value: unknown) => string
  parse: (text: string) => unknown
  maxNetworkDelayMs: number
  pingIntervalMs: number
  appendMessageTypeToURL: boolean
  autoBatch: boolean
  maxBatchMessages: number
  /** null: per transport (long-polling DEFAULTS.maxBatchBytes, websocket DEFAULTS.maxFrameBytes) */
  maxBatchBytes: number | null
  advice: { timeout: number, interval: number }
  handshakeProps: Record<string, unknown>
  proxy: ResolvedProxy
  connectGate: ConnectGate | null
}

export interface CurrentAdvice { reconnect: 'retry' | 'handshake' | 'none', timeout: number, interval: number, maxInterval: number }

export function positiveInteger (name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isInteger(value) || value < 1) throw new ClientError(`${name} must be a positive integer (got ${String(value)})`)
  return value
}

/** The Bayeux endpoint (ws: and wss: become http: and https:); throws ClientError when it is not one. */
export function resolveUrl (url: string): string {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch (error) {
    throw new ClientError(`Invalid URL ${JSON.stringify(url)}`, { cause: error })
  }
  if (!['http:', 'https:', 'ws:', 'wss:'].includes(parsed.protocol)) {
    throw new ClientError(`Unsupported URL scheme ${parsed.protocol} (use http: or https:)`)
  }
  if (parsed.protocol === 'ws:') parsed.protocol = 'http:'
  if (parsed.protocol === 'wss:') parsed.protocol = 'https:'
  return parsed.href
}

/** Validates the options and fills in the defaults; throws ClientError on a bad value. */
export function resolveOptions (options: ClientOptions): ResolvedOptions {
  const types = options.connectionTypes === undefined
    ? [...DEFAULTS.connectionTypes]
    : Array.isArray(options.connectionTypes) ? [...options.connectionTypes] : [options.connectionTypes]
  if (types.length === 0) throw new ClientError('connectionTypes must name at least one connection type')
  for (const type of types) {
    if (!ALL_CONNECTION_TYPES.includes(type)) throw new ClientError(`Unknown connection type ${JSON.stringify(type)}`)
  }
  return {
    connectionTypes: [...new Set(types)],
    connectionTimeoutMs: options.connectionTimeoutMs === undefined ? DEFAULTS.connectionTimeoutMs : options.connectionTimeoutMs,
    maxPendingCount: options.maxPendingCount ?? DEFAULTS.maxPendingCount,
    extensions: [...(options.extensions ?? []), ...(options.ack === true ? [new AckExtension()] : [])],
    auth: options.auth ?? null,
    headers: options.headers,
    tls: options.tls,
    stringify: options.jsonStringify ?? JSON.stringify,
    parse: options.jsonParse ?? JSON.parse,
    maxNetworkDelayMs: options.maxNetworkDelayMs ?? DEFAULTS.maxNetworkDelayMs,
    pingIntervalMs: options.pingIntervalMs ?? DEFAULTS.pingIntervalMs,
    appendMessageTypeToURL: options.appendMessageTypeToURL ?? false,
    autoBatch: options.autoBatch ?? true,
    maxBatchMessages: positiveInteger('maxBatchMessages', options.maxBatchMessages, DEFAULTS.maxBatchMessages),
    maxBatchBytes: options.maxBatchBytes === undefined ? null : positiveInteger('maxBatchBytes', options.maxBatchBytes, 0),
    advice: { ...DEFAULTS.advice, ...options.advice },
    handshakeProps: options.handshakeProps ?? {},
    proxy: resolveProxySetting(options.proxy),
    connectGate: options.connectGate ?? null
  }
}

/** The advice before any reply: the configured defaults. */
export function initialAdvice (options: ResolvedOptions): CurrentAdvice {
  return { reconnect: 'retry', timeout: options.advice.timeout, interval: options.advice.interval, maxInterval: 0 }
}

/** The advice after a /meta/connect or /meta/handshake reply (others leave it as it was). */
export function adviceAfter (reply: Message, current: CurrentAdvice, defaults: { timeout: number, interval: number }, logger: Logger): CurrentAdvice {
  const advice = reply.advice
  if (advice === undefined || (reply.channel !== '/meta/connect' && reply.channel !== '/meta/handshake')) return current
  if (advice['multiple-clients'] === true) {
    logger.warn('the server saw several sessions from this client\'s browser cookie (multiple-clients advice)')
  }
  return adviceFrom(advice, defaults)
}

/** The advice of a reply merged over the defaults (numbers clamped to 0 … 600,000 ms). */
export function adviceFrom (advice: Advice, defaults: { timeout: number, interval: number }): CurrentAdvice {
  const num = (value: unknown, fallback: number): number =>
    typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.min(value, 600_000) : fallback
  const reconnect = advice.reconnect === 'handshake' || advice.reconnect === 'none' ? advice.reconnect : 'retry'
  return {
    reconnect,
    timeout: num(advice.timeout, defaults.timeout),
    interval: num(advice.interval, defaults.interval),
    maxInterval: num(advice.maxInterval, 0)
  }
}

export function unknownSession (reply: Message): boolean {
  return typeof reply.error === 'string' && /^40[123]:[^:]*:\s*(unknown client|session_unknown)/i.test(reply.error)
}

export function limitError (reply: Message): boolean {
  return typeof reply.error === 'string' && /limit exceeded/i.test(reply.error)
}

export function authFailure (reply: Message): boolean {
  const error = typeof reply.error === 'string' ? reply.error : ''
  if (unknownSession(reply) || limitError(reply)) return false
  if (/^401:/.test(error)) return true
  return /^403:/.test(error) && (reply.channel === '/meta/handshake' || reply.channel === '/meta/connect')
}

/**
 * An HTTP 401/403, or a handshake refused for its credentials: a refusal to tell the auth extension after the
 * attempt failed (a refused /meta/connect is told where its reply is read).
 */
export function credentialsRefused (error: unknown): boolean {
  if (error instanceof HttpStatusError) return error.statusCode === 401 || error.statusCode === 403
  const reply = error instanceof ServerError ? error.response : null
  return reply !== null && reply.channel === '/meta/handshake' && authFailure(reply)
}

export function toTransportError (error: unknown): CometdError {
  if (error instanceof CometdError) return error
  const message = error instanceof Error ? error.message : String(error)
  return new TransportError(message, { cause: error })
}
