/**
 * The HTTP error catalogue. Every error the bridge answers with has a stable `code` (the `error` field of the
 * JSON body), a status and a human message: `{ "error": CODE, "message": … }` plus optional details.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'

export const ErrorCode = {
  NOT_FOUND: 'not_found',
  UNKNOWN_SESSION: 'unknown_session',
  BAD_REQUEST: 'bad_request',
  MISSING_CHANNEL: 'missing_channel',
  INVALID_CHANNEL: 'invalid_channel',
  META_CHANNEL: 'meta_channel',
  NOT_A_SERVICE_CHANNEL: 'not_a_service_channel',
  TOO_MANY_CHANNELS: 'too_many_channels',
  BAD_JSON: 'bad_json',
  BODY_TOO_LARGE: 'body_too_large',
  UNSUPPORTED_MEDIA_TYPE: 'unsupported_media_type',
  INVALID_DATA: 'invalid_data',
  UPSTREAM_UNAVAILABLE: 'upstream_unavailable',
  UPSTREAM_DENIED: 'upstream_denied',
  UPSTREAM_REJECTED: 'upstream_rejected',
  UPSTREAM_TIMEOUT: 'upstream_timeout',
  CALL_TIMEOUT: 'call_timeout',
  TOO_MANY_CALLERS: 'too_many_callers',
  SHUTTING_DOWN: 'shutting_down',
  NOT_READY: 'not_ready',
  INTERNAL: 'internal_error',
  // auth, ACL, dynamic sessions, WebSocket
  UNAUTHORIZED: 'unauthorized',
  FORBIDDEN: 'forbidden',
  URL_NOT_ALLOWED: 'url_not_allowed',
  INVALID_URL: 'invalid_url',
  TOO_MANY_SESSIONS: 'too_many_sessions',
  NOT_DELETABLE: 'not_deletable',
  TOO_MANY_REQUESTS: 'too_many_requests',
  AUTH_UNAVAILABLE: 'auth_unavailable',
  // configuration reload
  INVALID_CONFIG: 'invalid_config',
  RELOAD_UNAVAILABLE: 'reload_unavailable'
} as const
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode]

export interface HttpErrorOptions {
  headers?: Record<string, string>
  /** extra fields merged into the JSON body (never secrets) */
  details?: Record<string, unknown>
  cause?: unknown
}

/** An error that becomes exactly one HTTP answer. */
export class HttpError extends Error {
  readonly statusCode: number
  readonly code: ErrorCode
  readonly headers: Record<string, string>
  readonly details: Record<string, unknown>

  constructor (statusCode: number, code: ErrorCode, message: string, options: HttpErrorOptions = {}) {
    super(message, { cause: options.cause })
    this.name = 'HttpError'
    this.statusCode = statusCode
    this.code = code
    this.headers = options.headers ?? {}
    this.details = options.details ?? {}
  }

  body (): Record<string, unknown> {
    return { error: this.code, message: this.message, ...this.details }
  }
}

/** The error each request was answered with (server/ops/request-log.ts logs it when the request finishes). */
const answered = new WeakMap<FastifyRequest, HttpError>()

export function answeredError (req: FastifyRequest): HttpError | undefined {
  return answered.get(req)
}

export function sendHttpError (reply: FastifyReply, err: HttpError): FastifyReply {
  answered.set(reply.request, err)
  for (const [name, value] of Object.entries(err.headers)) reply.header(name, value)
  return reply.code(err.statusCode).type('application/json; charset=utf-8').send(err.body())
}

/** Fastify's own errors (parsers, limits, routing) mapped onto the catalogue. */
export function toHttpError (err: FastifyError | Error): HttpError {
  if (err instanceof HttpError) return err
  const fe = err as FastifyError
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new HttpError(413, ErrorCode.BODY_TOO_LARGE, 'The request body is larger than the configured limit (http.bodyLimitBytes)')
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HttpError(415, ErrorCode.UNSUPPORTED_MEDIA_TYPE, 'Unsupported Content-Type: send JSON')
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new HttpError(400, ErrorCode.BAD_JSON, 'The request body is not valid JSON')
    default:
      break
  }
  const status = typeof fe.statusCode === 'number' ? fe.statusCode : 500
  if (status >= 400 && status < 500) return new HttpError(status, ErrorCode.BAD_REQUEST, fe.message || 'Bad request')
  return new HttpError(500, ErrorCode.INTERNAL, 'Internal error', { cause: err })
}

/** Installs the error and not-found handlers on an app. */
export function installErrorHandlers (app: {
  setErrorHandler: (fn: (err: FastifyError, req: FastifyRequest, reply: FastifyReply) => unknown) => unknown
  setNotFoundHandler: (fn: (req: FastifyRequest, reply: FastifyReply) => unknown) => unknown
}): void {
  // logged once the request is over, at the level server/ops/request-log.ts gives it
  app.setErrorHandler((err, _req, reply) => sendHttpError(reply, toHttpError(err)))
  app.setNotFoundHandler((req, reply) => {
    return sendHttpError(reply, new HttpError(404, ErrorCode.NOT_FOUND, `No route for ${req.method} ${req.url.split('?')[0] ?? ''}`))
  })
}
