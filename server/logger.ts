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
  '*.ext.auth'
]

export function createLogger (level: string, destination?: NodeJS.WritableStream): AppLogger {
  const options = {
    level,
    base: { service: 'cometd-bridge' },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' }
  }
  return destination === undefined ? pino(options) : pino(options, destination as unknown as pino.DestinationStream)
}
