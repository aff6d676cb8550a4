/**
 * Fault 3: a stalled (half-open) upstream link — the fault proxy keeps the connections open and drops every byte.
 * Over websocket (faye, pings) and long-polling (cometd-nodejs-server, request deadlines). Printed: detection time
 * (stall → callers get `event: upstream` down), when the old sockets were gone, what was lost. Asserted: detection
 * within a generous bound of the design deadline, every connection that was open at the stall closed by the bridge
 * (dropped, never reused, no close handshake awaited), recovery, and nothing lost after `up`.
 */
import t from 'tap'
import { startFaye } from '../../helpers/faye.js'
import { startCometd } from '../../helpers/cometd-server.js'
import { startFaultProxy } from '../../helpers/fault-proxy.js'
import { waitFor } from '../../helpers/wait.js'
import { openSse } from '../fixtures/bridge.js'
import { bridgeOn, startLinkTracker, ranges, receivedNs, recoverAndDrain, startPublisher, upstreamEvents } from './fixtures.js'

t.setTimeout(120_000)

t.test('half-open websocket: detected by pings, the dead socket dropped at once, recovery', async (t) => {
  const faye = await startFaye({ timeoutSec: 30 })
  t.teardown(faye.close)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: faye.port })
  t.teardown(proxy.close)
  const tracker = await startLinkTracker(t, proxy.port)
  const { base, session } = await bridgeOn(t, tracker.url('/cometd'), { connectionTypes: ['websocket'] })
  t.equal(session.client.connectionType, 'websocket')
  const sse = await openSse(t, `${base}/sessions/s/events?channel=/half/ws`)
  await waitFor(() => session.view().subscriptions.some((s) => s.state === 'subscribed'), { timeoutMs: 10_000 })
  const pub = startPublisher(t, (c, d) => faye.publish(c, d), '/half/ws', 50)
  await waitFor(() => receivedNs(sse).length >= 5, { timeoutMs: 10_000 })

  const atStall = tracker.links.filter((l) => l.closedByBridgeAt === null)
  proxy.stall(true)
  const stalledAt = Date.now()
  await waitFor(() => upstreamEvents(sse).some((e) => e.status === 'down'), { timeoutMs: 40_000, intervalMs: 20, message: 'event: upstream down' })
  const detectedMs = Date.now() - stalledAt
  await waitFor(() => atStall.every((l) => l.closedByBridgeAt !== null), { timeoutMs: 5_000, message: 'the stalled socket is closed by the bridge' })
  t.ok(atStall.length >= 1, `${atStall.length} link(s) open at the stall, all closed by the bridge`)
  const droppedMs = Math.max(...atStall.map((l) => l.closedByBridgeAt!)) - stalledAt
  proxy.stall(false)
  const backAt = Date.now()
  const { upMs, upSent, acc } = await recoverAndDrain(sse, pub, backAt, { upTimeoutMs: 20_000 })
  t.comment(`half-open websocket: detected after ${detectedMs} ms (design 5-10 s by pings; references 36-72 s); old socket gone ${droppedMs} ms after the stall; 'up' ${upMs} ms after the link worked again; lost ${acc.lost.length} of ${acc.sent} [${ranges(acc.lost)}] (written by Faye into the dead socket)`)
  t.ok(detectedMs <= 20_000, `detected within a generous 20 s (goal 15 s; measured ${detectedMs} ms)`)
  t.ok(droppedMs <= detectedMs + 1_000, 'the dead socket was dropped at detection: no close handshake awaited')
  t.equal(acc.duplicated, 0)
  t.equal(acc.outOfOrder, 0)
  t.same(acc.lost.filter((n) => n > upSent), [], 'nothing published after `up` is missing')
})

t.test('half-open long-polling: detected within advice timeout + maxNetworkDelayMs, every pooled socket dropped', async (t) => {
  const cometd = await startCometd({ options: { timeout: 1_500 } })
  t.teardown(cometd.close)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: cometd.port })
  t.teardown(proxy.close)
  const tracker = await startLinkTracker(t, proxy.port)
  const { base, session } = await bridgeOn(t, tracker.url('/cometd'), { connectionTypes: ['long-polling'], maxNetworkDelayMs: 1_500 })
  const sse = await openSse(t, `${base}/sessions/s/events?channel=/half/lp`)
  await waitFor(() => session.view().subscriptions.some((s) => s.state === 'subscribed'), { timeoutMs: 10_000 })
  const pub = startPublisher(t, (c, d) => cometd.publish(c, d), '/half/lp', 50)
  await waitFor(() => receivedNs(sse).length >= 5, { timeoutMs: 10_000 })

  const atStall = tracker.links.filter((l) => l.closedByBridgeAt === null)
  const acceptedAtStall = proxy.stats.accepted
  proxy.stall(true)
  const stalledAt = Date.now()
  await waitFor(() => upstreamEvents(sse).some((e) => e.status === 'down'), { timeoutMs: 30_000, intervalMs: 20, message: 'event: upstream down' })
  const detectedMs = Date.now() - stalledAt
  await waitFor(() => atStall.every((l) => l.closedByBridgeAt !== null), { timeoutMs: 5_000, message: () => `every socket open at the stall is closed (${atStall.filter((l) => l.closedByBridgeAt === null).length} left)` })
  const droppedMs = Math.max(...atStall.map((l) => l.closedByBridgeAt!)) - stalledAt
  proxy.stall(false)
  const backAt = Date.now()
  const { upMs, upSent, acc } = await recoverAndDrain(sse, pub, backAt, { upTimeoutMs: 20_000 })
  const bound = 1_500 + 1_500
  t.comment(`half-open long-polling: detected after ${detectedMs} ms (advice timeout 1500 + maxNetworkDelayMs 1500 = ${bound} ms; references 36-40 s on cometd); ${atStall.length} sockets open at the stall, all gone ${droppedMs} ms after it; ${proxy.stats.accepted - acceptedAtStall} new connections since; 'up' ${upMs} ms after the link worked again; lost ${acc.lost.length} of ${acc.sent} [${ranges(acc.lost)}]`)
  t.ok(detectedMs <= bound + 5_000, `detected within the deadline plus 5 s of slack (measured ${detectedMs} ms)`)
  t.ok(proxy.stats.accepted > acceptedAtStall, 'recovered on new connections')
  t.ok(droppedMs <= detectedMs + 1_000, 'the pooled sockets were dropped when the timeout fired, not later')
  t.equal(acc.duplicated, 0)
  t.equal(acc.outOfOrder, 0)
  t.same(acc.lost.filter((n) => n > upSent), [], 'nothing published after `up` is missing')
})
