/**
 * The caller-queue gauges the dashboard shows: a caller that stops reading (a paused raw socket) in front of a
 * real faye publishing large messages; cometd_bridge_caller_queue_bytes and _max_bytes rise once the socket stops
 * taking bytes, stay within sse.maxQueueBytes, and fall back to 0 when the caller is gone.
 */
import net from 'node:net'
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { makeConfig, request, startBridge, waitConnected } from './fixtures/bridge.js'

const MAX_QUEUE = 64 * 1024 * 1024

function gauge (text: string, name: string): number {
  const m = new RegExp(`^${name}\\{session="a"\\} (\\S+)$`, 'm').exec(text)
  return m === null ? Number.NaN : Number(m[1])
}

t.test('metrics - caller queue bytes: up while a caller does not read, 0 once it is gone', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const config = makeConfig({ a: { url: faye.url } }, { sse: { maxQueueBytes: MAX_QUEUE, writeTimeoutMs: 120_000 } })
  const { app, base } = await startBridge(t, config)
  await waitConnected(app)
  const metrics = async (): Promise<string> => (await request(`${base}/metrics`)).text
  t.equal(gauge(await metrics(), 'cometd_bridge_caller_queue_bytes'), 0, 'no caller: 0')

  const port = Number(new URL(base).port)
  const socket = net.connect({ host: '127.0.0.1', port })
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  socket.write(`GET /sessions/a/events?channel=/big HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAccept: text/event-stream\r\n\r\n`)
  await new Promise<void>((resolve) => { socket.once('data', () => { resolve() }) })
  socket.pause()
  t.equal(gauge(await metrics(), 'cometd_bridge_caller_queue_bytes'), 0, 'an idle caller: 0')

  const payload = 'x'.repeat(64 * 1024)
  // a backlog the socket refused (not the frames of one turn, which leave at its end): beyond 1 MiB
  const BACKLOG = 1024 * 1024
  let text = ''
  let published = 0
  const started = Date.now()
  while (published < 600 && Date.now() - started < 60_000) {
    await Promise.all(Array.from({ length: 10 }, async (_, i) => { await faye.publish('/big', { i: published + i, payload }) }))
    published += 10
    text = await metrics()
    if (gauge(text, 'cometd_bridge_caller_queue_bytes') > BACKLOG) break
  }
  const queued = gauge(text, 'cometd_bridge_caller_queue_bytes')
  t.comment(`${queued} bytes queued after ${published} messages of 64 KiB in ${Date.now() - started} ms`)
  t.ok(queued > BACKLOG, 'the queue of a caller that does not read grows')
  const max = gauge(text, 'cometd_bridge_caller_queue_max_bytes')
  t.ok(max > 0 && max <= MAX_QUEUE, `largest caller ${max} within sse.maxQueueBytes`)
  t.equal(queued, max, 'one caller: the sum is the largest')

  socket.destroy()
  await waitFor(async () => gauge(await metrics(), 'cometd_bridge_callers') === 0, { timeoutMs: 10_000, message: () => 'caller gone' })
  const after = await metrics()
  t.equal(gauge(after, 'cometd_bridge_caller_queue_bytes'), 0, 'back to 0')
  t.equal(gauge(after, 'cometd_bridge_caller_queue_max_bytes'), 0)
})
