/**
 * SSE on a real port against a real Faye server: headers and framing, retry once, heartbeats, wildcard
 * patterns, resume with Last-Event-ID / ?lastEventId= (nothing missed while the buffer holds it), `event: gap`
 * when it does not, and `event: upstream` when the upstream goes away and comes back.
 */
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { localSession, makeConfig, openSse, request, startBridge, waitConnected } from './fixtures/bridge.js'
import type { SseEvent } from './fixtures/bridge.js'

const isMessage = (e: SseEvent): boolean => e.event === 'message'
const dataOf = (e: SseEvent): { channel: string, data: any } => JSON.parse(e.data)

t.test('sse - headers, retry once, framing, patterns, heartbeat', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const { app, base } = await startBridge(t, makeConfig({ f: { url: faye.url } }, { sse: { heartbeatMs: 300, retryMs: 1500 } }))
  await waitConnected(app)
  const sse = await openSse(t, `${base}/sessions/f/events?channel=/chat/*&channel=/news&channel=/chat/**`)
  t.equal(sse.status, 200)
  t.match(sse.headers['content-type'], /^text\/event-stream/)
  t.equal(sse.headers['cache-control'], 'no-cache, no-transform')
  t.equal(sse.headers['x-accel-buffering'], 'no')

  await faye.publish('/chat/a', { n: 1 })
  await faye.publish('/other', { n: 2 })
  await faye.publish('/news', { n: 3, text: 'line one\nline two' })
  await faye.publish('/chat/b/deep', { n: 4 })
  const posted = await request(`${base}/sessions/f/publish/chat/c`, { method: 'POST', body: '{"n":5}', headers: { 'content-type': 'application/json' } })
  t.equal(posted.status, 200)
  await sse.waitEvent(isMessage, { count: 4 })
  await waitFor(() => sse.comments.length > 0, { timeoutMs: 5_000, message: 'a heartbeat comment' })

  const messages = sse.events.filter(isMessage)
  t.same(messages.map((e) => dataOf(e).channel), ['/chat/a', '/news', '/chat/b/deep', '/chat/c'], 'only matching channels, in order, each once although /chat/a matches two patterns')
  t.same(messages.map((e) => dataOf(e).data.n), [1, 3, 4, 5])
  t.equal(dataOf(messages[1]!).data.text, 'line one\nline two')
  const seqs = messages.map((e) => {
    t.match(e.id, /^[a-z0-9]+-\d+$/, 'id is <epoch>-<seq>')
    return Number(e.id!.split('-')[1])
  })
  t.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), `ids increase: ${seqs.join(',')}`)
  t.same(sse.retries, [1500], 'retry: once, first')
  t.ok(sse.raw().startsWith('retry: 1500\n\n'))
  for (const block of sse.raw().split('\n\n').filter((b) => b.includes('event: message'))) {
    t.equal(block.split('\n').filter((l) => l.startsWith('data:')).length, 1, 'one data line per event')
  }
  t.comment(`heartbeats seen: ${sse.comments.length}`)
  const view = (await request(`${base}/sessions/f`)).json
  t.same(view.subscriptions.map((s: { channel: string }) => s.channel).sort(), ['/chat/*', '/chat/**', '/news'], 'wildcard patterns are subscribed upstream as such')
  t.equal(view.subscriptions.find((s: { channel: string }) => s.channel === '/chat/**').callers, 1)
})

t.test('sse - resume with Last-Event-ID replays what was missed, then goes live', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const { app, base } = await startBridge(t, makeConfig({ f: { url: faye.url, subscribe: ['/r'], bufferSize: 50 } }))
  await waitConnected(app)
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200)
  const first = await openSse(t, `${base}/sessions/f/events?channel=/r`)
  for (let i = 1; i <= 3; i++) await faye.publish('/r', { i })
  const third = await first.waitEvent(isMessage, { count: 3 })
  first.close()
  await waitFor(() => app.bridge.callerCount() === 0)
  for (let i = 4; i <= 6; i++) await faye.publish('/r', { i })
  await waitFor(() => localSession(app, 'f').seq === 6)

  const resumed = await openSse(t, `${base}/sessions/f/events?channel=/r`, { 'Last-Event-ID': third.id! })
  t.equal(resumed.headers['bridge-last-event-id'], third.id, 'the stream continues right after the given id')
  await resumed.waitEvent(isMessage, { count: 3 })
  await faye.publish('/r', { i: 7 })
  await resumed.waitEvent(isMessage, { count: 4 })
  t.same(resumed.events.filter(isMessage).map((e) => dataOf(e).data.i), [4, 5, 6, 7], 'nothing missed, nothing twice')
  t.notOk(resumed.events.some((e) => e.event === 'gap'))

  const byQuery = await openSse(t, `${base}/sessions/f/events?channel=/r&lastEventId=${encodeURIComponent(third.id!)}`)
  await byQuery.waitEvent(isMessage, { count: 4 })
  t.same(byQuery.events.filter(isMessage).map((e) => dataOf(e).data.i), [4, 5, 6, 7], '?lastEventId= works the same')
})

t.test('sse - gap when the buffer no longer holds the id, or the id is unknown', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const { app, base } = await startBridge(t, makeConfig({ f: { url: faye.url, subscribe: ['/g/**'], bufferSize: 3, unsubscribeLingerMs: 0 } }))
  await waitConnected(app)
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200)
  const first = await openSse(t, `${base}/sessions/f/events?channel=/g/**`)
  await faye.publish('/g/a', { i: 1 })
  const one = await first.waitEvent(isMessage)
  first.close()
  for (let i = 2; i <= 7; i++) await faye.publish('/g/a', { i })
  await waitFor(() => localSession(app, 'f').seq === 7)

  const tooOld = await openSse(t, `${base}/sessions/f/events?channel=/g/**`, { 'Last-Event-ID': one.id! })
  const gap = await tooOld.waitEvent((e) => e.event === 'gap')
  const gapData = JSON.parse(gap.data)
  t.match(gapData, { reason: 'too-old', lastEventId: one.id, missed: 3 })
  t.match(gapData.firstAvailableId, /-5$/)
  await tooOld.waitEvent(isMessage, { count: 3 })
  t.same(tooOld.events.filter(isMessage).map((e) => dataOf(e).data.i), [5, 6, 7], 'then what the buffer still holds')
  t.equal(tooOld.events[0]?.event, 'gap', 'the gap comes first')

  const unknown = await openSse(t, `${base}/sessions/f/events?channel=/g/**`, { 'Last-Event-ID': 'zzzz-12' })
  const gap2 = await unknown.waitEvent((e) => e.event === 'gap')
  t.match(JSON.parse(gap2.data), { reason: 'unknown-id', lastEventId: 'zzzz-12' })
  await faye.publish('/g/b', { i: 8 })
  await unknown.waitEvent(isMessage)
  t.same(unknown.events.filter(isMessage).map((e) => dataOf(e).data.i), [8], 'then live only')

  // a channel nobody held upstream between the id and now: its messages never reached the bridge
  const lone = await openSse(t, `${base}/sessions/f/events?channel=/lone`)
  await faye.publish('/lone', { i: 9 })
  const nine = await lone.waitEvent(isMessage)
  lone.close()
  await waitFor(() => !(localSession(app, 'f').view().subscriptions.some((s) => s.channel === '/lone')), { message: 'upstream unsubscribe of /lone' })
  await faye.publish('/lone', { i: 10 })
  const back = await openSse(t, `${base}/sessions/f/events?channel=/lone`, { 'Last-Event-ID': nine.id! })
  const gap3 = await back.waitEvent((e) => e.event === 'gap')
  t.match(JSON.parse(gap3.data), { reason: 'not-subscribed', channels: ['/lone'] })
  const metrics = (await request(`${base}/metrics`)).text
  t.match(metrics, /cometd_bridge_resume_gaps_total\{session="f",reason="too-old"\} 1/)
})

t.test('sse - event: upstream when the upstream goes away, comes back, and re-handshakes', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const { app, base } = await startBridge(t, makeConfig({ f: { url: faye.url } }))
  await waitConnected(app)
  const sse = await openSse(t, `${base}/sessions/f/events?channel=/u`)
  await faye.publish('/u', { i: 1 })
  const before = await sse.waitEvent(isMessage)
  const started = Date.now()
  await faye.stop()
  const down = await sse.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'down')
  t.comment(`down announced after ${Date.now() - started} ms`)
  t.match(JSON.parse(down.data), { session: 'f', status: 'down', lastEventId: before.id })
  await faye.start()
  const restarted = Date.now()
  await sse.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'rehandshake', { timeoutMs: 20_000 })
  await sse.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'up', { timeoutMs: 20_000 })
  t.comment(`up again ${Date.now() - restarted} ms after the upstream restarted`)
  t.ok(JSON.parse(sse.events.find((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'rehandshake')!.data).mayHaveMissed)
  // the subscription is restored by the client after the re-handshake: messages flow again
  await waitFor(async () => {
    await faye.publish('/u', { i: 2 })
    return sse.events.filter(isMessage).length >= 2
  }, { timeoutMs: 10_000, intervalMs: 300 })
  t.ok(sse.events.filter(isMessage).length >= 2, 'messages flow after the restart')
  t.ok(sse.events.filter((e) => e.event === 'upstream').every((e) => e.id === undefined), 'upstream events carry no id')
})
