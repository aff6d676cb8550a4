/** POST /sessions/:name/call/service/<path> — request/reply over a /service channel (client-core remoteCall). */
import type { FastifyInstance } from 'fastify'
import { channelFromPath, getSession, requireBody } from './common.js'

interface CallRoute { Params: { name: string, '*': string } }

export function callRoutes (app: FastifyInstance): void {
  app.post<CallRoute>('/sessions/:name/call/*', async (req, reply) => {
    const session = getSession(app, req.params.name)
    const channel = channelFromPath(req.params['*'], 'call')
    const data = requireBody(req.body)
    const result = await session.call(channel, data, app.bridge.config.http.callTimeoutMs)
    // the reply's data as the body, whatever JSON it is (null when the reply had none)
    return reply.type('application/json; charset=utf-8').send(JSON.stringify(result === undefined ? null : result))
  })
}
