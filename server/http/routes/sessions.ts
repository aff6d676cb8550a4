/** GET /sessions and GET /sessions/:name — state, connection type, subscriptions, counters. No secrets. */
import type { FastifyInstance } from 'fastify'
import { getSession } from './common.js'

export function sessionsRoutes (app: FastifyInstance): void {
  app.get('/sessions', async (req) => {
    // a token sees the sessions it may use (auth.ts); null = opened by auth.public.sessions
    const p = req.principal
    const visible = [...app.bridge.sessions.values()].filter((s) => p === null || app.access.sessionAllowed(p, s.name))
    const replicaId = app.bridge.replicaId
    return { ...(replicaId !== null ? { replicaId } : {}), sessions: visible.map((s) => s.view()) }
  })
  app.get<{ Params: { name: string } }>('/sessions/:name', async (req) => {
    return getSession(app, req.params.name).view()
  })
}
