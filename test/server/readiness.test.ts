/**
 * /readyz follows the upstream: 503 before the session is connected (upstream refusing connections through a
 * fault proxy), 200 once connected with its permanent subscriptions confirmed, 503 when the upstream goes
 * away, 200 again when it is back. A permanent subscription the server refuses keeps it at 503.
 */
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import { startCometd } from '../helpers/cometd-server.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { waitFor } from '../helpers/wait.js'
import { localSession, makeConfig, openSse, request, startBridge } from './fixtures/bridge.js'

t.test('readiness - before, during and after an upstream outage', async (t) => {
  const subscribes: string[] = []
  // an extension is installed on every (re)start of the server, unlike event listeners on one adapter
  const faye = await startFaye({
    timeoutSec: 5,
    extensions: [{
      incoming: (message, _req, callback) => {
        if (message.channel === '/meta/subscribe') subscribes.push(String(message['subscription']))
        callback(message)
      }
    }]
  })
  t.teardown(faye.close)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: faye.port })
  t.teardown(proxy.close)
  await proxy.refuse(true)

  const { base, app } = await startBridge(t, makeConfig({ f: { url: proxy.url('/cometd'), subscribe: ['/perm'] } }))
  const before = await request(`${base}/readyz`)
  t.equal(before.status, 503, 'not ready while the upstream refuses connections')
  t.equal(before.json.error, 'not_ready')
  t.match(before.json.message, /f: upstream (disconnected|handshaking|reconnecting)/)

  // a caller may connect before the upstream is there: told so, then served once it is
  const early = await openSse(t, `${base}/sessions/f/events?channel=/early`)
  t.equal(early.status, 200)
  const down = await early.waitEvent((e) => e.event === 'upstream')
  t.match(JSON.parse(down.data), { status: 'down', session: 'f' })

  await proxy.refuse(false)
  const reopened = Date.now()
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 40_000, intervalMs: 100 })
  t.comment(`ready ${Date.now() - reopened} ms after the upstream accepted connections (open retried with backoff)`)
  t.equal(subscribes[0], '/perm', 'ready only with the permanent subscription confirmed')
  await early.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'up')
  await waitFor(() => localSession(app, 'f').view().subscriptions.some((s) => s.channel === '/early' && s.state === 'subscribed'))
  await faye.publish('/early', { ok: 1 })
  const msg = await early.waitEvent((e) => e.event === 'message')
  t.same(JSON.parse(msg.data), { channel: '/early', data: { ok: 1 } }, 'the early caller is served once the upstream is up')
  const failures = localSession(app, 'f').lastError
  t.ok(failures !== null, 'the open failures were recorded')

  await faye.stop()
  const stopped = Date.now()
  await waitFor(async () => (await request(`${base}/readyz`)).status === 503, { timeoutMs: 15_000 })
  t.comment(`not ready ${Date.now() - stopped} ms after the upstream stopped`)
  await faye.start()
  const started = Date.now()
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 30_000, intervalMs: 100 })
  t.comment(`ready again ${Date.now() - started} ms after the upstream restarted`)
  t.equal(subscribes.filter((c) => c === '/perm').length, 2, `the permanent subscription was restored on the new server session (upstream subscribes: ${subscribes.join(' ')})`)
  const view = (await request(`${base}/sessions/f`)).json
  t.ok(view.counters.handshakes >= 2, `handshakes: ${view.counters.handshakes}`)
  t.ok(view.counters.rehandshakes >= 1, `rehandshakes: ${view.counters.rehandshakes}`)
})

t.test('readiness - a refused permanent subscription keeps /readyz at 503 with the reason', async (t) => {
  const cometd = await startCometd({ options: { timeout: 5_000 } })
  t.teardown(cometd.close)
  const { base, app } = await startBridge(t, makeConfig({ c: { url: cometd.url, connectionTypes: ['long-polling'], subscribe: ['/ok', '/forbidden/x'] } }))
  await waitFor(() => localSession(app, 'c').view().subscriptions.some((s) => s.channel === '/forbidden/x' && s.state === 'failed'), { timeoutMs: 10_000 })
  const res = await request(`${base}/readyz`)
  t.equal(res.status, 503)
  t.match(res.json.message, /subscriptions not confirmed: \/forbidden\/x/)
  t.notMatch(res.json.message, /\/ok/)
  const sub = (await request(`${base}/sessions/c`)).json.subscriptions.find((s: { channel: string }) => s.channel === '/forbidden/x')
  t.match(sub.error, /403::subscribe_denied/)
})
