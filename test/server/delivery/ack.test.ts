/**
 * `ack: true` through the bridge, against cometd-nodejs-server with its AcknowledgedMessagesExtension: a TCP fault
 * proxy between the bridge and the server swallows a connect reply full of events (a half-open link), then cuts
 * the connection — shorter than the server's session timeout. With ack the server sends the batch again after
 * the reconnect and the SSE caller gets every message exactly once, in order; without ack the same cut loses it.
 */
import t from 'tap'
import type { Test } from 'tap'
import { startCometd } from '../../helpers/cometd-server.js'
import { startFaultProxy } from '../../helpers/fault-proxy.js'
import { delay, waitFor } from '../../helpers/wait.js'
import { makeConfig, openSse, request, startBridge, waitConnected } from '../fixtures/bridge.js'

t.setTimeout(120_000)

async function run (t: Test, ack: boolean): Promise<{ received: number[], sent: number, upstream: string[] }> {
  const cometd = await startCometd({ ack, options: { timeout: 1500, maxInterval: 15_000 } })
  t.teardown(cometd.close)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: cometd.port })
  t.teardown(proxy.close)
  const config = makeConfig({
    c: { url: proxy.url('/cometd'), connectionTypes: ['long-polling'], maxNetworkDelayMs: 1_000, subscribe: ['/ack/x'], ack }
  })
  const { app, base } = await startBridge(t, config)
  await waitConnected(app)
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 10_000 })
  const sse = await openSse(t, `${base}/sessions/c/events?channel=/ack/x`)
  const received = (): number[] => sse.messages().map((m) => m.data as number)
  let sent = 0
  const publish = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await cometd.publish('/ack/x', sent++)
  }
  await publish(10)
  await waitFor(() => received().length === 10, { timeoutMs: 5_000 })
  await delay(300) // the next connect reaches the server and is held there
  proxy.stall(true) // its reply, with the next events in it, goes into the void
  await delay(200)
  await publish(10)
  await delay(300)
  proxy.stall(false)
  proxy.cut()
  const session = app.bridge.sessions.get('c')!
  await waitFor(() => session.state === 'connected' && session.stats.reconnects >= 1, { timeoutMs: 15_000, message: () => `state ${session.state}` })
  await publish(10)
  await waitFor(() => received().includes(sent - 1), { timeoutMs: 10_000 })
  await delay(500)
  t.equal(session.stats.rehandshakes, 0, 'the cut was shorter than the session timeout: same session')
  const view = (await request(`${base}/sessions/c`)).json
  t.equal(view.ack, ack, 'GET /sessions/:name shows ack')
  return { received: received(), sent, upstream: sse.events.filter((e) => e.event === 'upstream').map((e) => JSON.parse(e.data).status as string) }
}

t.test('ack: true — a short cut loses nothing, duplicates nothing', async (t) => {
  const { received, sent, upstream } = await run(t, true)
  t.same(received, Array.from({ length: sent }, (_, i) => i), `all ${sent}, in order, none twice`)
  t.equal(upstream[0], 'down', 'callers are told about the cut')
  t.equal(upstream.at(-1), 'up', '… and that the session is back')
  t.notOk(upstream.includes('rehandshake'), 'the same session')
})

t.test('ack: false — the same cut loses the batch in flight', async (t) => {
  const { received, sent } = await run(t, false)
  const lost = sent - new Set(received).size
  t.comment(`without ack: ${lost} of ${sent} lost`)
  t.ok(lost > 0, 'messages were lost')
  t.equal(new Set(received).size, received.length, 'none twice')
})
