/**
 * The root pino logger. Authorization/Cookie headers (requests, responses, configured upstream headers) and
 * anything named like a token or password are redacted; paths are fixed here, never built from input.
 */
import { pino } from 'pino'
import type { Logger } from 'pino'

export type AppLogger = Logger

export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'headers.Authorization',
  'headers.cookie',
  'headers.Cookie',
  '*.headers.authorization',
  '*.headers.Authorization',
  '*.headers.cookie',
  '*.headers.Cookie',
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  'password',
  '*.password',
  'ext.auth',
  '*.ext.auth',
  // caller tokens (?access_token= on SSE streams)
  'access_token',
  '*.access_token',
  'req.query.access_token'
]

/** `?access_token=…` (and other secret-named query parameters) in a logged URL → `[redacted]`. */
export function redactUrlQuery (url: string): string {
  return url.replace(/([?&](?:access_token|[^=&#]*(?:token|secret|passw|api[-_]?key)[^=&#]*)=)[^&#]*/gi, '$1[redacted]')
}

/** Fastify's request serializer, with the query's secrets redacted (a token may be in the URL of an SSE stream). */
function reqSerializer (req: Record<string, unknown>): Record<string, unknown> {
  if (typeof req !== 'object' || req === null) return req
  const url = typeof req.url === 'string' ? redactUrlQuery(req.url) : req.url
  if (typeof req.method !== 'string') return { ...req, url }
  const socket = req.socket as { remotePort?: number } | undefined
  return { method: req.method, url, host: req.host, remoteAddress: req.ip, remotePort: socket?.remotePort }
}

export function createLogger (level: string, destination?: NodeJS.WritableStream): AppLogger {
  const options = {
    level,
    base: { service: 'cometd-bridge' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { req: reqSerializer }
  }
  return destination === undefined ? pino(options) : pino(options, destination as unknown as pino.DestinationStream)
}
