/**
 * How finished HTTP requests are logged: one line per request, at the level that says who has to act.
 *   health, readiness and metrics probes, and every request that succeeded   → debug (routine)
 *   4xx: the caller's mistake (bad JSON, unknown session, no token …)        → info, its code and message, no stack
 *   5xx because of the upstream, capacity or shutdown (502, 503, 504)        → warn, with the reason
 *   500: a fault of our own                                                  → error, with the stack
 * Fastify's own request lines (`incoming request` / `request completed`, both at info) are turned off in app.ts
 * (a LogController with `disableRequestLogging`): this hook replaces them. Streams (SSE, NDJSON, WebSocket) log their own open and
 * close lines; their requests are taken over by the stream and never finish here.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { answeredError, ErrorCode } from '../errors.js'
import type { HttpError } from '../errors.js'
import type { AppLogger } from './logger.js'

export type RequestLogLevel = 'debug' | 'info' | 'warn' | 'error'

/** `probe`: the route declares itself a health, readiness or metrics probe (route config `probe: true`). */
export function requestLogLevel (probe: boolean, status: number, error: HttpError | undefined): RequestLogLevel {
  const ours = status === 500 || error?.code === ErrorCode.INTERNAL
  if (ours) return 'error'
  if (probe || status < 400) return 'debug'
  return status < 500 ? 'info' : 'warn'
}

/** The cause's own message, when an answer wraps one (`connection lost: ECONNREFUSED …`). */
function causeText (error: HttpError): string | undefined {
  const cause = error.cause
  return cause instanceof Error ? cause.message : cause === undefined ? undefined : String(cause)
}

function logFinished (req: FastifyRequest, reply: FastifyReply): void {
  const status = reply.statusCode
  const error = answeredError(req)
  const level = requestLogLevel(req.routeOptions.config?.probe === true, status, error)
  if (!(req.log as unknown as AppLogger).isLevelEnabled(level)) return
  // `req` goes through the logger's request serializer (method, url with its secrets redacted, remote address)
  const line: Record<string, unknown> = {
    req,
    statusCode: status,
    responseTimeMs: Math.round(reply.elapsedTime * 10) / 10
  }
  if (error !== undefined) {
    line.error = error.code
    line.reason = error.message
    if (level === 'warn') line.cause = causeText(error)
    if (level === 'error') line.err = error.cause ?? error
  }
  const msg = level === 'debug' ? 'request completed' : level === 'info' ? 'request refused' : 'request failed'
  req.log[level](line, msg)
}

export function installRequestLog (app: FastifyInstance): void {
  app.addHook('onResponse', async (req, reply) => { logFinished(req, reply) })
}
