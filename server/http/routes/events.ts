/**
 * GET /sessions/:name/events — the SSE stream, with resume (Last-Event-ID header or ?lastEventId=).
 * With `Accept: application/x-ndjson` the same stream as one JSON object per line (sinks.ts, frames.ts).
 */
import type { FastifyInstance } from 'fastify'
import { ErrorCode, HttpError } from '../../errors.js'
import { HttpSink } from '../../hub/sinks.js'
import { getSession, parseStreamChannels } from './common.js'

interface EventsRoute {
  Params: { name: string }
  Querystring: { channel?: string | string[], lastEventId?: string | string[] }
}

const MAX_ID_LENGTH = 200

export function eventsRoutes (app: FastifyInstance): void {
  app.get<EventsRoute>('/sessions/:name/events', async (req, reply) => {
    const session = getSession(app, req.params.name)
    const patterns = parseStreamChannels(req.query.channel)
    const { sse, http } = app.bridge.config
    if (app.bridge.callerCount() >= sse.maxCallers) {
      throw new HttpError(503, ErrorCode.TOO_MANY_CALLERS, `The bridge serves at most ${sse.maxCallers} streams`, {
        headers: { 'Retry-After': String(Math.max(1, Math.ceil(sse.retryMs / 1000))) }
      })
    }
    const header = req.headers['last-event-id']
    const query = req.query.lastEventId
    const raw = typeof header === 'string' && header !== '' ? header : Array.isArray(query) ? query[0] : query
    const lastEventId = typeof raw === 'string' && raw !== '' ? raw.trim().slice(0, MAX_ID_LENGTH) : null
    const accept = req.headers.accept
    const format = typeof accept === 'string' && /application\/x-ndjson/i.test(accept) ? 'ndjson' : 'sse'
    const result = await session.attach(new HttpSink(reply.raw, format), patterns, lastEventId, Math.min(http.publishTimeoutMs, 10_000))
    if ('error' in result) throw result.error
    reply.hijack()
    if ('gone' in result) return
    result.caller.start(result.afterId === null ? {} : { 'Bridge-Last-Event-ID': result.afterId })
    req.log.info({ session: session.name, caller: result.caller.id, channels: patterns, lastEventId, format }, 'stream opened')
  })
}
