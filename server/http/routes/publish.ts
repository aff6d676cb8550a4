/** POST /sessions/:name/publish/<channel path> — body = the JSON data; answers the server's reply. */
import type { FastifyInstance } from 'fastify'
import { HttpError } from '../../errors.js'
import { channelFromPath, elapsedSeconds, getSession, requireBody } from './common.js'

interface PublishRoute { Params: { name: string, '*': string } }

export function publishRoutes (app: FastifyInstance): void {
  app.post<PublishRoute>('/sessions/:name/publish/*', async (req) => {
    const session = getSession(app, req.params.name)
    const channel = channelFromPath(req.params['*'], 'publish')
    const data = requireBody(req.body)
    const start = process.hrtime.bigint()
    try {
      const reply = await session.publish(channel, data, app.bridge.config.http.publishTimeoutMs)
      app.bridge.metrics.publishDuration.observe({ session: session.name, outcome: 'ok' }, elapsedSeconds(start))
      return { successful: reply.successful ?? true, channel: reply.channel, id: reply.id ?? null }
    } catch (err) {
      const outcome = err instanceof HttpError ? err.code : 'error'
      app.bridge.metrics.publishDuration.observe({ session: session.name, outcome }, elapsedSeconds(start))
      throw err
    }
  })
}
