/** POST /admin/reload — re-read the configuration and apply it (session/reload.ts), for a token with `admin: true`. */
import type { FastifyPluginAsync } from 'fastify'
import { ErrorCode, HttpError } from '../../errors.js'

export const adminRoutes: FastifyPluginAsync = async (app) => {
  app.post('/admin/reload', {
    config: { access: 'admin' },
    schema: {
      summary: 'Re-read the configuration and apply it: sessions added, removed or restarted; tokens, ACLs and limits',
      tags: ['admin'],
      answers: { 200: { description: 'Applied (or unchanged): what changed', type: 'object', properties: { outcome: { enum: ['applied', 'unchanged'] } }, required: ['outcome'] } }
    }
  }, async () => {
    const o = await app.bridge.reload('POST /admin/reload')
    switch (o.outcome) {
      case 'invalid':
        throw new HttpError(422, ErrorCode.INVALID_CONFIG, `The configuration is invalid; the bridge keeps running on the previous one: ${o.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`, { details: { errors: o.errors } })
      case 'unavailable':
        throw new HttpError(409, ErrorCode.RELOAD_UNAVAILABLE, o.message)
      case 'failed':
        throw new HttpError(500, ErrorCode.INTERNAL, `Some sessions could not be started: ${o.failed.map((f) => f.session).join(', ')}`, { details: { ...o } })
      default:
        return o
    }
  })
}
