/**
 * Request bodies: whatever the Content-Type, the body is read as JSON text (curl -d sends form-urlencoded by
 * default). A sent but blank body is an error: Bayeux messages need data.
 */
import type { FastifyInstance } from 'fastify'
import { ErrorCode, HttpError } from '../errors.js'

export function installJsonBody (app: FastifyInstance): void {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8')
    if (text.trim() === '') {
      done(new HttpError(400, ErrorCode.BAD_JSON, 'The request body must be a JSON value (the message data)'), undefined)
      return
    }
    try {
      done(null, JSON.parse(text))
    } catch (err) {
      done(new HttpError(400, ErrorCode.BAD_JSON, `The request body is not valid JSON: ${(err as Error).message}`), undefined)
    }
  })
}
