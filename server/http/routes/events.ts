/**
 * GET /sessions/:name/events — the SSE stream, with resume (Last-Event-ID header or ?lastEventId=).
 * With `Accept: application/x-ndjson` the same stream as one JSON object per line (sinks.ts, frames.ts).
 */
import type { FastifyPluginAsync } from 'fastify'
import { SSE_HEADERS } from '../../frames.js'
import { HttpSink, NDJSON_HEADERS } from '../../hub/sinks.js'
import { requestChannels } from '../channel-rules.js'
import { getSession, lastEventIdOf, requireCallerSlot, sessionParams, subscribeWaitMs } from './common.js'

interface EventsRoute {
  Params: { name: string }
  Querystring: { channel?: string | string[], lastEventId?: string | string[] }
}

const eventsQuery = {
  type: 'object',
  properties: {
    channel: { description: 'a channel or pattern (/a/*, /a/**), repeatable', anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
    lastEventId: { description: 'resume after this id (the Last-Event-ID header wins)', anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
    access_token: { type: 'string', description: 'the caller token, on SSE streams with auth.allowQueryToken only' }
  }
} as const

export const eventsRoutes: FastifyPluginAsync = async (app) => {
  app.get<EventsRoute>('/sessions/:name/events', {
    config: { access: 'session', channels: 'stream', queryToken: true },
    schema: { params: sessionParams, querystring: eventsQuery, summary: 'Stream a session\'s channels as Server-Sent Events or NDJSON', tags: ['streams'] }
  }, async (req, reply) => {
    const session = getSession(app, req.params.name)
    const patterns = requestChannels(req)
    const accept = req.headers.accept
    const format = typeof accept === 'string' && /application\/x-ndjson/i.test(accept) ? 'ndjson' : 'sse'
    // HEAD (exposeHeadRoutes runs this handler): the stream's headers, after the same checks, and no stream
    if (req.method === 'HEAD') {
      const { Connection: _connection, ...headers } = format === 'ndjson' ? NDJSON_HEADERS : SSE_HEADERS
      return reply.code(200).headers(headers).send()
    }
    requireCallerSlot(app)
    const header = req.headers['last-event-id']
    const query = req.query.lastEventId
    const lastEventId = lastEventIdOf(typeof header === 'string' && header !== '' ? header : Array.isArray(query) ? query[0] : query)
    const result = await session.callers.attach(new HttpSink(reply.raw, format), patterns, lastEventId, subscribeWaitMs(app.bridge.config.http))
    if ('error' in result) throw result.error
    reply.hijack()
    if ('gone' in result) return
    result.caller.start(result.afterId === null ? {} : { 'Bridge-Last-Event-ID': result.afterId })
    req.log.info({ session: session.name, caller: result.caller.id, channels: patterns, lastEventId, format }, 'stream opened')
  })
}
