/**
 * The ack extension against cometd-nodejs-server's AcknowledgedMessagesExtension: a half-open link (a TCP fault
 * proxy that swallows bytes) eats a connect reply full of events. With ack the server sends them again after the
 * reconnect, each exactly once; without ack the same fault loses them.
 */
import t from 'tap'
import type { Test } from 'tap'
import { Client } from '../../client-core/index.js'
import type { Message } from '../../client-core/index.js'
import { startCometd } from '../helpers/cometd-server.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { delay, waitFor } from '../helpers/wait.js'

async function run (t: Test, ack: boolean): Promise<{ received: number[], sent: number }> {
  const cometd = await startCometd({ ack, options: { timeout: 1500, maxInterval: 15_000 } })
  t.teardown(cometd.close)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: cometd.port })
  t.teardown(proxy.close)
  const c = new Client(proxy.url('/cometd'), { connectionTypes: 'long-polling', ack, maxNetworkDelayMs: 1000 })
  t.teardown(async () => await c.close())
  let rehandshakes = 0
  c.on('handshake', (e) => { if (e.rehandshake) rehandshakes++ })
  await c.open()
  const received: number[] = []
  await c.subscribe('/ack/x', (m: Message) => received.push(m.data as number))
  let sent = 0
  const publish = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) await cometd.publish('/ack/x', sent++)
  }
  await publish(10)
  await waitFor(() => received.length === 10, { timeoutMs: 5000 })
  await delay(300) // let the next connect reach the server and be held there
  proxy.stall(true) // the held connect's reply, with the next events in it, goes into the void
  await delay(200)
  await publish(10)
  await delay(300)
  proxy.stall(false)
  proxy.cut()
  await waitFor(() => c.state === 'connected' && c.stats.reconnects >= 1, { timeoutMs: 15_000, message: () => `state ${c.state}` })
  await publish(10)
  await waitFor(() => received.includes(sent - 1), { timeoutMs: 10_000 })
  await delay(500)
  t.equal(rehandshakes, 0, 'the session survived the cut')
  return { received, sent }
}

t.test('with ack: every message arrives exactly once across a lost connect reply', async (t) => {
  const { received, sent } = await run(t, true)
  t.same(received, Array.from({ length: sent }, (_, i) => i), 'all, in order, none twice')
})

t.test('without ack: the same fault loses the in-flight batch', async (t) => {
  const { received, sent } = await run(t, false)
  const lost = sent - new Set(received).size
  t.comment(`without ack: ${lost} of ${sent} lost`)
  t.ok(lost > 0, 'messages were lost')
  t.equal(new Set(received).size, received.length, 'none twice')
})
