/** GET /sessions and GET /sessions/:name — state, connection type, subscriptions, counters. No secrets. */
import type { FastifyPluginAsync } from 'fastify'
import { getSession, sessionAnswer, sessionParams } from './common.js'

export const sessionsRoutes: FastifyPluginAsync = async (app) => {
  app.get('/sessions', {
    config: { access: 'authenticated', public: 'sessions' },
    schema: {
      summary: 'The sessions this caller may use, with their state',
      tags: ['sessions'],
      answers: { 200: { description: 'The sessions', type: 'object', properties: { sessions: { type: 'array', items: sessionAnswer } }, required: ['sessions'] } }
    }
  }, async (req) => {
    // a token sees the sessions it may use (auth.ts); null = opened by auth.public.sessions
    const p = req.principal
    const visible = [...app.bridge.sessions.values()].filter((s) => p === null || app.access.sessionAllowed(p, s.name))
    const replicaId = app.bridge.replicaId
    return { ...(replicaId !== null ? { replicaId } : {}), sessions: visible.map((s) => s.view()) }
  })
  app.get<{ Params: { name: string } }>('/sessions/:name', {
    config: { access: 'session', public: 'sessions' },
    schema: { params: sessionParams, summary: 'One session: state, subscriptions, counters, last error', tags: ['sessions'], answers: { 200: sessionAnswer } }
  }, async (req) => {
    return getSession(app, req.params.name).view()
  })
}
