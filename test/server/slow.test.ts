/**
 * A caller that stops reading is dropped (final `event: slow` with its last id) while a fast caller on the
 * same channel keeps receiving everything; the slow one can resume from that id.
 */
import net from 'node:net'
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { makeConfig, openSse, request, startBridge, waitConnected } from './fixtures/bridge.js'

t.test('slow caller - dropped with event: slow, the fast caller unaffected', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const MAX_QUEUE = 256 * 1024
  const { app, base } = await startBridge(t, makeConfig({ f: { url: faye.url, bufferSize: 20, subscribe: ['/flood'] } }, {
    sse: { maxQueueBytes: MAX_QUEUE, writeTimeoutMs: 10_000 }
  }))
  await waitConnected(app)
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200)
  const session = app.bridge.sessions.get('f')!

  const fast = await openSse(t, `${base}/sessions/f/events?channel=/flood`)

  // the slow caller: a raw socket that sends its request and then never reads
  const port = Number(new URL(base).port)
  const slow = net.connect(port, '127.0.0.1')
  t.teardown(() => { slow.destroy() })
  await new Promise<void>((resolve, reject) => { slow.once('connect', resolve); slow.once('error', reject) })
  slow.write(`GET /sessions/f/events?channel=/flood HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`)
  slow.pause()
  let slowClosed = false
  slow.on('close', () => { slowClosed = true })
  await waitFor(() => app.bridge.callerCount() === 2)

  const payload = 'x'.repeat(64 * 1024)
  let published = 0
  const started = Date.now()
  while (session.stats.slowDrops === 0 && published < 2_000) {
    published++
    await faye.publish('/flood', { n: published, payload })
    if (published % 20 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  await waitFor(() => session.stats.slowDrops === 1, { timeoutMs: 10_000, message: 'the slow caller is dropped' })
  const sentBytes = published * payload.length
  t.comment(`slow caller dropped after ${published} messages (~${(sentBytes / 1048576).toFixed(1)} MiB) in ${Date.now() - started} ms; maxQueueBytes ${MAX_QUEUE}`)

  // what the slow caller gets when it reads again (within writeTimeoutMs): its last frames, then event: slow, then the end
  const chunks: Buffer[] = []
  slow.on('data', (chunk: Buffer) => { chunks.push(chunk) })
  slow.resume()
  await waitFor(() => slowClosed, { timeoutMs: 20_000, message: 'slow socket closed by the bridge' })
  const received = Buffer.concat(chunks).toString('utf8')
  const match = /event: slow\ndata: (\{.*\})\n\n$/.exec(received.replace(/\r\n0\r\n\r\n$/, '').replace(/\r\n[0-9a-f]+\r\n/g, ''))
  t.ok(match, 'event: slow is the last frame')
  const slowData = JSON.parse(match![1]!) as { lastEventId: string, reason: string }
  t.match(slowData, { reason: /queue-full|write-timeout/, lastEventId: /^[a-z0-9]+-\d+$/ })
  const ids = [...received.matchAll(/\nid: (\S+)\n/g)].map((m) => m[1])
  t.equal(slowData.lastEventId, ids.at(-1), 'the id in event: slow is the last message written to that caller')
  t.comment(`slow reason ${slowData.reason}; it received ${ids.length} of ${published} messages, last id ${slowData.lastEventId}; ${(received.length / 1048576).toFixed(1)} MiB were in socket buffers`)

  // the fast caller got every message so far and keeps receiving
  await fast.waitEvent((e) => e.event === 'message', { count: published, timeoutMs: 20_000 })
  await faye.publish('/flood', { n: published + 1, payload: 'after' })
  await fast.waitEvent((e) => e.event === 'message', { count: published + 1, timeoutMs: 10_000 })
  const ns = fast.messages().map((m) => (m.data as { n: number }).n)
  t.same(ns, Array.from({ length: published + 1 }, (_, i) => i + 1), 'fast caller: all messages, in order')
  t.equal(fast.ended, false, 'fast caller still connected')
  t.equal(app.bridge.callerCount(), 1, 'only the fast caller is left')

  // it resumes from that id: the buffer (20 messages) still holds what it missed, or says what it cannot
  const resumed = await openSse(t, `${base}/sessions/f/events?channel=/flood`, { 'Last-Event-ID': slowData.lastEventId })
  const total = published + 1
  const lastSeq = Number(slowData.lastEventId.split('-')[1])
  await waitFor(() => resumed.events.some((e) => e.event === 'gap') || resumed.messages().length === total - lastSeq, { timeoutMs: 10_000 })
  const gap = resumed.events.find((e) => e.event === 'gap')
  if (total - lastSeq <= 20) t.notOk(gap, 'within the buffer: no gap')
  else t.match(JSON.parse(gap!.data), { reason: 'too-old' }, 'beyond the buffer: a gap')

  const metrics = (await request(`${base}/metrics`)).text
  t.match(metrics, /cometd_bridge_slow_caller_drops_total\{session="f",reason="(queue-full|write-timeout)"\} 1/)
  const view = (await request(`${base}/sessions/f`)).json
  t.equal(view.counters.slowCallerDrops, 1)
})
