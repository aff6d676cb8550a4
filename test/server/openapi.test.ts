/**
 * GET /openapi.json: every route fastify registered is described (with its methods), the document is open like
 * /healthz, and real answers (/healthz, GET /sessions/:name, errors) validate against the schemas it gives.
 */
import t from 'tap'
import { Writable } from 'node:stream'
import type { AddressInfo } from 'node:net'
import type { RouteOptions } from 'fastify'
import { Ajv } from 'ajv'
import { defaultConfig } from '../../config/index.js'
import { buildApp } from '../../server/app.js'
import { createLogger } from '../../server/ops/logger.js'
import { startFaye } from '../helpers/faye.js'
import { makeConfig, request, waitConnected } from './fixtures/bridge.js'
import { tokenEntry } from './fixtures/callers.js'

t.setTimeout(60_000)

const TOKEN = 'openapi-test-token-0123456789abcdef'

/** `/sessions/:name/publish/*` → `/sessions/{name}/publish/{*}`, as the document spells paths */
function openApiPath (url: string): string {
  return url.replace(/:([A-Za-z0-9_]+)/g, '{$1}').replace(/\*$/, '{*}')
}

interface Doc { openapi: string, paths: Record<string, Record<string, { summary?: string, tags?: string[], security?: unknown[], responses: Record<string, { content?: Record<string, { schema: object }> }> }>> }

function answerSchema (doc: Doc, path: string, method: string, status: string): object {
  const schema = doc.paths[path]?.[method]?.responses[status]?.content?.['application/json']?.schema
  if (schema === undefined) throw new Error(`no ${status} schema for ${method.toUpperCase()} ${path}`)
  return schema
}

t.test('openapi - every route is described; real answers validate against it', async (t) => {
  const faye = await startFaye({ timeoutSec: 2 })
  t.teardown(faye.close)
  const config = makeConfig({ f: { url: faye.url } })
  config.auth = { ...defaultConfig().auth, tokens: [tokenEntry({ name: 'all', token: TOKEN, sessions: ['*'], subscribe: ['/**'], publish: ['/**'] })] }
  const routes: Array<{ url: string, method: string }> = []
  const onRoute = (r: RouteOptions): void => {
    for (const method of [r.method].flat()) routes.push({ url: r.url, method: method.toLowerCase() })
  }
  const logger = createLogger('warn', new Writable({ write (_c, _e, cb) { cb() } }))
  const app = await buildApp(config, { logger, defaultMetrics: false, onRoute })
  t.teardown(async () => { await app.close() })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  await waitConnected(app)

  const res = await request(`${base}/openapi.json`)
  t.equal(res.status, 200, 'open without a token, like /healthz')
  const doc = res.json as Doc
  t.equal(doc.openapi, '3.1.0')
  t.ok(routes.length >= 20, `fastify registered ${routes.length} routes (HEAD included)`)
  const missing = routes.filter((r) => doc.paths[openApiPath(r.url)]?.[r.method] === undefined).map((r) => `${r.method} ${r.url}`)
  t.same(missing, [], 'every registered route is in the document')
  const untagged = Object.entries(doc.paths).flatMap(([p, ops]) => Object.entries(ops).filter(([, op]) => op.summary === undefined || op.tags === undefined).map(([m]) => `${m} ${p}`))
  t.same(untagged, [], 'every operation has a summary and a tag')
  t.same(doc.paths['/healthz']?.get?.security, [], '/healthz is documented as open')
  t.equal(doc.paths['/sessions/{name}']?.get?.security, undefined, 'GET /sessions/{name} takes the document\'s bearer security')

  const ajv = new Ajv({ strict: false })
  const check = (schema: object, body: unknown, what: string): void => {
    const validate = ajv.compile(schema)
    t.ok(validate(body), `${what} validates${validate.errors != null ? ': ' + ajv.errorsText(validate.errors) : ''}`)
  }
  check(answerSchema(doc, '/healthz', 'get', '200'), (await request(`${base}/healthz`)).json, '/healthz')
  const auth = { authorization: `Bearer ${TOKEN}` }
  const one = await request(`${base}/sessions/f`, { headers: auth })
  t.equal(one.status, 200)
  check(answerSchema(doc, '/sessions/{name}', 'get', '200'), one.json, 'GET /sessions/f')
  check(answerSchema(doc, '/sessions', 'get', '200'), (await request(`${base}/sessions`, { headers: auth })).json, 'GET /sessions')
  const errors = [
    ['/sessions/nope', 'get', await request(`${base}/sessions/nope`, { headers: auth })],
    ['/sessions/{name}', 'get', await request(`${base}/sessions/f`)],
    ['/sessions/{name}/publish/{*}', 'post', await request(`${base}/sessions/f/publish/a`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: '{' })]
  ] as const
  for (const [path, method, answer] of errors) {
    t.ok(answer.status >= 400 && answer.status < 500, `${method} ${path}: ${answer.status}`)
    check(answerSchema(doc, path === '/sessions/nope' ? '/sessions/{name}' : path, method, '4XX'), answer.json, `${answer.status} ${String(answer.json.error)}`)
  }
  t.equal(one.json.name, 'f', 'answers keep every field (no serializer in between)')
  t.ok('lastMessageAt' in one.json && 'buffer' in one.json)
})
