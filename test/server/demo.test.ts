/**
 * The embedded demo: its session holds /demo/ticks for ever, so the README's resume example (come back with the
 * last id you saw) gets every tick it missed, however long after the last caller left; a config with dynamic
 * sessions only gets no demo.
 */
import t from 'tap'
import { startDemoUpstream, wantsDemo, withDemoSession } from '../../server/demo/demo.js'
import { delay, waitFor } from '../helpers/wait.js'
import { makeConfig, openSse, startBridge, waitConnected } from './fixtures/bridge.js'

t.setTimeout(60_000)

t.test('demo - ticks are held upstream without callers: a resume after the linger has no gap', async (t) => {
  const demo = await startDemoUpstream({ tickMs: 100 })
  t.teardown(demo.close)
  const config = withDemoSession(makeConfig({}), demo.url)
  t.same(config.sessions.demo!.subscribe, ['/demo/ticks'])
  // a short linger: a channel held by callers only would be unsubscribed upstream well before the caller comes back
  config.sessions.demo = { ...config.sessions.demo!, unsubscribeLingerMs: 100 }
  const { app, base } = await startBridge(t, config)
  await waitConnected(app)
  const session = app.bridge.sessions.get('demo')!
  await waitFor(() => session.upstreamSubscriptionCount === 1, { timeoutMs: 10_000 })

  const url = `${base}/sessions/demo/events?channel=/demo/ticks`
  const first = await openSse(t, url)
  const seen = await first.waitEvent((e) => e.event === 'message', { count: 2, timeoutMs: 10_000 })
  first.close()
  await delay(1_000) // ten linger periods, ten ticks
  t.equal(session.upstreamSubscriptionCount, 1, 'still subscribed upstream with no caller')

  const resumed = await openSse(t, url, { 'Last-Event-ID': seen.id! })
  await resumed.waitEvent((e) => e.event === 'message', { count: 12, timeoutMs: 10_000 })
  resumed.close()
  t.same(resumed.events.filter((e) => e.event === 'gap'), [], 'no gap event')
  const lastSeen = (first.messages().find((m) => m.id === seen.id)!.data as { n: number }).n
  const ticks = resumed.messages().map((m) => (m.data as { n: number }).n)
  t.same(ticks, Array.from({ length: ticks.length }, (_, i) => lastSeen + 1 + i), `ticks ${ticks[0]}…${ticks.at(-1)} follow tick ${lastSeen} without a hole`)
})

t.test('demo - auto: only when no session is configured, dynamic ones included', async (t) => {
  const none = makeConfig({})
  t.equal(wantsDemo({ ...none, demo: 'auto' }), true)
  t.equal(wantsDemo({ ...none, demo: 'auto', dynamicSessions: { enabled: true, allowUrls: ['http://127.0.0.1:9000/'], idleTimeoutMs: 60_000, maxPerToken: 1, maxTotal: 1 } }), false)
  t.equal(wantsDemo({ ...makeConfig({ a: { url: 'http://127.0.0.1:1/cometd' } }), demo: 'auto' }), false)
  t.equal(wantsDemo({ ...none, demo: false }), false)
})
