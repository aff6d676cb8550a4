/**
 * Caller auth and ACL (issue 7): a per-token matrix over every endpoint (console files, WebSocket and NDJSON
 * included): allowed, 401 without or with a wrong token, 403 outside the token's rights; `?access_token=` only
 * on SSE streams and only when allowed; loopback-only without tokens; the start-up refusal (exit 78); tokens
 * never in the logs.
 */
import { createHash } from 'node:crypto'
import t from 'tap'
import { parseConfigObject } from '../../config/index.js'
import { AccessControl, isLoopbackAddress } from '../../server/http/auth.js'
import { defaultConfig } from '../../config/index.js'
import type { AuthConfig } from '../../config/index.js'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { makeConfig, startBridge, waitConnected } from './fixtures/bridge.js'
import { statusOf, tokenEntry, wsStatus } from './fixtures/callers.js'
import { spawnNode } from './fixtures/spawn.js'

const AUTH_DEFAULTS = defaultConfig().auth

const ADMIN = 'admin-token-0123456789abcdef'
const READER = 'reader-token-0123456789abcdef'
const WRITER = 'writer-token-0123456789abcdef'
const NORIGHTS = 'norights-token-0123456789abcd'
const WRONG = 'wrong-token-0123456789abcdefgh'
const sha = (s: string): string => createHash('sha256').update(s).digest('hex')

function authConfig (over: Partial<AuthConfig> = {}): AuthConfig {
  return {
    ...AUTH_DEFAULTS,
    tokens: [
      tokenEntry({ name: 'admin', token: ADMIN, sessions: ['*'], subscribe: ['/**'], publish: ['/**'], console: true, metrics: true, createSessions: true }),
      tokenEntry({ name: 'reader', token: READER, sessions: ['a'], subscribe: ['/chat/**'], console: true }),
      // the SHA-256 form: the token itself is not in the config
      tokenEntry({ name: 'writer', sha256: sha(WRITER).toUpperCase(), sessions: ['a'], publish: ['/chat/*', '/service/echo'] }),
      tokenEntry({ name: 'norights', token: NORIGHTS })
    ],
    ...over
  }
}

type Who = 'admin' | 'reader' | 'writer' | 'norights' | 'none' | 'wrong'
const WHO: Who[] = ['admin', 'reader', 'writer', 'norights', 'none', 'wrong']
const TOKEN_OF: Record<Who, string | null> = { admin: ADMIN, reader: READER, writer: WRITER, norights: NORIGHTS, none: null, wrong: WRONG }

/** expected status per caller */
type Expect = Record<Who, number>
const row = (admin: number, reader: number, writer: number, norights: number, none = 401, wrong = 401): Expect =>
  ({ admin, reader, writer, norights, none, wrong })

interface Case { name: string, method?: string, path: string, body?: string, accept?: string, ws?: boolean, expect: Expect }

t.test('auth - the per-token matrix over every endpoint', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const config = makeConfig({ a: { url: faye.url }, b: { url: faye.url } }, { http: { callTimeoutMs: 300, publishTimeoutMs: 3_000 } })
  config.auth = authConfig()
  config.dynamicSessions = { enabled: true, allowUrls: [faye.url], idleTimeoutMs: 60_000, maxPerToken: 5, maxTotal: 10 }
  const { app, base, logs } = await startBridge(t, config, { logLevel: 'trace' })
  await waitConnected(app)
  // both sessions connected: /readyz answers 200 to everyone (it is open)
  await waitFor(() => [...app.bridge.sessions.values()].every((s) => s.readiness().ready), { timeoutMs: 10_000 })

  const cases: Case[] = [
    { name: 'GET /healthz (open)', path: '/healthz', expect: row(200, 200, 200, 200, 200, 200) },
    { name: 'GET /readyz (open)', path: '/readyz', expect: row(200, 200, 200, 200, 200, 200) },
    { name: 'GET /metrics', path: '/metrics', expect: row(200, 403, 403, 403) },
    { name: 'GET / (console page)', path: '/', expect: row(200, 200, 403, 403) },
    { name: 'GET /console/app.js', path: '/console/app.js', expect: row(200, 200, 403, 403) },
    { name: 'GET /console/app.css', path: '/console/app.css', expect: row(200, 200, 403, 403) },
    { name: 'GET /console/config.json', path: '/console/config.json', expect: row(200, 200, 403, 403) },
    { name: 'GET /console/nope.txt', path: '/console/nope.txt', expect: row(404, 404, 403, 403) },
    { name: 'GET /sessions', path: '/sessions', expect: row(200, 200, 200, 200) },
    { name: 'GET /sessions/a', path: '/sessions/a', expect: row(200, 200, 200, 403) },
    { name: 'GET /sessions/b', path: '/sessions/b', expect: row(200, 403, 403, 403) },
    { name: 'GET /sessions/nope (no existence leak)', path: '/sessions/nope', expect: row(404, 403, 403, 403) },
    { name: 'SSE a /chat/x', path: '/sessions/a/events?channel=/chat/x', expect: row(200, 200, 403, 403) },
    { name: 'SSE a /chat/** + /other', path: '/sessions/a/events?channel=/chat/**&channel=/other', expect: row(200, 403, 403, 403) },
    { name: 'SSE b /chat/x', path: '/sessions/b/events?channel=/chat/x', expect: row(200, 403, 403, 403) },
    { name: 'SSE a, bad channel (400 after auth)', path: '/sessions/a/events?channel=nope', expect: row(400, 400, 400, 403) },
    { name: 'NDJSON a /chat/**', path: '/sessions/a/events?channel=/chat/**', accept: 'application/x-ndjson', expect: row(200, 200, 403, 403) },
    { name: 'publish a /chat/x', method: 'POST', path: '/sessions/a/publish/chat/x', body: '{"n":1}', expect: row(200, 403, 200, 403) },
    { name: 'publish a /chat/x/y (outside /chat/*)', method: 'POST', path: '/sessions/a/publish/chat/x/y', body: '{"n":1}', expect: row(200, 403, 403, 403) },
    { name: 'publish b /chat/x', method: 'POST', path: '/sessions/b/publish/chat/x', body: '{"n":1}', expect: row(200, 403, 403, 403) },
    { name: 'call a /service/echo (Faye: 504 after auth)', method: 'POST', path: '/sessions/a/call/service/echo', body: '{}', expect: row(504, 403, 504, 403) },
    { name: 'call a /service/other', method: 'POST', path: '/sessions/a/call/service/other', body: '{}', expect: row(504, 403, 403, 403) },
    { name: 'POST /sessions (dynamic)', method: 'POST', path: '/sessions', body: JSON.stringify({ url: faye.url }), expect: row(201, 403, 403, 403) },
    { name: 'DELETE /sessions/a (configured: 409 after auth)', method: 'DELETE', path: '/sessions/a', expect: row(409, 409, 409, 403) },
    { name: 'WebSocket a', path: '/sessions/a/ws', ws: true, expect: row(101, 101, 101, 403) },
    { name: 'WebSocket b', path: '/sessions/b/ws', ws: true, expect: row(101, 403, 403, 403) },
    { name: 'GET /nowhere', path: '/nowhere', expect: row(404, 404, 404, 404) }
  ]

  const created: string[] = []
  const table: string[] = []
  for (const c of cases) {
    const got: string[] = []
    for (const who of WHO) {
      const token = TOKEN_OF[who]
      const headers: Record<string, string> = {}
      if (token !== null) headers.Authorization = `Bearer ${token}`
      if (c.accept !== undefined) headers.Accept = c.accept
      if (c.body !== undefined) headers['Content-Type'] = 'application/json'
      let status: number
      let res: Awaited<ReturnType<typeof statusOf>> | null = null
      if (c.ws === true) {
        status = await wsStatus(`${base.replace('http:', 'ws:')}${c.path}`, headers)
      } else {
        res = await statusOf(`${base}${c.path}`, { method: c.method ?? 'GET', headers, ...(c.body !== undefined ? { body: c.body } : {}) })
        status = res.status
        if (status === 201) created.push((JSON.parse(res.body) as { name: string }).name)
      }
      got.push(`${who}=${status}`)
      const want = c.expect[who]
      t.equal(status, want, `${c.name} as ${who}`)
      if (status === 401 && res !== null) {
        t.match(String(res.headers['www-authenticate']), /^Bearer realm="cometd-bridge"/, `${c.name} as ${who}: WWW-Authenticate`)
        t.equal(JSON.parse(res.body).error, 'unauthorized')
      }
      if (status === 403 && res !== null) t.equal(JSON.parse(res.body).error, 'forbidden', `${c.name} as ${who}: error code`)
    }
    table.push(`${c.name.padEnd(48)} ${got.join(' ')}`)
  }
  t.comment('matrix:\n' + table.join('\n'))
  for (const name of created) {
    const del = await statusOf(`${base}/sessions/${name}`, { method: 'DELETE', headers: { Authorization: `Bearer ${ADMIN}` } })
    t.equal(del.status, 204, 'the dynamic session made by the matrix is deleted by its owner')
  }

  t.test('GET /sessions lists only what the token may use', async (t) => {
    const names = async (token: string): Promise<string[]> => (JSON.parse((await statusOf(`${base}/sessions`, { headers: { Authorization: `Bearer ${token}` } })).body) as { sessions: Array<{ name: string }> }).sessions.map((s) => s.name).sort()
    t.same(await names(ADMIN), ['a', 'b'])
    t.same(await names(READER), ['a'])
    t.same(await names(NORIGHTS), [])
  })

  t.test('a browser navigation without a token gets the login page (401, HTML, strict CSP)', async (t) => {
    const res = await statusOf(`${base}/`, { headers: { Accept: 'text/html,application/xhtml+xml' } })
    t.equal(res.status, 401)
    t.match(String(res.headers['content-type']), /text\/html/)
    t.match(res.body, /id="login-token"/)
    t.match(String(res.headers['content-security-policy']), /script-src 'self' blob: 'sha256-/)
    t.match(String(res.headers['www-authenticate']), /^Bearer/)
    const app = await statusOf(`${base}/console/app.js`, { headers: { Accept: 'text/html' } })
    t.equal(app.status, 401, 'the console script itself is never served without a token')
    t.notMatch(app.body, /SKELETON|sub-form/)
  })

  t.test('malformed Authorization headers → 401', async (t) => {
    for (const value of ['Basic YWRtaW46eA==', 'Bearer', `Bearer ${ADMIN} extra`, `Token ${ADMIN}`, `Bearer ${'x'.repeat(5000)}`]) {
      const res = await statusOf(`${base}/sessions`, { headers: { Authorization: value } })
      t.equal(res.status, 401, value.slice(0, 30))
    }
    t.equal((await statusOf(`${base}/sessions`, { headers: { Authorization: `bearer ${ADMIN}` } })).status, 200, 'the scheme is case-insensitive')
  })

  t.test('?access_token= is refused while auth.allowQueryToken is false', async (t) => {
    const res = await statusOf(`${base}/sessions/a/events?channel=/chat/x&access_token=${ADMIN}`)
    t.equal(res.status, 401)
    t.match(JSON.parse(res.body).message, /allowQueryToken/)
  })

  t.test('tokens never appear in the logs', async (t) => {
    await waitFor(() => logs.lines.length > 100)
    const text = logs.text()
    for (const token of [ADMIN, READER, WRITER, NORIGHTS, WRONG]) t.notOk(text.includes(token), `no ${token.slice(0, 6)}… in ${logs.lines.length} log lines`)
    t.ok(logs.lines.some((l) => String((l.req as { url?: string } | undefined)?.url ?? '').includes('access_token=[redacted]')), 'the query token is redacted in the request log')
  })
})

t.test('auth - ?access_token= with allowQueryToken: SSE streams only', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const config = makeConfig({ a: { url: faye.url } })
  config.auth = authConfig({ allowQueryToken: true })
  const { app, base, logs } = await startBridge(t, config, { logLevel: 'info' })
  await waitConnected(app)
  t.equal((await statusOf(`${base}/sessions/a/events?channel=/chat/x&access_token=${READER}`)).status, 200, 'SSE with the query token')
  t.equal((await statusOf(`${base}/sessions/a/events?channel=/other&access_token=${READER}`)).status, 403, 'the ACL still applies')
  t.equal((await statusOf(`${base}/sessions/a/events?channel=/chat/x&access_token=${WRONG}`)).status, 401, 'a wrong query token')
  t.equal((await statusOf(`${base}/sessions/a/events?channel=/chat/x&access_token=${READER}`, { headers: { Accept: 'application/x-ndjson' } })).status, 401, 'not for NDJSON')
  t.equal((await statusOf(`${base}/sessions?access_token=${ADMIN}`)).status, 401, 'not for GET /sessions')
  t.equal((await statusOf(`${base}/sessions/a/publish/chat/x?access_token=${ADMIN}`, { method: 'POST', body: '1' })).status, 401, 'not for publish')
  t.equal(await wsStatus(`${base.replace('http:', 'ws:')}/sessions/a/ws?access_token=${ADMIN}`), 401, 'not for WebSocket')
  t.notOk(logs.text().includes(READER), 'the query token is not logged')
})

t.test('auth - public metrics and session list', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const config = makeConfig({ a: { url: faye.url } })
  config.auth = authConfig({ public: { metrics: true, sessions: true } })
  const { app } = await startBridge(t, config, { listen: false })
  t.equal((await app.inject('/metrics')).statusCode, 200)
  t.equal((await app.inject('/sessions')).statusCode, 200)
  t.equal((await app.inject('/sessions/a')).statusCode, 200)
  t.equal((await app.inject('/sessions/a/events?channel=/chat/x')).statusCode, 401, 'streams still need a token')
  t.equal((await app.inject({ method: 'POST', url: '/sessions/a/publish/chat/x', payload: '1' })).statusCode, 401)
})

t.test('auth - no tokens: loopback callers only, unless allowUnauthenticated', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const loopbackOnly = await startBridge(t, makeConfig({ a: { url: faye.url } }), { listen: false })
  for (const [remote, want] of [['127.0.0.1', 200], ['::1', 200], ['::ffff:127.0.0.1', 200], ['10.1.2.3', 403], ['192.168.1.9', 403], ['::ffff:10.0.0.1', 403]] as const) {
    const res = await loopbackOnly.app.inject({ url: '/sessions', remoteAddress: remote })
    t.equal(res.statusCode, want, `from ${remote}`)
    if (want === 403) t.match(res.json().message, /loopback callers only/)
  }
  t.equal((await loopbackOnly.app.inject({ url: '/healthz', remoteAddress: '10.1.2.3' })).statusCode, 200, '/healthz stays open')
  const probe = async (headers: Record<string, string>, method: 'GET' | 'POST' = 'GET'): Promise<number> =>
    (await loopbackOnly.app.inject({ method, url: method === 'GET' ? '/sessions' : '/sessions/a/publish/x', headers, ...(method === 'POST' ? { payload: '1' } : {}) })).statusCode
  t.equal(await probe({ host: '127.0.0.1:8080', origin: 'http://127.0.0.1:8080' }), 200, 'same-origin (the console) is fine')
  t.equal(await probe({ host: '127.0.0.1:8080', origin: 'https://evil.example' }, 'POST'), 403, 'a cross-origin POST from a web page is refused')
  t.equal(await probe({ host: '127.0.0.1:8080', origin: 'null' }), 403, 'an opaque origin is refused')
  t.equal(await probe({ host: 'evil.example:8080' }), 403, 'a foreign Host name (DNS rebinding) is refused')
  t.equal(await probe({ host: '[::1]:8080' }), 200)
  t.equal(await probe({ host: 'localhost' }), 200)
  const config = makeConfig({ a: { url: faye.url } })
  config.auth = { ...AUTH_DEFAULTS, allowUnauthenticated: true }
  const open = await startBridge(t, config, { listen: false })
  t.equal((await open.app.inject({ url: '/sessions', remoteAddress: '10.1.2.3' })).statusCode, 200, 'allowUnauthenticated serves everyone')
})

t.test('auth - binding a non-loopback address without tokens is a config error (exit 78)', async (t) => {
  const refused = parseConfigObject({ listen: { host: '0.0.0.0' } }, {})
  t.notOk(refused.ok)
  if (!refused.ok) t.match(refused.errors, [{ path: 'listen.host', message: /non-loopback address without auth\.tokens/ }])
  t.ok(parseConfigObject({ listen: { host: '0.0.0.0' }, auth: { allowUnauthenticated: true } }, {}).ok, 'allowUnauthenticated: true')
  t.ok(parseConfigObject({ listen: { host: '0.0.0.0' }, auth: { tokens: [{ token: ADMIN }] } }, {}).ok, 'with a token')
  t.ok(parseConfigObject({ listen: { host: '::1' } }, {}).ok, '::1 is loopback')
  t.ok(parseConfigObject({ listen: { host: 'localhost' } }, {}).ok, 'localhost is loopback')
  const bad = parseConfigObject({ auth: { tokens: [{ token: 'short' }, { token: ADMIN, sha256: sha(ADMIN) }, { sha256: 'xyz' }] } }, {})
  t.notOk(bad.ok)
  if (!bad.ok) {
    t.equal(bad.errors.length, 3, JSON.stringify(bad.errors))
    t.notOk(JSON.stringify(bad.errors).includes(ADMIN), 'messages never echo a token')
  }
  const child = spawnNode(t, 'server/main.ts', [], { COMETD_BRIDGE_HOST: '0.0.0.0', COMETD_BRIDGE_PORT: '0', COMETD_BRIDGE_DEMO: 'false' })
  const exit = await child.exited
  t.equal(exit.code, 78, 'exit 78 (EX_CONFIG)')
  t.match(child.stderr(), /listen\.host: refusing to listen on a non-loopback address without auth\.tokens/)
})

t.test('auth - constant-time token check: every entry compared, SHA-256 forms, loopback addresses', async (t) => {
  const access = new AccessControl(authConfig())
  t.equal(access.authenticate(ADMIN)?.name, 'admin')
  t.equal(access.authenticate(WRITER)?.name, 'writer', 'sha256 entry (uppercase hex accepted)')
  t.equal(access.authenticate(WRONG), null)
  t.equal(access.authenticate(''), null)
  t.equal(access.authenticate(ADMIN.slice(0, -1)), null, 'a prefix is not the token')
  const reader = access.authenticate(READER)!
  t.ok(access.canSubscribe(reader, '/chat/x'))
  t.ok(access.canSubscribe(reader, '/chat/*'))
  t.ok(access.canSubscribe(reader, '/chat/a/**'))
  t.notOk(access.canSubscribe(reader, '/chat'))
  t.notOk(access.canSubscribe(reader, '/**'))
  t.notOk(access.canPublish(reader, '/chat/x'))
  const writer = access.authenticate(WRITER)!
  t.ok(access.canPublish(writer, '/chat/x'))
  t.notOk(access.canPublish(writer, '/chat/x/y'))
  t.ok(isLoopbackAddress('127.0.0.1') && isLoopbackAddress('::1') && isLoopbackAddress('::ffff:127.0.0.2'))
  t.notOk(isLoopbackAddress('10.0.0.1') || isLoopbackAddress('::ffff:10.0.0.1') || isLoopbackAddress(undefined))
})
