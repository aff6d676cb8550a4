/**
 * Upstream subscriptions are reference-counted: the first caller subscribes upstream, the last one leaving
 * unsubscribes after the linger; `subscribe` channels are held for ever. Observed on a real Faye server
 * (its 'subscribe'/'unsubscribe' events). A subscription the server refuses answers the caller with a 403.
 */
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import { startCometd } from '../helpers/cometd-server.js'
import { delay, waitFor } from '../helpers/wait.js'
import { makeConfig, openSse, request, startBridge, waitConnected } from './fixtures/bridge.js'

t.test('subscriptions - ref-counted upstream subscribe/unsubscribe with linger; permanent channels kept', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const upstream: Array<{ op: 'subscribe' | 'unsubscribe', channel: string, at: number }> = []
  faye.bayeux.on('subscribe', (_id, channel) => { upstream.push({ op: 'subscribe', channel, at: Date.now() }) })
  faye.bayeux.on('unsubscribe', (_id, channel) => { upstream.push({ op: 'unsubscribe', channel, at: Date.now() }) })
  const count = (op: 'subscribe' | 'unsubscribe', channel: string): number => upstream.filter((u) => u.op === op && u.channel === channel).length

  const LINGER = 600
  const { app, base } = await startBridge(t, makeConfig({ f: { url: faye.url, subscribe: ['/perm'], unsubscribeLingerMs: LINGER } }))
  await waitConnected(app)
  await waitFor(() => count('subscribe', '/perm') === 1, { message: 'permanent subscription sent upstream' })

  const a = await openSse(t, `${base}/sessions/f/events?channel=/rc`)
  const b = await openSse(t, `${base}/sessions/f/events?channel=/rc`)
  const c = await openSse(t, `${base}/sessions/f/events?channel=/perm`)
  t.equal(count('subscribe', '/rc'), 1, 'two callers, one upstream subscription')
  t.equal(count('subscribe', '/perm'), 1, 'a caller on a permanent channel adds no subscription')
  const view = (await request(`${base}/sessions/f`)).json
  t.match(view.subscriptions.find((s: { channel: string }) => s.channel === '/rc'), { callers: 2, state: 'subscribed', permanent: false })
  t.match(view.subscriptions.find((s: { channel: string }) => s.channel === '/perm'), { callers: 1, permanent: true })

  await faye.publish('/rc', { n: 1 })
  await a.waitEvent((e) => e.event === 'message')
  await b.waitEvent((e) => e.event === 'message')

  a.close()
  await delay(LINGER + 400)
  t.equal(count('unsubscribe', '/rc'), 0, 'one caller left, one remains: still subscribed')

  b.close()
  const left = Date.now()
  await waitFor(() => count('unsubscribe', '/rc') === 1, { timeoutMs: 5_000, message: 'upstream unsubscribe after the last caller' })
  const lingered = upstream.find((u) => u.op === 'unsubscribe' && u.channel === '/rc')!.at - left
  t.comment(`upstream unsubscribe ${lingered} ms after the last caller left (linger ${LINGER} ms)`)
  t.ok(lingered >= LINGER - 50, 'not before the linger')

  // a caller coming back within the linger keeps the subscription: no unsubscribe/subscribe churn
  const d = await openSse(t, `${base}/sessions/f/events?channel=/rc2`)
  d.close()
  await delay(LINGER / 3)
  const e = await openSse(t, `${base}/sessions/f/events?channel=/rc2`)
  await delay(LINGER + 300)
  t.equal(count('subscribe', '/rc2'), 1)
  t.equal(count('unsubscribe', '/rc2'), 0)
  e.close()

  c.close()
  await delay(LINGER + 300)
  t.equal(count('unsubscribe', '/perm'), 0, 'the permanent subscription outlives its callers')
  t.equal(count('subscribe', '/rc'), 1)
})

t.test('subscriptions - a refused subscription answers 403 with the Bayeux error and holds nothing', async (t) => {
  const cometd = await startCometd({ options: { timeout: 5_000 } })
  t.teardown(cometd.close)
  const { app, base } = await startBridge(t, makeConfig({ c: { url: cometd.url, connectionTypes: ['long-polling'] } }))
  await waitConnected(app)
  const res = await request(`${base}/sessions/c/events?channel=/forbidden/x`)
  t.equal(res.status, 403)
  t.match(res.headers.get('content-type'), /application\/json/)
  t.equal(res.json.error, 'upstream_denied')
  t.equal(res.json.bayeux.error, '403::subscribe_denied')
  await waitFor(() => app.bridge.callerCount() === 0)
  const ok = await openSse(t, `${base}/sessions/c/events?channel=/fine`)
  t.equal(ok.status, 200, 'the session is fine afterwards')
  await cometd.publish('/fine', { ok: true })
  const msg = await ok.waitEvent((e) => e.event === 'message')
  t.same(JSON.parse(msg.data), { channel: '/fine', data: { ok: true } })
})
