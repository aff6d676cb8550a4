/**
 * A session's upstream through an HTTP proxy (`sessions.*.proxy`): the CONNECT proxy from the test helpers in
 * front of a real faye, both transports, the environment's HTTP_PROXY (the default), `none`, a dynamic session,
 * and a proxy that refuses — visible in GET /sessions/:name and the logs, never with the proxy password.
 */
import t from 'tap'
import { defaultConfig, parseConfigObject, redactConfig } from '../../config/index.js'
import type { Config } from '../../config/index.js'
import { startConnectProxy } from '../helpers/connect-proxy.js'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { makeConfig, openSse, request, startBridge, waitConnected } from './fixtures/bridge.js'

const PASSWORD = 'hunter2-proxy-secret'

for (const type of ['websocket', 'long-polling'] as const) {
  t.test(`proxy - a session over ${type} through its proxy setting; a message reaches an SSE caller`, async (t) => {
    const faye = await startFaye({ timeoutSec: 5 })
    t.teardown(faye.close)
    const proxy = await startConnectProxy({ user: 'bridge', password: PASSWORD })
    t.teardown(proxy.close)
    const config = makeConfig({ a: { url: faye.url, connectionTypes: [type], proxy: `http://bridge:${PASSWORD}@127.0.0.1:${proxy.port}` } })
    const { app, base, logs } = await startBridge(t, config, { logLevel: 'debug' })
    await waitConnected(app)
    const sse = await openSse(t, `${base}/sessions/a/events?channel=/p/x`)
    await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 10_000 })
    await faye.publish('/p/x', { via: 'proxy' })
    await sse.waitEvent((e) => e.event === 'message')
    t.same(sse.messages()[0]?.data, { via: 'proxy' })
    t.ok(proxy.tunnels >= 1, `${proxy.tunnels} tunnel(s)`)
    t.same([...new Set(proxy.targets)], [`127.0.0.1:${faye.port}`])
    t.equal((await request(`${base}/sessions/a`)).json?.connectionType, type)
    t.notOk(logs.text().includes(PASSWORD), 'the proxy password is in no log line')
  })
}

t.test('proxy - the environment by default, none to go direct, dynamic sessions follow the environment', async (t) => {
  const saved = process.env.HTTP_PROXY
  t.teardown(() => { if (saved === undefined) delete process.env.HTTP_PROXY; else process.env.HTTP_PROXY = saved })
  for (const k of ['http_proxy', 'no_proxy', 'NO_PROXY']) delete process.env[k]
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const other = await startFaye({ timeoutSec: 5 })
  t.teardown(other.close)
  const proxy = await startConnectProxy()
  t.teardown(proxy.close)
  process.env.HTTP_PROXY = proxy.url
  const config = makeConfig({ viaEnv: { url: faye.url }, direct: { url: other.url, proxy: 'none' } })
  config.auth = defaultConfig().auth
  config.dynamicSessions = { enabled: true, allowUrls: [faye.url], idleTimeoutMs: 60_000, maxPerToken: 5, maxTotal: 10 }
  const { app, base } = await startBridge(t, config)
  await waitConnected(app)
  t.ok(proxy.tunnels >= 1, 'the session without a setting went through HTTP_PROXY')
  const count = proxy.connects
  const created = await request(`${base}/sessions`, { method: 'POST', body: JSON.stringify({ url: faye.url }), headers: { 'content-type': 'application/json' } })
  t.equal(created.status, 201, JSON.stringify(created.json))
  await waitConnected(app)
  t.ok(proxy.connects > count, 'the dynamic session too')
  t.equal(app.bridge.sessions.get('direct')?.state, 'connected', '`none` connected …')
  t.notOk(proxy.targets.includes(`127.0.0.1:${other.port}`), '… without the proxy')
})

t.test('proxy - a proxy that refuses: the session says why (HTTP 407), without the password', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const proxy = await startConnectProxy({ user: 'bridge', password: 'the-right-one-123' })
  t.teardown(proxy.close)
  const config = makeConfig({ a: { url: faye.url, proxy: `http://bridge:${PASSWORD}@127.0.0.1:${proxy.port}`, maxNetworkDelayMs: 1_000 } })
  const { base, logs } = await startBridge(t, config, { logLevel: 'debug' })
  const view = await waitFor(async () => {
    const res = await request(`${base}/sessions/a`)
    return res.json?.lastError !== null ? res.json : undefined
  }, { timeoutMs: 10_000 })
  t.match(view.lastError.message, /Proxy http:\/\/127\.0\.0\.1:\d+ refused the tunnel to 127\.0\.0\.1:\d+: HTTP 407/)
  t.not(view.state, 'connected')
  t.equal((await request(`${base}/readyz`)).status, 503, 'not ready')
  const everything = JSON.stringify(view) + logs.text() + JSON.stringify((await request(`${base}/sessions`)).json)
  t.notOk(everything.includes(PASSWORD), 'the password is in no answer and no log line')
})

t.test('proxy - config: env (default), none or a proxy URL; the password redacted from --print-config', async (t) => {
  const parse = (proxy: unknown) => parseConfigObject({ sessions: { a: { url: 'http://127.0.0.1:1/cometd', proxy } } }, {})
  for (const good of ['env', 'none', 'http://proxy.internal:3128', `https://u:${PASSWORD}@proxy.internal:8443`]) t.ok(parse(good).ok, good.replace(PASSWORD, '…'))
  for (const bad of ['socks5://proxy:1080', 'proxy.internal:3128', 'http://proxy.internal:3128/path', 42]) {
    const r = parse(bad)
    t.notOk(r.ok, String(bad))
    if (!r.ok) t.match(r.errors, [{ path: 'sessions.a.proxy' }])
  }
  const ok = parse(`http://bridge:${PASSWORD}@proxy.internal:3128`)
  t.ok(ok.ok)
  if (ok.ok) {
    const shown = JSON.stringify(redactConfig(ok.config as Config))
    t.notOk(shown.includes(PASSWORD), 'redacted')
    t.match(shown, /"proxy":"http:\/\/\[redacted\]@proxy\.internal:3128\/?"/)
  }
})
