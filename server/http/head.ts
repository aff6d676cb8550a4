/**
 * HEAD wherever GET is (fastify's `exposeHeadRoutes`, app.ts): the GET handler runs and Node sends no body.
 * The stream route is the exception: its GET takes the connection over and attaches a caller, so a HEAD there is
 * answered here, after the same checks (auth ran before; session and channels here), with the stream's headers
 * and no stream. The WebSocket route's GET without an Upgrade is already a plain 426 answer.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { NDJSON_HEADERS } from '../hub/sinks.js'
import { SSE_HEADERS } from '../sse.js'
import { getSession, parseStreamChannels } from './routes/common.js'

const STREAM_ROUTE = '/sessions/:name/events'

function streamHeaders (req: FastifyRequest): Readonly<Record<string, string>> {
  const accept = req.headers.accept
  return typeof accept === 'string' && /application\/x-ndjson/i.test(accept) ? NDJSON_HEADERS : SSE_HEADERS
}

export function installHead (app: FastifyInstance): void {
  app.addHook('preHandler', async (req, reply) => {
    if (req.method !== 'HEAD' || req.routeOptions.url !== STREAM_ROUTE) return
    getSession(app, (req.params as { name: string }).name)
    parseStreamChannels((req.query as { channel?: unknown }).channel)
    const { Connection: _connection, ...headers } = streamHeaders(req)
    return reply.code(200).headers(headers).send()
  })
}
