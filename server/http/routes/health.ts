/** GET /healthz (alive), GET /readyz (every session connected with its permanent subscriptions), GET /metrics. */
import type { FastifyPluginAsync } from 'fastify'
import { ErrorCode } from '../../errors.js'

export const healthRoutes: FastifyPluginAsync = async (app) => {
  app.get('/healthz', {
    config: { access: 'open', probe: true },
    schema: {
      summary: 'Liveness: the process answers',
      tags: ['health'],
      answers: { 200: { description: 'Alive', type: 'object', properties: { status: { const: 'ok' }, uptimeSeconds: { type: 'integer', minimum: 0 } }, required: ['status', 'uptimeSeconds'] } }
    }
  }, async () => ({ status: 'ok', uptimeSeconds: Math.round(process.uptime()) }))

  app.get('/readyz', {
    config: { access: 'open', probe: true },
    schema: { summary: 'Readiness: every session connected upstream with its permanent subscriptions', tags: ['health'] }
  }, async (_req, reply) => {
    const sessions: Record<string, { ready: boolean, reason?: string }> = {}
    const problems: string[] = []
    for (const session of app.bridge.sessions.values()) {
      const r = session.readiness()
      sessions[session.name] = r
      if (!r.ready) problems.push(`${session.name}: ${r.reason}`)
    }
    if (app.bridge.draining) problems.unshift('shutting down')
    if (problems.length === 0) return { ready: true, sessions }
    return reply.code(503).header('Retry-After', '1').send({
      error: app.bridge.draining ? ErrorCode.SHUTTING_DOWN : ErrorCode.NOT_READY,
      message: problems.join('; '),
      sessions
    })
  })

  app.get('/metrics', {
    config: { access: 'metrics', public: 'metrics', probe: true },
    schema: { summary: 'Prometheus metrics', tags: ['health'] }
  }, async (_req, reply) => {
    const registry = app.bridge.metrics.registry
    const text = await registry.metrics()
    return reply.type(registry.contentType).send(text)
  })
}
