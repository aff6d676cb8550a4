/**
 * Faults 2 and 4, through a TCP fault proxy between the bridge and a real upstream:
 *  - a cut longer than the server's session timeout (cometd-nodejs-server expires the session): re-handshake,
 *    resubscribe, callers told `rehandshake` with `mayHaveMissed`;
 *  - a shorter cut (faye keeps the session): same clientId, callers told `down` then `up`, nothing lost;
 *  - the upstream refusing connections for a while: growing, jittered waits capped at maxBackoffMs, paced by the
 *    origin's connect gate (two sessions on two origins cut at the same moment do not retry in lock-step), attempt
 *    rate printed, back soon after the server accepts again, nothing lost (storm.test.ts: one origin, 20 sessions).
 */
import t from 'tap'
import type { StateChange } from '../../../client-core/index.js'
import { startFaye } from '../../helpers/faye.js'
import { startCometd } from '../../helpers/cometd-server.js'
import { startFaultProxy } from '../../helpers/fault-proxy.js'
import { delay, waitFor } from '../../helpers/wait.js'
import { localSession, makeConfig, openSse, startBridge } from '../fixtures/bridge.js'
import { account, bridgeOn, ranges, receivedNs, recoverAndDrain, startPublisher, upstreamEvents, waitForN } from './fixtures.js'

t.setTimeout(120_000)

t.test('cut longer than the session timeout: re-handshake, resubscribe, callers told rehandshake', async (t) => {
  const cometd = await startCometd({ options: { timeout: 2_000, maxInterval: 1_000 } })
  t.teardown(cometd.close)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: cometd.port })
  t.teardown(proxy.close)
  const { base, session } = await bridgeOn(t, proxy.url('/cometd'), { connectionTypes: ['long-polling'] })
  const sse = await openSse(t, `${base}/sessions/s/events?channel=/cut/long`)
  await waitFor(() => session.view().subscriptions.some((s) => s.state === 'subscribed'), { timeoutMs: 10_000 })
  const pub = startPublisher(t, (c, d) => cometd.publish(c, d), '/cut/long', 20)
  await waitFor(() => receivedNs(sse).length >= 10, { timeoutMs: 10_000 })
  const before = session.client.clientId

  await proxy.refuse(true)
  proxy.cut()
  const cutAt = Date.now()
  await waitFor(() => cometd.sessions() === 0, { timeoutMs: 15_000, message: 'the server expires the session' })
  const expiredMs = Date.now() - cutAt
  await proxy.refuse(false)
  const backAt = Date.now()
  const { upMs, upSent, acc } = await recoverAndDrain(sse, pub, backAt)
  const statuses = upstreamEvents(sse).map((e) => e.status)
  t.comment(`long cut: session expired ${expiredMs} ms after the cut; 'up' ${upMs} ms after the network returned; lost ${acc.lost.length} of ${acc.sent} [${ranges(acc.lost)}] (everything published while the session was gone: cometd drops it); caller saw ${statuses.join(' → ')}`)
  t.not(session.client.clientId, before, 'a new clientId')
  t.match(statuses, ['down', 'rehandshake', 'up'])
  t.equal(upstreamEvents(sse).find((e) => e.status === 'rehandshake')?.mayHaveMissed, true, 'mayHaveMissed: true')
  t.equal(acc.duplicated, 0, 'no duplicate')
  t.equal(acc.outOfOrder, 0, 'in order')
  t.same(acc.lost.filter((n) => n > upSent), [], 'nothing published after `up` is missing')
})

t.test('cut shorter than the session timeout: same clientId, callers told down/up, nothing lost', async (t) => {
  const faye = await startFaye({ timeoutSec: 10 })
  t.teardown(faye.close)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: faye.port })
  t.teardown(proxy.close)
  const { base, session } = await bridgeOn(t, proxy.url('/cometd'))
  const sse = await openSse(t, `${base}/sessions/s/events?channel=/cut/short`)
  await waitFor(() => session.view().subscriptions.some((s) => s.state === 'subscribed'), { timeoutMs: 10_000 })
  const pub = startPublisher(t, (c, d) => faye.publish(c, d), '/cut/short', 20)
  await waitFor(() => receivedNs(sse).length >= 10, { timeoutMs: 10_000 })
  const before = session.client.clientId
  const rehandshakesBefore = session.stats.rehandshakes

  await proxy.refuse(true)
  proxy.cut()
  const cutAt = Date.now()
  await delay(2_000)
  await proxy.refuse(false)
  const backAt = Date.now()
  const { upMs, acc } = await recoverAndDrain(sse, pub, backAt)
  const duringCut = pub.sent.filter((s) => s.at >= cutAt && s.at < backAt).length
  const statuses = upstreamEvents(sse).map((e) => e.status)
  // What Faye wrote into the link in the instant before it saw the cut is lost whatever the client does;
  // from 300 ms after the cut on, Faye queues for the session and the reconnect collects it.
  const settledLost = acc.lost.filter((n) => (pub.sent.find((s) => s.n === n)?.at ?? 0) >= cutAt + 300)
  t.comment(`short cut (2 s): 'up' ${upMs} ms after the network returned; ${duringCut} messages published during the cut; lost ${acc.lost.length} of ${acc.sent} [${ranges(acc.lost)}]; caller saw ${statuses.join(' → ')}`)
  t.equal(session.client.clientId, before, 'same clientId (the session survived)')
  t.equal(session.stats.rehandshakes, rehandshakesBefore, 'no re-handshake')
  t.same(statuses, ['down', 'up'], 'told down, then up; no rehandshake')
  t.same(settledLost, [], 'nothing published from 300 ms after the cut on is missing')
  t.equal(acc.duplicated, 0, 'no duplicate')
  t.equal(acc.outOfOrder, 0, 'in order')
})

t.test('upstream refusing connections: jittered waits capped at maxBackoffMs, attempt rate, back soon after it accepts', async (t) => {
  const faye = await startFaye({ timeoutSec: 15 })
  t.teardown(faye.close)
  const proxyA = await startFaultProxy({ host: '127.0.0.1', port: faye.port })
  t.teardown(proxyA.close)
  const proxyB = await startFaultProxy({ host: '127.0.0.1', port: faye.port })
  t.teardown(proxyB.close)
  // two sessions of one bridge, each through its own proxy, cut at the same moment
  const { app, base } = await startBridge(t, makeConfig({ a: { url: proxyA.url('/cometd') }, b: { url: proxyB.url('/cometd') } }))
  const a = localSession(app, 'a')
  const b = localSession(app, 'b')
  await waitFor(() => a.state === 'connected' && b.state === 'connected', { timeoutMs: 15_000 })
  const sse = await openSse(t, `${base}/sessions/a/events?channel=/refuse/x`)
  await waitFor(() => a.view().subscriptions.some((s) => s.state === 'subscribed'), { timeoutMs: 10_000 })
  const pub = startPublisher(t, (c, d) => faye.publish(c, d), '/refuse/x', 50)
  await waitFor(() => receivedNs(sse).length >= 5, { timeoutMs: 10_000 })
  const before = a.client.clientId

  const delays: Record<'a' | 'b', number[]> = { a: [], b: [] }
  const onState = (k: 'a' | 'b') => (e: StateChange) => { if (e.to === 'reconnecting' && typeof e.delayMs === 'number') delays[k].push(e.delayMs) }
  const la = onState('a')
  const lb = onState('b')
  a.client.on('state', la)
  b.client.on('state', lb)
  t.teardown(() => { a.client.off('state', la); b.client.off('state', lb) })

  const REFUSE_MS = 8_000
  await Promise.all([proxyA.refuse(true), proxyB.refuse(true)])
  proxyA.cut()
  proxyB.cut()
  const cutAt = Date.now()
  await delay(REFUSE_MS)
  const refusedA = proxyA.stats.refused
  const refusedB = proxyB.stats.refused
  await Promise.all([proxyA.refuse(false), proxyB.refuse(false)])
  const backAt = Date.now()
  await waitFor(() => upstreamEvents(sse).some((e) => e.status === 'up'), { timeoutMs: 15_000, message: 'event: upstream up' })
  const upMs = Date.now() - backAt
  await waitFor(() => b.state === 'connected', { timeoutMs: 15_000 })
  await delay(300)
  await pub.stop()
  await waitForN(sse, pub.last)

  const rate = (n: number): string => (n / (REFUSE_MS / 1000)).toFixed(2)
  const mean = (xs: number[]): number => Math.round(xs.reduce((s, x) => s + x, 0) / Math.max(1, xs.length))
  const pairs = Math.min(delays.a.length, delays.b.length)
  let apart = 0
  for (let i = 0; i < pairs; i++) apart += Math.abs(delays.a[i]! - delays.b[i]!)
  const acc = account(pub.sent, receivedNs(sse))
  t.comment(`refusal ${REFUSE_MS} ms: connection attempts a ${refusedA} (${rate(refusedA)}/s), b ${refusedB} (${rate(refusedB)}/s) — waits grow 250 ms → 2.3 s (maxBackoffMs), then ≈ 0.47 attempts/s (see docs/reliability.md)`)
  t.comment(`backoff delays a [${delays.a.join(', ')}] ms (mean ${mean(delays.a)}), b [${delays.b.join(', ')}] ms (mean ${mean(delays.b)}); mean |a-b| ${Math.round(apart / Math.max(1, pairs))} ms`)
  t.comment(`'up' ${upMs} ms after the server accepted again (goal ≤ 2.5 s: at most one wait of ≤ 2.3 s); lost ${acc.lost.length} of ${acc.sent} [${ranges(acc.lost)}]`)

  t.ok(delays.a.length >= 3 && delays.b.length >= 3, 'both kept retrying')
  t.ok([...delays.a, ...delays.b].every((d) => d >= 0 && d <= 2_300), 'every wait within maxBackoffMs (2.3 s by default)')
  t.ok(delays.a[0]! <= 250 && delays.b[0]! <= 250, 'the first wait within initialBackoffMs (250 ms)')
  t.ok(apart / Math.max(1, pairs) > 20, 'the two sessions do not retry in lock-step')
  t.ok(refusedA / (REFUSE_MS / 1000) < 20 && refusedB / (REFUSE_MS / 1000) < 20, 'no tight loop')
  t.ok(upMs <= 5_000, `back within a generous 5 s of the server accepting (measured ${upMs} ms)`)
  t.equal(a.client.clientId, before, 'the session survived (same clientId)')
  const settledLost = acc.lost.filter((n) => (pub.sent.find((s) => s.n === n)?.at ?? 0) >= cutAt + 300)
  t.same(settledLost, [], 'nothing published from 300 ms after the cut on is missing')
  t.equal(acc.duplicated, 0)
  t.equal(acc.outOfOrder, 0)
})
