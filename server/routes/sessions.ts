/** GET /sessions and GET /sessions/:name — state, connection type, subscriptions, counters. No secrets. */
import type { FastifyInstance } from 'fastify'
import { getSession } from './common.js'

export function sessionsRoutes (app: FastifyInstance): void {
  app.get('/sessions', async () => {
    return { sessions: [...app.bridge.sessions.values()].map((s) => s.view()) }
  })
  app.get<{ Params: { name: string } }>('/sessions/:name', async (req) => {
    return getSession(app, req.params.name).view()
  })
}
