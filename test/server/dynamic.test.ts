/**
 * Dynamic sessions (issue 7): POST /sessions → 201 owned by the token, use, DELETE (sends /meta/disconnect),
 * idle close, per-token and total limits, body validation, and the SSRF guard: a table of refused URLs over HTTP,
 * the guard's own table, and redirects (client-core never follows them, long-polling or websocket).
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { checkUpstreamUrl, parseAllowUrls } from '../../server/http/ssrf.js'
import { defaultConfig } from '../../config/index.js'
import type { FayeMessage } from '../helpers/faye.js'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { localSession, makeConfig, openSse, startBridge, waitConnected } from './fixtures/bridge.js'
import { statusOf, tokenEntry } from './fixtures/callers.js'

const AUTH_DEFAULTS = defaultConfig().auth

const OWNER = 'dyn-owner-token-0123456789abc'
const OTHER = 'dyn-other-token-0123456789abc'
const NOCREATE = 'dyn-nocreate-token-012345678'

function auth () {
  return {
    ...AUTH_DEFAULTS,
    tokens: [
      tokenEntry({ name: 'owner', token: OWNER, sessions: ['*'], subscribe: ['/**'], publish: ['/**'], metrics: true, createSessions: true }),
      tokenEntry({ name: 'other', token: OTHER, sessions: ['*'], subscribe: ['/**'], publish: ['/**'], createSessions: true }),
      tokenEntry({ name: 'nocreate', token: NOCREATE, sessions: ['*'], subscribe: ['/**'] })
    ]
  }
}

async function fayeWithDisconnects () {
  const disconnects: string[] = []
  const faye = await startFaye({
    timeoutSec: 5,
    extensions: [{
      incoming: (message: FayeMessage, _req: unknown, callback: (m: FayeMessage) => void) => {
        if (message.channel === '/meta/disconnect' && typeof message.clientId === 'string') disconnects.push(message.clientId)
        callback(message)
      }
    }]
  })
  return { faye, disconnects }
}

const as = (token: string, extra: Record<string, string> = {}): Record<string, string> => ({ Authorization: `Bearer ${token}`, ...extra })
const json = { 'Content-Type': 'application/json' }

t.test('dynamic sessions - lifecycle, ownership, limits, validation', async (t) => {
  const { faye, disconnects } = await fayeWithDisconnects()
  t.teardown(faye.close)
  const config = makeConfig({ fixed: { url: faye.url } })
  config.auth = auth()
  config.dynamicSessions = { enabled: true, allowUrls: [faye.url], idleTimeoutMs: 60_000, maxPerToken: 2, maxTotal: 3 }
  const { app, base } = await startBridge(t, config)
  await waitConnected(app)
  const create = async (token: string, body: unknown) => await statusOf(`${base}/sessions`, { method: 'POST', headers: as(token, json), body: JSON.stringify(body) })

  t.test('create, use, owner only, delete sends /meta/disconnect', async (t) => {
    const res = await create(OWNER, { url: faye.url, connectionTypes: ['long-polling'], headers: { 'X-Tenant': 'acme' } })
    t.equal(res.status, 201)
    const { name, url } = JSON.parse(res.body) as { name: string, url: string }
    t.match(name, /^dyn-[0-9a-f]{12}$/)
    t.equal(url, faye.url)
    t.equal(res.headers.location, `/sessions/${name}`)
    await waitFor(async () => JSON.parse((await statusOf(`${base}/sessions/${name}`, { headers: as(OWNER) })).body).state === 'connected', { timeoutMs: 10_000 })
    const view = JSON.parse((await statusOf(`${base}/sessions/${name}`, { headers: as(OWNER) })).body) as { clientId: string, connectionType: string }
    t.equal(view.connectionType, 'long-polling')

    t.equal((await statusOf(`${base}/sessions/${name}`, { headers: as(OTHER) })).status, 403, 'another token (even with sessions: ["*"]) may not see it')
    t.equal((await statusOf(`${base}/sessions/${name}/events?channel=/x`, { headers: as(OTHER) })).status, 403)
    t.equal((await statusOf(`${base}/sessions/${name}`, { method: 'DELETE', headers: as(OTHER) })).status, 403, 'nor delete it')
    const listOther = JSON.parse((await statusOf(`${base}/sessions`, { headers: as(OTHER) })).body) as { sessions: Array<{ name: string }> }
    t.same(listOther.sessions.map((s) => s.name), ['fixed'])
    const listOwner = JSON.parse((await statusOf(`${base}/sessions`, { headers: as(OWNER) })).body) as { sessions: Array<{ name: string }> }
    t.same(listOwner.sessions.map((s) => s.name).sort(), ['fixed', name].sort())

    const stream = await openSse(t, `${base}/sessions/${name}/events?channel=/dyn/**`, as(OWNER))
    t.equal(stream.status, 200)
    await waitFor(() => localSession(app, name).view().subscriptions.some((s) => s.state === 'subscribed'))
    await faye.publish('/dyn/a', { hello: 1 })
    await stream.waitEvent((e) => e.event === 'message')
    t.same(stream.messages()[0]!.data, { hello: 1 })

    const del = await statusOf(`${base}/sessions/${name}`, { method: 'DELETE', headers: as(OWNER) })
    t.equal(del.status, 204)
    await stream.waitEvent((e) => e.event === 'shutdown')
    await stream.done
    await waitFor(() => disconnects.includes(view.clientId), { message: 'the upstream saw /meta/disconnect from the dynamic session' })
    t.equal((await statusOf(`${base}/sessions/${name}`, { headers: as(OWNER) })).status, 404, 'gone')
    const metrics = (await statusOf(`${base}/metrics`, { headers: as(OWNER) })).body
    t.notOk(metrics.includes(name), 'its metric series are dropped')
  })

  t.test('limits per token and in total', async (t) => {
    const names: string[] = []
    for (let i = 0; i < 2; i++) {
      const r = await create(OWNER, { url: faye.url })
      t.equal(r.status, 201)
      names.push(JSON.parse(r.body).name as string)
    }
    const third = await create(OWNER, { url: faye.url })
    t.equal(third.status, 429)
    t.equal(JSON.parse(third.body).error, 'too_many_sessions')
    t.match(JSON.parse(third.body).message, /maxPerToken/)
    const r = await create(OTHER, { url: faye.url })
    t.equal(r.status, 201, 'another token has its own quota')
    const otherName = JSON.parse(r.body).name as string
    const total = await create(OTHER, { url: faye.url })
    t.equal(total.status, 429)
    t.match(JSON.parse(total.body).message, /maxTotal/)
    for (const n of names) t.equal((await statusOf(`${base}/sessions/${n}`, { method: 'DELETE', headers: as(OWNER) })).status, 204)
    t.equal((await statusOf(`${base}/sessions/${otherName}`, { method: 'DELETE', headers: as(OTHER) })).status, 204)
    t.equal(app.dynamicSessions.size, 0)
    t.equal((await create(OWNER, { url: faye.url })).status, 201, 'room again after deletes')
  })

  t.test('who may create, and body validation', async (t) => {
    t.equal((await create(NOCREATE, { url: faye.url })).status, 403, 'createSessions: false')
    t.equal((await statusOf(`${base}/sessions`, { method: 'POST', headers: json, body: JSON.stringify({ url: faye.url }) })).status, 401)
    const bad: Array<[unknown, number]> = [
      [{}, 400],
      [{ url: 42 }, 400],
      [{ url: faye.url, extra: 1 }, 400],
      [{ url: faye.url, headers: { 'Bad Name': 'x' } }, 400],
      [{ url: faye.url, headers: { 'X-A': 'a\r\nInjected: 1' } }, 400],
      [{ url: faye.url, headers: { Host: 'evil.example' } }, 400],
      [{ url: faye.url, connectionTypes: ['callback-polling'] }, 400],
      [{ url: faye.url, connectionTypes: [] }, 400],
      ['just a string', 400],
      [{ url: 'not a url' }, 400]
    ]
    for (const [body, status] of bad) {
      const r = await create(OWNER, body)
      t.equal(r.status, status, JSON.stringify(body).slice(0, 80))
      t.notOk(r.body.includes('Injected'), 'values are not echoed')
    }
  })
})

t.test('dynamic sessions - idle close: no caller and no request for idleTimeoutMs', async (t) => {
  const { faye, disconnects } = await fayeWithDisconnects()
  t.teardown(faye.close)
  const config = makeConfig({})
  config.auth = auth()
  config.dynamicSessions = { enabled: true, allowUrls: [faye.url], idleTimeoutMs: 400, maxPerToken: 5, maxTotal: 5 }
  const { app, base } = await startBridge(t, config)
  const idle = JSON.parse((await statusOf(`${base}/sessions`, { method: 'POST', headers: as(OWNER, json), body: JSON.stringify({ url: faye.url }) })).body).name as string
  const busy = JSON.parse((await statusOf(`${base}/sessions`, { method: 'POST', headers: as(OWNER, json), body: JSON.stringify({ url: faye.url }) })).body).name as string
  const stream = await openSse(t, `${base}/sessions/${busy}/events?channel=/x`, as(OWNER))
  t.equal(stream.status, 200)
  await waitFor(() => app.bridge.sessions.get(idle)?.state === 'connected', { timeoutMs: 10_000 })
  const idleClient = localSession(app, idle).client.clientId!
  const started = Date.now()
  await waitFor(() => !app.bridge.sessions.has(idle), { timeoutMs: 10_000, message: 'the idle session is closed' })
  t.comment(`idle session closed after ${Date.now() - started} ms (idleTimeoutMs 400)`)
  await waitFor(() => disconnects.includes(idleClient), { message: '/meta/disconnect sent on idle close' })
  await new Promise((resolve) => setTimeout(resolve, 1_200))
  t.ok(app.bridge.sessions.has(busy), 'a session with a streaming caller stays')
  stream.close()
  await waitFor(() => !app.bridge.sessions.has(busy), { timeoutMs: 10_000, message: 'closed once its last caller left' })
})

t.test('dynamic sessions - the SSRF guard refuses every URL outside allowUrls (HTTP table)', async (t) => {
  const config = makeConfig({})
  config.auth = auth()
  const P = 45678
  config.dynamicSessions = { enabled: true, allowUrls: [`http://127.0.0.1:${P}/cometd`, 'https://allowed.example/cometd'], idleTimeoutMs: 60_000, maxPerToken: 50, maxTotal: 50 }
  const { app, base } = await startBridge(t, config)
  const attempts: Array<[string, string, string]> = [
    ['other host', 'http://evil.example/cometd', 'not-allowed'],
    ['other port', `http://127.0.0.1:${P + 1}/cometd`, 'not-allowed'],
    ['127.0.0.1 when not allowed (port 80)', 'http://127.0.0.1/cometd', 'not-allowed'],
    ['another loopback address', `http://127.0.0.2:${P}/cometd`, 'ip-literal'],
    ['localhost (a name that is not listed)', `http://localhost:${P}/cometd`, 'not-allowed'],
    ['userinfo: allowed@evil', 'http://allowed.example@evil/', 'credentials'],
    ['userinfo on an allowed URL', 'https://user:pw@allowed.example/cometd', 'credentials'],
    ['fragment trick', 'http://evil#@allowed.example/', 'fragment'],
    ['query trick', 'https://evil.example?@allowed.example/cometd', 'not-allowed'],
    ['percent-encoded host', 'https://allowed%2Eexample/cometd', 'host-escape'],
    ['percent-encoded letter', 'https://%61llowed.example/cometd', 'host-escape'],
    ['encoded slash in userinfo', 'https://allowed.example%2F@evil.example/cometd', 'credentials'],
    ['trailing dot', 'https://allowed.example./cometd', 'host-trailing-dot'],
    ['empty label', 'https://allowed..example/cometd', 'host-empty-label'],
    ['fullwidth letter (IDN)', 'https://\uff41llowed.example/cometd', 'host-not-canonical'],
    ['IPv6 loopback literal', `http://[::1]:${P}/cometd`, 'ip-literal'],
    ['IPv4-mapped IPv6', `http://[::ffff:127.0.0.1]:${P}/cometd`, 'host-not-canonical'],
    ['decimal IP', `http://2130706433:${P}/cometd`, 'host-not-canonical'],
    ['hex IP', `http://0x7f.0.0.1:${P}/cometd`, 'host-not-canonical'],
    ['octal IP', `http://0177.0.0.1:${P}/cometd`, 'host-not-canonical'],
    ['short IP', `http://127.1:${P}/cometd`, 'host-not-canonical'],
    ['port with a leading zero', 'https://allowed.example:0443/cometd', 'port-not-canonical'],
    ['empty port', 'https://allowed.example:/cometd', 'port-not-canonical'],
    ['file:', 'file:///etc/passwd', 'scheme'],
    ['gopher:', 'gopher://allowed.example/cometd', 'scheme'],
    ['ws:', 'ws://allowed.example/cometd', 'scheme'],
    ['javascript:', 'javascript:alert(1)', 'scheme'],
    ['data:', 'data:text/plain,hi', 'scheme'],
    ['path prefix escape /cometdX', 'https://allowed.example/cometdX', 'not-allowed'],
    ['path prefix escape /cometd-admin', 'https://allowed.example/cometd-admin', 'not-allowed'],
    ['.. traversal', 'https://allowed.example/cometd/../admin', 'path-dot-segment'],
    ['trailing ..', 'https://allowed.example/cometd/..', 'path-dot-segment'],
    ['. segment', 'https://allowed.example/cometd/./x', 'path-dot-segment'],
    ['... segment', 'https://allowed.example/cometd/.../admin', 'path-dot-segment'],
    ['..;/ (path parameter, Tomcat/Jetty)', 'https://allowed.example/cometd/..;/admin', 'path-parameter'],
    [';jsessionid parameter', 'https://allowed.example/cometd;jsessionid=1/x', 'path-parameter'],
    ['double encoding %252e%252e', 'https://allowed.example/cometd/%252e%252e/admin', 'path-double-encoding'],
    ['%u002e%u002e (IIS)', 'https://allowed.example/cometd/%u002e%u002e/admin', 'path-invalid-escape'],
    ['broken escape %2', 'https://allowed.example/cometd/%2', 'path-invalid-escape'],
    ['encoded .. traversal', 'https://allowed.example/cometd/%2e%2e/admin', 'path-ascii-escape'],
    ['encoded .. upper case', 'https://allowed.example/cometd/%2E%2E/admin', 'path-ascii-escape'],
    ['encoded .. mixed case', 'https://allowed.example/cometd/%2e%2E/admin', 'path-ascii-escape'],
    ['encoded slash traversal', 'https://allowed.example/cometd/..%2fadmin', 'path-ascii-escape'],
    ['encoded slash', 'https://allowed.example/cometd%2f..%2fadmin', 'path-ascii-escape'],
    ['encoded backslash', 'https://allowed.example/cometd/..%5Cadmin', 'path-ascii-escape'],
    ['encoded ;', 'https://allowed.example/cometd/..%3B/admin', 'path-ascii-escape'],
    ['encoded ?', 'https://allowed.example/cometd%3F/x', 'path-ascii-escape'],
    ['encoded NUL', 'https://allowed.example/cometd%00/x', 'path-ascii-escape'],
    ['encoded letter', 'https://allowed.example/%63ometd', 'path-ascii-escape'],
    ['lower-case escape of é', 'https://allowed.example/cometd/caf%c3%a9', 'path-escape-case'],
    ['overlong UTF-8 dots %C0%AE', 'https://allowed.example/cometd/%C0%AE%C0%AE/admin', 'path-invalid-utf8'],
    ['overlong UTF-8 slash %E0%80%AF', 'https://allowed.example/cometd/..%E0%80%AFadmin', 'path-invalid-utf8'],
    ['UTF-16 surrogate %ED%A0%80', 'https://allowed.example/cometd/%ED%A0%80', 'path-invalid-utf8'],
    ['full-width dots', 'https://allowed.example/cometd/\uff0e\uff0e/admin', 'path-lookalike'],
    ['encoded full-width dots', 'https://allowed.example/cometd/%EF%BC%8E%EF%BC%8E/admin', 'path-lookalike'],
    ['division slash', 'https://allowed.example/cometd/..%E2%88%95admin', 'path-lookalike'],
    ['empty segment //', 'https://allowed.example/cometd//admin', 'path-empty-segment'],
    ['other scheme (http for https)', 'http://allowed.example/cometd', 'not-allowed'],
    ['other port on the allowed host', 'https://allowed.example:8443/cometd', 'not-allowed'],
    ['backslash', 'https://allowed.example/cometd\\@evil.example', 'backslash'],
    ['backslash authority', 'https://evil.example\\@allowed.example/cometd', 'backslash'],
    ['backslash traversal', 'https://allowed.example/cometd\\..\\admin', 'backslash'],
    ['leading space', ' https://allowed.example/cometd', 'control-or-space'],
    ['tab inside the host', 'https://allowed.ex\tample/cometd', 'control-or-space'],
    ['NUL', 'https://allowed.example/cometd\u0000', 'control-or-space']
  ]
  const lines: string[] = []
  for (const [what, url, rule] of attempts) {
    const r = await statusOf(`${base}/sessions`, { method: 'POST', headers: as(OWNER, json), body: JSON.stringify({ url }) })
    const body = JSON.parse(r.body) as { error: string, message: string, rule: string }
    t.equal(r.status, 403, `${what}: ${JSON.stringify(url)} → 403`)
    t.equal(body.error, 'url_not_allowed', what)
    t.equal(body.rule, rule, `${what}: refused by rule ${rule}`)
    lines.push(`${what.padEnd(40)} ${body.rule.padEnd(20)} ${body.message}`)
  }
  t.comment('SSRF table:\n' + lines.join('\n'))
  for (const url of ['not a url', 'https://', '/cometd']) {
    const r = await statusOf(`${base}/sessions`, { method: 'POST', headers: as(OWNER, json), body: JSON.stringify({ url }) })
    t.equal(r.status, 400, `${url} → 400`)
    t.equal(JSON.parse(r.body).error, 'invalid_url')
  }
  t.equal(app.dynamicSessions.size, 0, 'nothing was created')
})

t.test('dynamic sessions - the guard itself: what passes', async (t) => {
  const allowed = parseAllowUrls(['https://allowed.example/cometd', 'http://127.0.0.1:8080/cometd/', 'https://any.example'])
  const ok = (url: string): boolean => checkUpstreamUrl(url, allowed).ok
  t.ok(ok('https://allowed.example/cometd'))
  t.ok(ok('https://allowed.example/cometd/59.0'), 'a path under the prefix')
  t.ok(ok('HTTPS://ALLOWED.EXAMPLE/cometd'), 'scheme and host are compared after WHATWG parsing (lowercase)')
  t.ok(ok('https://allowed.example:443/cometd'), 'the default port written out')
  t.ok(ok('https://allowed.example/cometd?tenant=1'), 'a query is kept')
  t.ok(ok('http://127.0.0.1:8080/cometd'), 'an IP literal listed as such')
  t.ok(ok('https://any.example/whatever/path'), 'an entry without a path allows any path')
  t.notOk(ok('https://allowed.example/Cometd'), 'paths are case-sensitive')
  t.notOk(ok('http://2130706433:8080/cometd'), 'the same IP in decimal form is refused')
  t.notOk(ok('https://sub.allowed.example/cometd'), 'no subdomains')
  t.notOk(ok('https://allowed.example.evil/cometd'))
  t.ok(ok('https://allowed.example/cometd/caf%C3%A9'), 'a non-ASCII character, escaped in upper case')
  t.ok(ok('https://allowed.example/cometd/'), 'a trailing slash')
  t.ok(ok('https://allowed.example/cometd?a=..;/x'), 'the query is not a path')
  const r = checkUpstreamUrl('https://allowed.example/cometd', allowed)
  t.same(r, { ok: true, url: 'https://allowed.example/cometd' })
})

t.test('dynamic sessions - redirects are never followed (long-polling and websocket)', async (t) => {
  let targetHits = 0
  const target = http.createServer((_req, res) => { targetHits++; res.end('{}') })
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { target.close(); target.closeAllConnections() })
  const targetUrl = `http://127.0.0.1:${(target.address() as AddressInfo).port}/cometd`
  let redirects = 0
  const redirector = http.createServer((_req, res) => {
    redirects++
    res.writeHead(302, { Location: targetUrl })
    res.end()
  })
  await new Promise<void>((resolve) => redirector.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { redirector.close(); redirector.closeAllConnections() })
  const redirectUrl = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/cometd`

  const config = makeConfig({})
  config.auth = auth()
  config.dynamicSessions = { enabled: true, allowUrls: [redirectUrl], idleTimeoutMs: 60_000, maxPerToken: 5, maxTotal: 5 }
  const { app, base } = await startBridge(t, config)
  for (const type of ['long-polling', 'websocket']) {
    const r = await statusOf(`${base}/sessions`, { method: 'POST', headers: as(OWNER, json), body: JSON.stringify({ url: redirectUrl, connectionTypes: [type] }) })
    t.equal(r.status, 201, `${type}: the redirecting URL itself is allowed`)
    const name = JSON.parse(r.body).name as string
    const before = redirects
    await waitFor(() => redirects > before && localSession(app, name).lastError !== null, { timeoutMs: 10_000 })
    const view = localSession(app, name).view()
    t.not(view.state, 'connected', `${type}: not connected`)
    // long-polling: HTTP 302 is an HttpStatusError; websocket: the upgrade answered 302 is refused by ws
    t.match(view.lastError?.message ?? '', type === 'long-polling' ? /302/ : /302|does not accept websocket/, `${type}: the redirect is an error: ${view.lastError?.message ?? ''}`)
    t.equal((await statusOf(`${base}/sessions/${name}`, { method: 'DELETE', headers: as(OWNER) })).status, 204)
  }
  t.equal(targetHits, 0, 'the redirect target was never contacted')
  t.comment(`${redirects} redirect answers, ${targetHits} requests reached the target`)
})
