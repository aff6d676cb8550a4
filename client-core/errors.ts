/**
 * Error classes of client-core. Every class has a stable `code`, a `name`, and takes `cause`.
 * The hierarchy follows aiocometd's so that its users find their way:
 *
 *   CometdError
 *   ├── ClientError ── ClientInvalidOperation, MessageEncodingError, MessageTooLargeError
 *   ├── TransportError ── TransportTimeoutError, TransportConnectionClosed, HttpStatusError, WebSocketUpgradeError, ProxyError
 *   └── ServerError
 */
import type { Message } from './protocol/message.js'

export class CometdError extends Error {
  readonly code: string = 'COMETD_ERROR'
  constructor (message: string, options?: ErrorOptions) {
    super(message, options)
    this.name = new.target.name
  }
}

/** A problem on the client side: bad arguments, impossible negotiation. */
export class ClientError extends CometdError {
  override readonly code: string = 'COMETD_CLIENT_ERROR'
}

/** The message's data cannot be serialized (a cycle, a BigInt, nesting deeper than the stack). */
export class MessageEncodingError extends ClientError {
  override readonly code: string = 'COMETD_ENCODING'
}

/** The server refused a message as too large (HTTP 413 to a request carrying it alone): it was not processed. */
export class MessageTooLargeError extends ClientError {
  override readonly code: string = 'COMETD_MESSAGE_TOO_LARGE'
}

/** The operation is not allowed in the client's current state (e.g. `publish()` on a closed client). */
export class ClientInvalidOperation extends ClientError {
  override readonly code: string = 'COMETD_INVALID_OPERATION'
}

/** The network or the server's reply was unusable: connection refused, HTTP error, malformed JSON, … */
export class TransportError extends CometdError {
  override readonly code: string = 'COMETD_TRANSPORT_ERROR'
}

/** A request, or the connection as a whole, was not answered in time. */
export class TransportTimeoutError extends TransportError {
  override readonly code: string = 'COMETD_TRANSPORT_TIMEOUT'
}

/** The connection carrying a request was lost before its reply arrived. The request may or may not have reached the server. */
export class TransportConnectionClosed extends TransportError {
  override readonly code: string = 'COMETD_CONNECTION_CLOSED'
}

/** Parsed form of a Bayeux `error` field: `"code:arg1,arg2:message"`. */
export interface BayeuxErrorFields {
  errorCode: number | null
  errorArgs: string[] | null
  errorMessage: string | null
}

/**
 * Parses a Bayeux error string. `"403:a,/foo:Denied"` → `{403, ["a", "/foo"], "Denied"}`.
 * Unlike aiocometd, a colon inside the message stays in the message: args are between the first and the second colon.
 */
export function parseBayeuxError (error: unknown): BayeuxErrorFields {
  if (typeof error !== 'string') return { errorCode: null, errorArgs: null, errorMessage: null }
  const first = error.indexOf(':')
  if (first < 0) {
    const code = /^\d{3}$/.test(error) ? Number(error) : null
    return { errorCode: code, errorArgs: null, errorMessage: code === null ? error : null }
  }
  const codeText = error.slice(0, first)
  const errorCode = /^\d{3}$/.test(codeText) ? Number(codeText) : null
  const second = error.indexOf(':', first + 1)
  if (second < 0) return { errorCode, errorArgs: null, errorMessage: error.slice(first + 1) }
  const argsText = error.slice(first + 1, second)
  return {
    errorCode,
    errorArgs: argsText === '' ? [] : argsText.split(','),
    errorMessage: error.slice(second + 1)
  }
}

/** The server answered `successful: false`. `response` is the whole reply message. */
export class ServerError extends CometdError {
  override readonly code: string = 'COMETD_SERVER_ERROR'
  readonly response: Message | null
  readonly error: string | null
  readonly errorCode: number | null
  readonly errorArgs: string[] | null
  readonly errorMessage: string | null

  constructor (message: string, response: Message | null, options?: ErrorOptions) {
    const error = typeof response?.error === 'string' ? response.error : null
    super(error === null ? message : `${message} (${error})`, options)
    this.response = response
    this.error = error
    const fields = parseBayeuxError(error)
    this.errorCode = fields.errorCode
    this.errorArgs = fields.errorArgs
    this.errorMessage = fields.errorMessage
  }
}

/** The HTTP response had a non-2xx status. 401/403 lead to re-authentication when an AuthExtension is set. */
export class HttpStatusError extends TransportError {
  override readonly code: string = 'COMETD_HTTP_STATUS'
  readonly statusCode: number
  constructor (statusCode: number, body: string, options?: ErrorOptions) {
    super(`HTTP ${statusCode}${body === '' ? '' : `: ${body}`}`, options)
    this.statusCode = statusCode
  }
}

/** The websocket upgrade was answered with an HTTP status other than 101: the server does not speak websocket there. */
export class WebSocketUpgradeError extends TransportError {
  override readonly code: string = 'COMETD_WS_UPGRADE'
  readonly statusCode: number
  constructor (statusCode: number, options?: ErrorOptions) {
    super(`WebSocket upgrade refused with HTTP ${statusCode}`, options)
    this.statusCode = statusCode
  }
}

/** The HTTP proxy in front of the upstream could not be reached, or refused the tunnel (`statusCode`: its answer, e.g. 407). */
export class ProxyError extends TransportError {
  override readonly code: string = 'COMETD_PROXY'
  readonly statusCode: number | null
  constructor (message: string, statusCode: number | null, options?: ErrorOptions) {
    super(message, options)
    this.statusCode = statusCode
  }
}
