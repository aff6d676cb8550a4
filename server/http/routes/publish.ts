/** POST /sessions/:name/publish/<channel path> — body = the JSON data; answers the server's reply. */
import type { FastifyInstance } from 'fastify'
import { channelFromPath, getSession, requireBody } from './common.js'

interface PublishRoute { Params: { name: string, '*': string } }

export function publishRoutes (app: FastifyInstance): void {
  app.post<PublishRoute>('/sessions/:name/publish/*', async (req) => {
    const session = getSession(app, req.params.name)
    const channel = channelFromPath(req.params['*'], 'publish')
    const data = requireBody(req.body)
    const reply = await session.publish(channel, data, app.bridge.config.http.publishTimeoutMs)
    return { successful: reply.successful ?? true, channel: reply.channel, id: reply.id ?? null }
  })
}
