/**
 * Faults 5 and 6, on the caller side:
 *  - a caller that stops reading (a paused socket, `curl --limit-rate` style) while the upstream floods: its queue
 *    stays within sse.maxQueueBytes (+ one frame), it is dropped with `event: slow`, the other callers get
 *    everything in order and stay connected;
 *  - 1,000 SSE callers connecting and disconnecting at once while messages flow, twice: no leak — callers, upstream
 *    subscriptions (GET /sessions/:name and /metrics), the upstream server's subscriptions and the sockets all come
 *    back to where they were.
 */
import net from 'node:net'
import t from 'tap'
import { startFaye } from '../../helpers/faye.js'
import { delay, waitFor } from '../../helpers/wait.js'
import { openSse, request } from '../fixtures/bridge.js'
import type { SseStream } from '../fixtures/bridge.js'
import { bridgeOn, receivedNs, startPublisher } from './fixtures.js'

t.setTimeout(120_000)

t.test('a paused reader: bounded queue, event: slow, other callers unaffected', async (t) => {
  const faye = await startFaye({ timeoutSec: 10 })
  t.teardown(faye.close)
  const MAX_QUEUE = 256 * 1024
  const { base, session, logs } = await bridgeOn(t, faye.url, { bufferSize: 20, subscribe: ['/flood'] }, {
    sse: { maxQueueBytes: MAX_QUEUE, writeTimeoutMs: 15_000 }
  })
  await waitFor(() => session.readiness().ready, { timeoutMs: 10_000 })
  const fast = [await openSse(t, `${base}/sessions/s/events?channel=/flood`), await openSse(t, `${base}/sessions/s/events?channel=/flood`)]

  const slow = net.connect(Number(new URL(base).port), '127.0.0.1')
  t.teardown(() => { slow.destroy() })
  await new Promise<void>((resolve, reject) => { slow.once('connect', resolve); slow.once('error', reject) })
  slow.write('GET /sessions/s/events?channel=/flood HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n')
  slow.pause()
  let slowClosed = false
  slow.on('close', () => { slowClosed = true })
  await waitFor(() => session.callerCount === 3)

  global.gc?.()
  const heapBefore = process.memoryUsage().heapUsed
  let heapMax = heapBefore
  const payload = 'x'.repeat(16 * 1024)
  let published = 0
  const started = Date.now()
  while (session.stats.slowDrops === 0 && published < 3_000 && Date.now() - started < 30_000) {
    published++
    await faye.publish('/flood', { n: published, payload })
    if (published % 25 === 0) {
      await delay(1)
      heapMax = Math.max(heapMax, process.memoryUsage().heapUsed)
    }
  }
  await waitFor(() => session.stats.slowDrops === 1, { timeoutMs: 20_000, message: 'the paused caller is dropped' })
  const droppedAfterMs = Date.now() - started
  const dropLog = logs.lines.find((l) => l.msg === 'slow caller dropped') as { maxQueuedBytes?: number, reason?: string } | undefined

  // the paused caller reads again: what was in the socket buffers, then event: slow, then the end
  const chunks: Buffer[] = []
  slow.on('data', (c: Buffer) => { chunks.push(c) })
  slow.resume()
  await waitFor(() => slowClosed, { timeoutMs: 20_000, message: 'the paused socket is closed by the bridge' })
  const text = Buffer.concat(chunks).toString('utf8')
  const slowFrame = /event: slow\ndata: (\{[^\n]*\})\n\n/.exec(text)

  for (const f of fast) await waitFor(() => receivedNs(f).length >= published, { timeoutMs: 20_000, message: () => `fast caller got ${receivedNs(f).length} of ${published}` })
  const frameBytes = payload.length + 200
  t.comment(`paused caller dropped after ${published} messages of 16 KiB (${(published * payload.length / 1048576).toFixed(1)} MiB) in ${droppedAfterMs} ms, reason ${dropLog?.reason}; its queue peaked at ${dropLog?.maxQueuedBytes} bytes (limit ${MAX_QUEUE}); heap ${(heapBefore / 1048576).toFixed(1)} → max ${(heapMax / 1048576).toFixed(1)} MiB during the flood (whole test process: Faye included)`)
  t.ok(dropLog !== undefined && typeof dropLog.maxQueuedBytes === 'number', 'the drop is logged with the queue high-water mark')
  t.ok((dropLog?.maxQueuedBytes ?? Infinity) <= MAX_QUEUE + frameBytes, 'the queue never grew past maxQueueBytes + one frame')
  t.ok(slowFrame !== null, 'the paused caller got event: slow')
  t.match(JSON.parse(slowFrame?.[1] ?? '{}'), { reason: /queue-full|write-timeout/, lastEventId: /^[a-z0-9]+-\d+$/ })
  for (const [i, f] of fast.entries()) {
    t.same(receivedNs(f), Array.from({ length: published }, (_, k) => k + 1), `fast caller ${i + 1}: every message, in order, once`)
    t.equal(f.ended, false, `fast caller ${i + 1} still connected`)
  }
  t.equal(session.callerCount, 2)
})

/** `cometd_bridge_<name>{session="s"} <value>` from /metrics. */
function gauge (text: string, name: string): number {
  return Number(new RegExp(`^cometd_bridge_${name}\\{session="s"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN)
}

function tcpHandles (): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length
}

t.test('1,000 callers connecting and disconnecting at once while messages flow: no leak', async (t) => {
  const CALLERS = 1_000
  const CHANNELS = 10
  const WAVE = 250
  let upstreamSubs = 0
  const faye = await startFaye({
    timeoutSec: 10,
    extensions: [{
      incoming: (m, _r, cb) => {
        if (m.channel === '/meta/subscribe' && String(m.subscription).startsWith('/many/')) upstreamSubs++
        if (m.channel === '/meta/unsubscribe' && String(m.subscription).startsWith('/many/')) upstreamSubs--
        cb(m)
      }
    }]
  })
  t.teardown(faye.close)
  const { app, base, session } = await bridgeOn(t, faye.url, { bufferSize: 100 })
  let channel = 0
  const pub = startPublisher(t, (_c, d) => faye.publish(`/many/${channel++ % CHANNELS}`, d), '/many', 20, 100_000)
  const handlesBefore = tcpHandles()

  for (const round of [1, 2]) {
    const started = Date.now()
    // in waves of WAVE concurrent connects: 1,000 SYNs at once overflow the listen backlog (511) and, on a loaded
    // 2-core machine, the retransmits (1 s, 3 s, 7 s) can push a connect past the fixture's 15 s deadline
    const streams: SseStream[] = []
    for (let w = 0; w < CALLERS; w += WAVE) {
      streams.push(...await Promise.all(Array.from({ length: Math.min(WAVE, CALLERS - w) }, async (_, k) =>
        await openSse(t, `${base}/sessions/s/events?channel=/many/${(w + k) % CHANNELS}`))))
    }
    const connectedMs = Date.now() - started
    t.equal(streams.filter((s) => s.status === 200).length, CALLERS, `round ${round}: ${CALLERS} streams accepted`)
    await waitFor(() => session.callerCount === CALLERS, { timeoutMs: 20_000 })
    const view = (await request(`${base}/sessions/s`)).json
    t.equal(view.callers, CALLERS, `round ${round}: GET /sessions/s says ${CALLERS} callers`)
    t.equal(view.subscriptions.length, CHANNELS, `round ${round}: ${CHANNELS} upstream subscriptions`)
    t.equal(view.subscriptions.reduce((s: number, x: { refs: number }) => s + x.refs, 0), CALLERS, 'their refs add up to the callers')
    await waitFor(() => upstreamSubs === CHANNELS, { timeoutMs: 10_000, message: () => `the upstream server holds ${CHANNELS} subscriptions (has ${upstreamSubs})` })
    const mark = pub.last
    await waitFor(() => streams.every((s) => receivedNs(s).some((n) => n > mark)), { timeoutMs: 20_000, message: 'every caller receives' })

    const closing = Date.now()
    for (const s of streams) s.close()
    await waitFor(() => session.callerCount === 0, { timeoutMs: 20_000, message: () => `callers back to 0 (${session.callerCount})` })
    const callersGoneMs = Date.now() - closing
    await waitFor(() => session.upstreamSubscriptionCount === 0 && upstreamSubs === 0, { timeoutMs: 10_000, message: () => `upstream subscriptions back to 0 (bridge ${session.upstreamSubscriptionCount}, server ${upstreamSubs})` })
    const after = (await request(`${base}/sessions/s`)).json
    const metrics = (await request(`${base}/metrics`)).text
    t.equal(after.callers, 0, `round ${round}: GET /sessions/s callers 0`)
    t.same(after.subscriptions, [], `round ${round}: no upstream subscription left`)
    t.equal(gauge(metrics, 'callers'), 0, '/metrics cometd_bridge_callers 0')
    t.equal(gauge(metrics, 'upstream_subscriptions'), 0, '/metrics cometd_bridge_upstream_subscriptions 0')
    const connections = await new Promise<number>((resolve) => { app.server.getConnections((_e, n) => { resolve(n) }) })
    await waitFor(() => tcpHandles() <= handlesBefore + 2, { timeoutMs: 10_000, message: () => `TCP handles back to ${handlesBefore} (${tcpHandles()})` })

    let dup = 0
    let disorder = 0
    let frames = 0
    for (const s of streams) {
      const ns = receivedNs(s)
      frames += ns.length
      dup += ns.length - new Set(ns).size
      for (let i = 1; i < ns.length; i++) if (ns[i]! <= ns[i - 1]!) disorder++
    }
    t.equal(dup, 0, `round ${round}: no caller got a message twice`)
    t.equal(disorder, 0, `round ${round}: every caller got its messages in order`)
    t.comment(`round ${round}: ${CALLERS} callers connected in ${connectedMs} ms (waves of ${WAVE}), all disconnected at once, ${frames} message frames delivered, all gone ${callersGoneMs} ms after closing; server connections left ${connections}; TCP handles ${handlesBefore} before, ${tcpHandles()} after; RSS ${(process.memoryUsage().rss / 1048576).toFixed(0)} MiB (test process)`)
  }
  await pub.stop()
  t.equal(session.stats.slowDrops, 0, 'no caller was slow')
})
