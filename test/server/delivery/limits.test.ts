/**
 * Limit errors (Salesforce `403::Organization concurrent user limit exceeded`, daily limits) through the bridge:
 * the upstream client and the bridge's own open retries back off hard — a few attempts, never a handshake
 * storm (handshakes counted on the fixture) — the error is reported with `event: upstream` (status `limit`,
 * with the wait) and in GET /sessions/:name, and once the limit is lifted the session comes back and replays
 * what was published meanwhile.
 */
import t from 'tap'
import { startSalesforceLike } from '../../helpers/salesforce.js'
import { delay, waitFor } from '../../helpers/wait.js'
import { openSse, request, startBridge, waitConnected } from '../fixtures/bridge.js'
import { CHANNEL, range, sfConfig, sfMessages, tempDir, tokenFile } from './fixtures.js'

t.setTimeout(120_000)

t.test('limit error on re-handshake: hard backoff, reported, no storm; recovered with nothing lost', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 1000 }, tokens: ['tok-limit'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const { app, base } = await startBridge(t, sfConfig(sf.url, dir, { auth: { tokenFile: tokenFile(dir, 'tok-limit') }, subscribe: [CHANNEL] }))
  await waitConnected(app)
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 10_000 })
  const sse = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
  sf.publish(CHANNEL, { n: 1 })
  await sse.waitEvent((e) => e.event === 'message')
  sf.setHandshakeLimit(true)
  sf.resetCounters()
  sf.expireAll() // the session is gone: the bridge must handshake again, and the org is at its limit
  const watchMs = 6_000
  const started = Date.now()
  for (const n of range(2, 6)) sf.publish(CHANNEL, { n }) // published while the bridge cannot connect
  const limit = await sse.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'limit', { timeoutMs: 10_000 })
  await delay(Math.max(0, watchMs - (Date.now() - started)))
  const attempts = sf.counters.handshakes.attempts
  const report = JSON.parse(limit.data)
  t.comment(`${attempts} handshake attempts in ${watchMs} ms at the limit; announced wait ${report.retryInMs} ms`)
  t.match(report, { session: 'sf', status: 'limit', error: '403::Organization concurrent user limit exceeded' })
  t.ok(report.retryInMs >= 4_000, 'the wait is long (half to all of the 8 s cap)')
  t.ok(attempts >= 1 && attempts <= 3, 'a handful of attempts, not a loop')
  const view = (await request(`${base}/sessions/sf`)).json
  t.ok(view.limits.errors >= 1)
  t.match(view.limits.last, { error: '403::Organization concurrent user limit exceeded', retryInMs: Number })
  t.not(view.state, 'connected')

  sf.setHandshakeLimit(false)
  await waitConnected(app, 15_000)
  await sse.waitEvent((e) => e.event === 'message', { count: 6, timeoutMs: 10_000 })
  t.same(sfMessages(sse).map((m) => m.n), range(1, 6), 'what was published during the outage is replayed')
})

t.test('limit error when the bridge first opens: the retry waits seconds, not milliseconds', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, tokens: ['tok-limit'] })
  t.teardown(sf.close)
  sf.setHandshakeLimit(true)
  const dir = tempDir(t)
  const { app, base } = await startBridge(t, sfConfig(sf.url, dir, { auth: { tokenFile: tokenFile(dir, 'tok-limit') }, subscribe: [CHANNEL] }))
  const watchMs = 5_000
  await delay(watchMs)
  const attempts = sf.counters.handshakes.attempts
  const view = (await request(`${base}/sessions/sf`)).json
  t.comment(`${attempts} handshake attempt(s) in ${watchMs} ms; next open in ${view.limits.last?.retryInMs} ms`)
  t.ok(attempts >= 1 && attempts <= 2, 'no retry loop')
  t.ok(view.limits.last.retryInMs >= 4_000, 'the open retry waits at least 4 s after a limit error')
  sf.setHandshakeLimit(false)
  await waitConnected(app, 30_000) // the next attempt may be up to 16 s away (the wait doubles)
  t.pass('connected once the limit was lifted')
})

t.test('daily limit on connect: backed off, reported', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, tokens: ['tok-limit'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const { app, base } = await startBridge(t, sfConfig(sf.url, dir, { auth: { tokenFile: tokenFile(dir, 'tok-limit') }, subscribe: [CHANNEL] }))
  await waitConnected(app)
  const sse = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
  sf.resetCounters()
  sf.setDailyLimit(true)
  const limit = await sse.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'limit', { timeoutMs: 10_000 })
  t.match(JSON.parse(limit.data), { error: '403::Organization total events daily limit exceeded' })
  await delay(4_000)
  const connects = sf.counters.connects.attempts
  t.comment(`${connects} connect attempts in ~4 s under the daily limit`)
  t.ok(connects <= 4, 'no connect loop')
  sf.setDailyLimit(false)
  await waitFor(() => app.bridge.sessions.get('sf')!.state === 'connected', { timeoutMs: 15_000 })
  t.pass('back once the limit was lifted')
})
