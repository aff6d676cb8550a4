/**
 * The root pino logger. Every line goes through the project's one redaction (config/redact.ts): secret-named
 * fields, secret headers, `ext.auth` and URLs in field values are hidden; request URLs are logged with the caller
 * token parameter (every spelling auth.ts accepts) and other secret-named query parameters redacted; request
 * headers are not logged at all; error messages have their URLs redacted.
 */
import { pino } from 'pino'
import type { Logger } from 'pino'
import { redactRequestUrl, redactValue } from '../../config/redact.js'

export type AppLogger = Logger

/** Fastify's request serializer: method, redacted URL, host and peer (never the headers). */
function reqSerializer (req: Record<string, unknown>): Record<string, unknown> {
  if (typeof req !== 'object' || req === null) return req
  const url = typeof req.url === 'string' ? redactRequestUrl(req.url) : req.url
  if (typeof req.method !== 'string') return { ...req, url }
  const socket = req.socket as { remotePort?: number } | undefined
  return { method: req.method, url, host: req.host, remoteAddress: req.ip, remotePort: socket?.remotePort }
}

/** pino's error serializer, with URLs in the message and stack redacted (a library's message may quote one). */
function errSerializer (err: unknown): unknown {
  const out = pino.stdSerializers.err(err as Error) as unknown as Record<string, unknown>
  if (typeof out !== 'object' || out === null) return out
  // pino gives it a prototype of its own: a plain copy is redacted (message and stack include the causes)
  return redactValue({ ...out })
}

export function createLogger (level: string, destination?: NodeJS.WritableStream): AppLogger {
  const options = {
    level,
    base: { service: 'cometd-bridge' },
    formatters: { log: (obj: Record<string, unknown>) => redactValue(obj) as Record<string, unknown> },
    serializers: { req: reqSerializer, err: errSerializer }
  }
  return destination === undefined ? pino(options) : pino(options, destination as unknown as pino.DestinationStream)
}
