/**
 * HEAD wherever GET is: the same status and headers as GET, no body; on the stream route the same checks as GET
 * (session, channels, token) and the stream's headers, without opening a stream.
 */
import t from 'tap'
import { defaultConfig } from '../../config/index.js'
import { startFaye } from '../helpers/faye.js'
import { makeConfig, request, startBridge, waitConnected } from './fixtures/bridge.js'
import { tokenEntry } from './fixtures/callers.js'

const AUTH_DEFAULTS = defaultConfig().auth

t.setTimeout(60_000)

const TOKEN = 'head-test-token-0123456789abcdef'

t.test('HEAD - every GET route answers HEAD like GET, without a body; the stream route opens no stream', async (t) => {
  const faye = await startFaye({ timeoutSec: 2 })
  t.teardown(faye.close)
  const config = makeConfig({ f: { url: faye.url } })
  config.auth = { ...AUTH_DEFAULTS, tokens: [tokenEntry({ name: 'all', token: TOKEN, sessions: ['*'], subscribe: ['/**'], publish: ['/**'], console: true, metrics: true })] }
  const { app, base, logs } = await startBridge(t, config)
  await waitConnected(app)
  const auth = { authorization: `Bearer ${TOKEN}` }

  for (const path of ['/healthz', '/readyz', '/metrics', '/sessions', '/sessions/f', '/', '/console/app.js', '/console/config.json', '/sessions/nope', '/sessions/f/ws', '/no/such/route']) {
    const get = await request(`${base}${path}`, { headers: auth })
    const head = await request(`${base}${path}`, { method: 'HEAD', headers: auth })
    t.equal(head.status, get.status, `HEAD ${path} → ${head.status}, as GET`)
    t.equal(head.headers.get('content-type'), get.headers.get('content-type'), `HEAD ${path}: the same Content-Type`)
    t.equal(head.text, '', `HEAD ${path}: no body`)
  }
  t.equal((await request(`${base}/sessions`, { method: 'HEAD' })).status, 401, 'HEAD needs the token as GET does')

  const sse = await request(`${base}/sessions/f/events?channel=/a`, { method: 'HEAD', headers: auth })
  t.equal(sse.status, 200)
  t.match(sse.headers.get('content-type'), /^text\/event-stream/)
  t.equal(sse.headers.get('x-accel-buffering'), 'no')
  const ndjson = await request(`${base}/sessions/f/events?channel=/a`, { method: 'HEAD', headers: { ...auth, accept: 'application/x-ndjson' } })
  t.match(ndjson.headers.get('content-type'), /^application\/x-ndjson/)
  t.equal((await request(`${base}/sessions/f/events`, { method: 'HEAD', headers: auth })).status, 400, 'no channel: 400 as GET')
  t.equal((await request(`${base}/sessions/f/events?channel=/meta/x`, { method: 'HEAD', headers: auth })).status, 400, 'a /meta channel: 400 as GET')
  t.equal((await request(`${base}/sessions/nope/events?channel=/a`, { method: 'HEAD', headers: auth })).status, 404)
  t.equal(app.bridge.callerCount(), 0, 'no caller attached')
  t.notOk(logs.lines.some((l) => l.msg === 'stream opened'), 'no stream opened')
  t.equal(app.bridge.sessions.get('f')!.upstreamSubscriptionCount, 0, 'nothing subscribed upstream')
})
