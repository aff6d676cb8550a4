/**
 * HTTP routes through app.inject(), with real upstream peers: Faye (publish, 502 via a server extension),
 * cometd-nodejs-server (/service/echo, /service/slow, /forbidden/** refused, a publish that is never answered),
 * and a session whose upstream port is closed (503).
 */
import net from 'node:net'
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import type { FayeMessage } from '../helpers/faye.js'
import { startCometd } from '../helpers/cometd-server.js'
import { waitFor } from '../helpers/wait.js'
import { makeConfig, startBridge, waitConnected } from './fixtures/bridge.js'

const SECRET = 's3cret-token-value'

async function closedPort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}

t.test('routes', async (t) => {
  const published: Array<{ channel: string, data: unknown }> = []
  const faye = await startFaye({
    timeoutSec: 5,
    extensions: [{
      incoming: (message: FayeMessage, _req: unknown, callback: (m: FayeMessage) => void) => {
        if (message.channel === '/fail/500') message.error = '500::forced failure'
        callback(message)
      }
    }]
  })
  t.teardown(faye.close)
  faye.bayeux.on('publish', (_clientId, channel, data) => { published.push({ channel, data }) })
  const cometd = await startCometd({
    options: { timeout: 5_000 },
    policy: { canPublish: (channel) => channel.startsWith('/hang') ? new Promise<boolean>(() => {}) : true }
  })
  t.teardown(cometd.close)
  const downPort = await closedPort()

  const config = makeConfig({
    faye: { url: faye.url, headers: { Authorization: `Bearer ${SECRET}` } },
    cometd: { url: cometd.url, connectionTypes: ['long-polling'] },
    hang: { url: cometd.url, connectionTypes: ['long-polling'] },
    down: { url: `http://127.0.0.1:${downPort}/cometd`, connectionTypes: ['long-polling'] }
  }, { http: { bodyLimitBytes: 1024, publishTimeoutMs: 800, callTimeoutMs: 800 } })
  const { app, logs } = await startBridge(t, config, { listen: false, logLevel: 'trace' })
  await waitFor(() => ['faye', 'cometd', 'hang'].every((n) => app.bridge.sessions.get(n)?.state === 'connected'), { timeoutMs: 10_000 })

  const post = async (url: string, payload: string, headers: Record<string, string> = { 'content-type': 'application/json' }) =>
    await app.inject({ method: 'POST', url, payload, headers })

  t.test('healthz, unknown routes, malformed URLs', async (t) => {
    const health = await app.inject('/healthz')
    t.equal(health.statusCode, 200)
    t.equal(health.json().status, 'ok')
    const missing = await app.inject('/nowhere')
    t.equal(missing.statusCode, 404)
    t.same(Object.keys(missing.json()).sort(), ['error', 'message'])
    t.equal(missing.json().error, 'not_found')
    const badUrl = await app.inject('/sessions/%ZZ/events?channel=/a')
    t.equal(badUrl.statusCode, 400)
    t.equal(badUrl.json().error, 'bad_request', 'a malformed URL gets the same JSON shape')
    const head = await app.inject({ method: 'HEAD', url: '/sessions/faye/events?channel=/a' })
    t.equal(head.statusCode, 200, 'HEAD on the stream route: its headers …')
    t.match(head.headers['content-type'], /^text\/event-stream/)
    t.equal(app.bridge.callerCount(), 0, '… and no stream (test/server/head.test.ts checks every route)')
  })

  t.test('unknown session → 404 on every route', async (t) => {
    for (const [method, url] of [['GET', '/sessions/nope'], ['GET', '/sessions/nope/events?channel=/a'], ['POST', '/sessions/nope/publish/a'], ['POST', '/sessions/nope/call/service/echo']] as const) {
      const res = await app.inject({ method, url, payload: method === 'POST' ? '{}' : undefined, headers: { 'content-type': 'application/json' } })
      t.equal(res.statusCode, 404, url)
      t.equal(res.json().error, 'unknown_session', url)
      t.type(res.json().message, 'string')
    }
  })

  t.test('GET /sessions and /sessions/:name: state, type, counters, no secrets', async (t) => {
    const list = await app.inject('/sessions')
    t.equal(list.statusCode, 200)
    const names = (list.json().sessions as Array<{ name: string }>).map((s) => s.name).sort()
    t.same(names, ['cometd', 'down', 'faye', 'hang'])
    t.notOk(list.body.includes(SECRET), 'no header value in the listing')
    const one = await app.inject('/sessions/faye')
    const view = one.json()
    t.equal(view.state, 'connected')
    t.equal(view.connectionType, 'websocket')
    t.type(view.clientId, 'string')
    t.match(view.counters, { messagesIn: Number, messagesOut: Number, reconnects: Number, handshakes: 1, slowCallerDrops: 0 })
    const cometdView = (await app.inject('/sessions/cometd')).json()
    t.equal(cometdView.connectionType, 'long-polling')
    const down = (await app.inject('/sessions/down')).json()
    t.not(down.state, 'connected')
    t.equal(down.ready, false)
    t.type(down.lastError?.message, 'string', 'the open failure is reported')
  })

  t.test('events: bad channel lists → 400 with a code', async (t) => {
    const cases: Array<[string, string]> = [
      ['/sessions/faye/events', 'missing_channel'],
      ['/sessions/faye/events?channel=nope', 'invalid_channel'],
      ['/sessions/faye/events?channel=/a/*/b', 'invalid_channel'],
      ['/sessions/faye/events?channel=/meta/connect', 'meta_channel'],
      ['/sessions/faye/events?channel=/service/echo', 'invalid_channel'],
      ['/sessions/faye/events?' + Array.from({ length: 65 }, (_, i) => `channel=/c${i}`).join('&'), 'too_many_channels']
    ]
    for (const [url, code] of cases) {
      const res = await app.inject(url)
      t.equal(res.statusCode, 400, url.slice(0, 60))
      t.equal(res.json().error, code)
    }
  })

  t.test('publish: 200 with the server reply, data reaches the upstream', async (t) => {
    const res = await post('/sessions/faye/publish/chat/demo', JSON.stringify({ text: 'hello', n: 1 }))
    t.equal(res.statusCode, 200)
    t.match(res.json(), { successful: true, channel: '/chat/demo', id: String })
    await waitFor(() => published.find((p) => p.channel === '/chat/demo'))
    t.same(published.find((p) => p.channel === '/chat/demo')?.data, { text: 'hello', n: 1 })
    const form = await post('/sessions/faye/publish/chat/form', '42', { 'content-type': 'application/x-www-form-urlencoded' })
    t.equal(form.statusCode, 200, 'curl -d sends form-urlencoded: still read as JSON')
    const cometdRes = await post('/sessions/cometd/publish/chat/x', '"a string"')
    t.equal(cometdRes.statusCode, 200)
  })

  t.test('publish: bad input → 400/413', async (t) => {
    const cases: Array<[string, string, number, string]> = [
      ['/sessions/faye/publish/chat/demo', '{"bad json', 400, 'bad_json'],
      ['/sessions/faye/publish/chat/demo', '', 400, 'bad_json'],
      ['/sessions/faye/publish/meta/handshake', '{}', 400, 'meta_channel'],
      ['/sessions/faye/publish/chat/*', '{}', 400, 'invalid_channel'],
      ['/sessions/faye/publish/chat//x', '{}', 400, 'invalid_channel'],
      ['/sessions/faye/publish/chat/demo', JSON.stringify({ big: 'x'.repeat(2000) }), 413, 'body_too_large']
    ]
    for (const [url, body, status, code] of cases) {
      const res = await post(url, body)
      t.equal(res.statusCode, status, `${url} ${body.slice(0, 20)}`)
      t.equal(res.json().error, code)
      t.type(res.json().message, 'string')
    }
  })

  t.test('publish: upstream refusal → 403 with the Bayeux error; other server errors → 502', async (t) => {
    const denied = await post('/sessions/cometd/publish/forbidden/x', '{"a":1}')
    t.equal(denied.statusCode, 403)
    t.equal(denied.json().error, 'upstream_denied')
    t.equal(denied.json().bayeux.error, '403::publish_denied')
    const failed = await post('/sessions/faye/publish/fail/500', '{"a":1}')
    t.equal(failed.statusCode, 502)
    t.equal(failed.json().error, 'upstream_rejected')
    t.equal(failed.json().bayeux.error, '500::forced failure')
  })

  t.test('publish/call: upstream not connected → 503 with Retry-After', async (t) => {
    for (const url of ['/sessions/down/publish/chat/x', '/sessions/down/call/service/echo']) {
      const res = await post(url, '{}')
      t.equal(res.statusCode, 503, url)
      t.equal(res.json().error, 'upstream_unavailable')
      t.match(String(res.headers['retry-after']), /^\d+$/)
    }
  })

  t.test('publish: no answer upstream → 504 after publishTimeoutMs', async (t) => {
    const started = Date.now()
    const res = await post('/sessions/hang/publish/hang/x', '{}')
    const elapsed = Date.now() - started
    t.comment(`504 after ${elapsed} ms (publishTimeoutMs 800)`)
    t.equal(res.statusCode, 504)
    t.equal(res.json().error, 'upstream_timeout')
    t.ok(elapsed >= 700, 'not before the deadline')
  })

  t.test('call: 200 with the reply data; 504 on timeout; 400 outside /service', async (t) => {
    const echo = await post('/sessions/cometd/call/service/echo', JSON.stringify({ q: [1, 2, 3] }))
    t.equal(echo.statusCode, 200)
    t.same(echo.json(), { q: [1, 2, 3] })
    const started = Date.now()
    const slow = await post('/sessions/cometd/call/service/slow', '{}')
    t.comment(`call timeout answered after ${Date.now() - started} ms (callTimeoutMs 800)`)
    t.equal(slow.statusCode, 504)
    t.equal(slow.json().error, 'call_timeout')
    const notService = await post('/sessions/cometd/call/chat/x', '{}')
    t.equal(notService.statusCode, 400)
    t.equal(notService.json().error, 'not_a_service_channel')
    const after = await post('/sessions/cometd/call/service/echo', '"still fine"')
    t.equal(after.json(), 'still fine', 'the session survives a timed-out call')
  })

  t.test('readyz: 503 naming the session that is not connected', async (t) => {
    const res = await app.inject('/readyz')
    t.equal(res.statusCode, 503)
    t.equal(res.json().error, 'not_ready')
    t.match(res.json().message, /down: upstream/)
    t.equal(res.json().sessions.faye.ready, true)
  })

  t.test('metrics: Prometheus text with cometd_bridge_* names', async (t) => {
    const res = await app.inject('/metrics')
    t.equal(res.statusCode, 200)
    t.match(res.headers['content-type'], /text\/plain/)
    t.match(res.body, /cometd_bridge_upstream_connected\{session="faye"\} 1/)
    t.match(res.body, /cometd_bridge_upstream_connected\{session="down"\} 0/)
    t.match(res.body, /cometd_bridge_upstream_state\{session="faye",state="connected"\} 1/)
    t.match(res.body, /cometd_bridge_publish_duration_seconds_count\{session="faye",outcome="ok"\} [1-9]/)
    t.match(res.body, /cometd_bridge_upstream_handshakes_total\{session="faye",kind="first"\} 1/)
    t.match(res.body, /cometd_bridge_callers\{session="faye"\} 0/)
  })

  t.test('logs: the Authorization header value never appears, whatever the level', async (t) => {
    await app.inject({ method: 'GET', url: '/sessions', headers: { authorization: `Bearer ${SECRET}`, cookie: `sid=${SECRET}` } })
    app.log.info({ headers: { Authorization: `Bearer ${SECRET}` }, req: { headers: { cookie: SECRET } } }, 'redaction probe')
    t.ok(logs.lines.length > 20, `captured ${logs.lines.length} log lines at trace level`)
    t.notOk(logs.text().includes(SECRET))
    t.ok(logs.lines.some((l) => l.msg === 'redaction probe'))
  })
})

t.test('routes - while shutting down: 503 shutting_down, readyz 503, healthz 200', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const { app } = await startBridge(t, makeConfig({ faye: { url: faye.url } }), { listen: false })
  await waitConnected(app)
  t.equal((await app.inject('/readyz')).statusCode, 200)
  app.bridge.beginShutdown()
  const ready = await app.inject('/readyz')
  t.equal(ready.statusCode, 503)
  t.equal(ready.json().error, 'shutting_down')
  const other = await app.inject({ method: 'POST', url: '/sessions/faye/publish/a', payload: '{}', headers: { 'content-type': 'application/json' } })
  t.equal(other.statusCode, 503)
  t.equal(other.json().error, 'shutting_down')
  t.equal((await app.inject('/healthz')).statusCode, 200)
})
