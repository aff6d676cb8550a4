/**
 * CORS for browser apps on other origins (`http.cors`, docs/security.md), with @fastify/cors. Registered before
 * authentication: a preflight carries no Authorization header, so it is answered in @fastify/cors's onRequest
 * hook before the token check runs; the request that follows is authenticated as usual.
 *
 * Streams (SSE, NDJSON) write their status line and headers on the raw response after the reply is hijacked,
 * which drops the headers set on the reply: the CORS headers are copied onto the raw response as well.
 *
 * Without tokens the bridge refuses every cross-origin request (auth.ts), and the config refuses `http.cors`
 * there: CORS only ever opens what a token already allows.
 */
import cors from '@fastify/cors'
import type { FastifyInstance } from 'fastify'
import type { CorsConfig } from '../../config/index.js'

const METHODS = ['GET', 'POST', 'DELETE']
const REQUEST_HEADERS = ['Authorization', 'Content-Type', 'Accept', 'Last-Event-ID']
/** headers of the bridge's answers a page may read */
const EXPOSED_HEADERS = ['Bridge-Last-Event-ID', 'Retry-After', 'WWW-Authenticate']
const COPIED = ['access-control-allow-origin', 'access-control-allow-credentials', 'access-control-expose-headers', 'vary']

export async function registerCors (app: FastifyInstance, config: CorsConfig | undefined): Promise<void> {
  if (config === undefined || config.origins.length === 0) return
  await app.register(cors, {
    origin: config.origins.includes('*') ? '*' : config.origins,
    credentials: config.credentials,
    methods: METHODS,
    allowedHeaders: REQUEST_HEADERS,
    exposedHeaders: EXPOSED_HEADERS,
    maxAge: config.maxAgeSec,
    // an OPTIONS request that is not a preflight gets the same 204, not a text/plain 400
    strictPreflight: false
  })
  app.addHook('onRequest', async (_req, reply) => {
    if (reply.getHeader('access-control-allow-origin') === undefined) return
    for (const name of COPIED) {
      const value = reply.getHeader(name)
      if (value !== undefined) reply.raw.setHeader(name, value)
    }
  })
}
