/** GET /sessions and GET /sessions/:name — state, connection type, subscriptions, counters. No secrets. */
import type { FastifyPluginAsync } from 'fastify'
import { getSession, sessionParams } from './common.js'

export const sessionsRoutes: FastifyPluginAsync = async (app) => {
  app.get('/sessions', {
    config: { access: 'authenticated', public: 'sessions' },
    schema: { summary: 'The sessions this caller may use, with their state' }
  }, async (req) => {
    // a token sees the sessions it may use (auth.ts); null = opened by auth.public.sessions
    const p = req.principal
    const visible = [...app.bridge.sessions.values()].filter((s) => p === null || app.access.sessionAllowed(p, s.name))
    const replicaId = app.bridge.replicaId
    return { ...(replicaId !== null ? { replicaId } : {}), sessions: visible.map((s) => s.view()) }
  })
  app.get<{ Params: { name: string } }>('/sessions/:name', {
    config: { access: 'session', public: 'sessions' },
    schema: { params: sessionParams, summary: 'One session: state, subscriptions, counters, last error' }
  }, async (req) => {
    return getSession(app, req.params.name).view()
  })
}
