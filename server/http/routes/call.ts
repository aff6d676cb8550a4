/** POST /sessions/:name/call/service/<path> — request/reply over a /service channel (client-core remoteCall). */
import type { FastifyInstance } from 'fastify'
import { HttpError } from '../../errors.js'
import { channelFromPath, elapsedSeconds, getSession, requireBody } from './common.js'

interface CallRoute { Params: { name: string, '*': string } }

export function callRoutes (app: FastifyInstance): void {
  app.post<CallRoute>('/sessions/:name/call/*', async (req, reply) => {
    const session = getSession(app, req.params.name)
    const channel = channelFromPath(req.params['*'], 'call')
    const data = requireBody(req.body)
    const start = process.hrtime.bigint()
    try {
      const result = await session.call(channel, data, app.bridge.config.http.callTimeoutMs)
      app.bridge.metrics.callDuration.observe({ session: session.name, outcome: 'ok' }, elapsedSeconds(start))
      // the reply's data as the body, whatever JSON it is (null when the reply had none)
      return reply.type('application/json; charset=utf-8').send(JSON.stringify(result === undefined ? null : result))
    } catch (err) {
      const outcome = err instanceof HttpError ? err.code : 'error'
      app.bridge.metrics.callDuration.observe({ session: session.name, outcome }, elapsedSeconds(start))
      throw err
    }
  })
}
