/**
 * The WebSocket endpoint (issue 7): subscribe/unsubscribe/publish/call with acks, error frames for every kind of
 * invalid frame (the socket survives them), the ACL per frame, upstream refusals, resume with lastEventId (replay
 * and gap), the slow-caller close (1013), shutdown (1001) and the frame size limit (1009).
 */
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import { startCometd } from '../helpers/cometd-server.js'
import { delay, waitFor } from '../helpers/wait.js'
import { defaultConfig } from '../../config/index.js'
import { localSession, makeConfig, startBridge, waitConnected } from './fixtures/bridge.js'
import { openWs, tokenEntry } from './fixtures/callers.js'

const AUTH_DEFAULTS = defaultConfig().auth

const FULL = 'ws-full-token-0123456789abcdef'
const LIMITED = 'ws-limited-token-0123456789abc'

t.test('websocket - operations, errors, ACL, resume', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const cometd = await startCometd({ options: { timeout: 5_000 } })
  t.teardown(cometd.close)
  const config = makeConfig({
    f: { url: faye.url, subscribe: ['/keep/**'], bufferSize: 100 },
    c: { url: cometd.url, connectionTypes: ['long-polling'] }
  }, { http: { bodyLimitBytes: 4096, publishTimeoutMs: 3_000, callTimeoutMs: 3_000 } })
  config.auth = {
    ...AUTH_DEFAULTS,
    tokens: [
      tokenEntry({ name: 'full', token: FULL, sessions: ['*'], subscribe: ['/**'], publish: ['/**'] }),
      tokenEntry({ name: 'limited', token: LIMITED, sessions: ['f'], subscribe: ['/chat/*'], publish: ['/chat/public'] })
    ]
  }
  const { app, base } = await startBridge(t, config)
  await waitConnected(app)
  await waitFor(() => localSession(app, 'f').readiness().ready, { timeoutMs: 10_000 })
  const wsBase = base.replace('http:', 'ws:')
  const full = { Authorization: `Bearer ${FULL}` }

  t.test('subscribe, messages, publish, dedupe across patterns, unsubscribe', async (t) => {
    const c = await openWs(t, `${wsBase}/sessions/f/ws`, full)
    c.send({ op: 'subscribe', channel: '/chat/**', ref: 1 })
    const ack = await c.waitFrame((f) => f.type === 'ack' && f.ref === 1)
    t.match(ack, { op: 'subscribe', channel: '/chat/**' })
    await faye.publish('/chat/room', { n: 1 })
    const m1 = await c.waitFrame((f) => f.type === 'message')
    t.match(m1, { type: 'message', channel: '/chat/room', data: { n: 1 }, id: /^[a-z0-9]+-\d+$/ })
    t.same(Object.keys(m1).slice(0, 2), ['type', 'id'], 'type and id first')

    c.send({ op: 'publish', channel: '/chat/room', data: { text: 'from ws' }, ref: 'p1' })
    const pubAck = await c.waitFrame((f) => f.type === 'ack' && f.ref === 'p1')
    t.match(pubAck, { op: 'publish', channel: '/chat/room', successful: true })
    await c.waitFrame((f) => f.type === 'message' && f.data?.text === 'from ws')

    c.send({ op: 'subscribe', channel: '/chat/room', ref: 2 })
    await c.waitFrame((f) => f.type === 'ack' && f.ref === 2)
    await faye.publish('/chat/room', { n: 'once' })
    await c.waitFrame((f) => f.type === 'message' && f.data?.n === 'once')
    await delay(150)
    t.equal(c.messages().filter((m) => m.data?.n === 'once').length, 1, 'a message matching two subscriptions comes once')

    c.send({ op: 'unsubscribe', channel: '/chat/**', ref: 3 })
    t.match(await c.waitFrame((f) => f.type === 'ack' && f.ref === 3), { op: 'unsubscribe', wasSubscribed: true })
    await faye.publish('/chat/other', { n: 'gone' })
    await faye.publish('/chat/room', { n: 'marker' })
    await c.waitFrame((f) => f.type === 'message' && f.data?.n === 'marker')
    t.notOk(c.messages().some((m) => m.data?.n === 'gone'), 'nothing after unsubscribe')
    c.send({ op: 'unsubscribe', channel: '/chat/**', ref: 4 })
    t.match(await c.waitFrame((f) => f.type === 'ack' && f.ref === 4), { wasSubscribed: false })
    const view = localSession(app, 'f').view()
    t.equal(view.callers, 1, 'the socket is one caller of the session')
  })

  t.test('call and upstream refusals', async (t) => {
    const c = await openWs(t, `${wsBase}/sessions/c/ws`, full)
    c.send({ op: 'call', channel: '/service/echo', data: { q: [1, 2] }, ref: 'c1' })
    t.match(await c.waitFrame((f) => f.ref === 'c1'), { type: 'ack', op: 'call', channel: '/service/echo', data: { q: [1, 2] } })
    c.send({ op: 'subscribe', channel: '/forbidden/x', ref: 's1' })
    t.match(await c.waitFrame((f) => f.ref === 's1'), { type: 'error', op: 'subscribe', error: 'upstream_denied', bayeux: { error: '403::subscribe_denied' } })
    c.send({ op: 'publish', channel: '/forbidden/x', data: 1, ref: 'p1' })
    t.match(await c.waitFrame((f) => f.ref === 'p1'), { type: 'error', op: 'publish', error: 'upstream_denied' })
    t.same(localSession(app, 'c').view().subscriptions.filter((s) => s.channel === '/forbidden/x' && s.refs > 0), [], 'the refused subscription is not held')
  })

  t.test('invalid frames get error frames, never a crash', async (t) => {
    const c = await openWs(t, `${wsBase}/sessions/f/ws`, full)
    const cases: Array<[unknown, string, string]> = [
      ['{not json', 'bad_json', 'raw'],
      ['[1,2]', 'bad_request', 'raw'],
      ['"text"', 'bad_request', 'raw'],
      [{ op: 'dance', ref: 'x' }, 'bad_request', 'json'],
      [{ ref: 'x' }, 'bad_request', 'json'],
      [{ op: 'subscribe', ref: 'x' }, 'missing_channel', 'json'],
      [{ op: 'subscribe', channel: 'nope', ref: 'x' }, 'invalid_channel', 'json'],
      [{ op: 'subscribe', channel: '/a/*/b', ref: 'x' }, 'invalid_channel', 'json'],
      [{ op: 'subscribe', channel: '/meta/connect', ref: 'x' }, 'meta_channel', 'json'],
      [{ op: 'subscribe', channel: '/service/echo', ref: 'x' }, 'invalid_channel', 'json'],
      [{ op: 'subscribe', channel: 42, ref: 'x' }, 'missing_channel', 'json'],
      [{ op: 'publish', channel: '/chat/*', data: 1, ref: 'x' }, 'invalid_channel', 'json'],
      [{ op: 'publish', channel: '/meta/handshake', data: 1, ref: 'x' }, 'meta_channel', 'json'],
      [{ op: 'publish', channel: '/chat/x', ref: 'x' }, 'bad_request', 'json'],
      [{ op: 'call', channel: '/chat/x', data: 1, ref: 'x' }, 'not_a_service_channel', 'json']
    ]
    let n = 0
    for (const [frame, code, kind] of cases) {
      n++
      c.sendRaw(kind === 'raw' ? frame as string : JSON.stringify({ ...(frame as object), ref: `e${n}` }))
      const err = await c.waitFrame((f) => f.type === 'error', { count: n })
      t.equal(err.error, code, `${JSON.stringify(frame)} → ${code}`)
      t.type(err.message, 'string')
      if (kind === 'json' && typeof (frame as { ref?: unknown }).ref === 'string') t.equal(err.ref, `e${n}`, 'the ref is echoed')
    }
    c.sendRaw(Buffer.from([1, 2, 3]), true)
    t.match(await c.waitFrame((f) => f.type === 'error', { count: ++n }), { error: 'bad_request', message: /text frames/ })
    for (let i = 0; i < 100; i++) c.sendRaw(i % 2 === 0 ? `garbage ${i} \u0000\uffff` : JSON.stringify({ op: 'subscribe', channel: { deep: [i] } }))
    await c.waitFrame((f) => f.type === 'error', { count: n + 100 })
    c.send({ op: 'subscribe', channel: '/chat/alive', ref: 'alive' })
    t.match(await c.waitFrame((f) => f.ref === 'alive'), { type: 'ack' }, 'the socket still works after 100 bad frames')
    const big = await openWs(t, `${wsBase}/sessions/f/ws`, full)
    big.sendRaw(JSON.stringify({ op: 'publish', channel: '/chat/x', data: 'x'.repeat(10_000) }))
    t.equal((await big.closed).code, 1009, 'a frame over http.bodyLimitBytes closes with 1009')
  })

  t.test('the ACL applies to every frame', async (t) => {
    const c = await openWs(t, `${wsBase}/sessions/f/ws`, { Authorization: `Bearer ${LIMITED}` })
    c.send({ op: 'subscribe', channel: '/chat/room', ref: 1 })
    t.match(await c.waitFrame((f) => f.ref === 1), { type: 'ack' })
    c.send({ op: 'subscribe', channel: '/chat/**', ref: 2 })
    t.match(await c.waitFrame((f) => f.ref === 2), { type: 'error', error: 'forbidden' }, '/chat/* does not cover /chat/**')
    c.send({ op: 'publish', channel: '/chat/public', data: 1, ref: 3 })
    t.match(await c.waitFrame((f) => f.ref === 3), { type: 'ack', successful: true })
    c.send({ op: 'publish', channel: '/chat/room', data: 1, ref: 4 })
    t.match(await c.waitFrame((f) => f.ref === 4), { type: 'error', error: 'forbidden' })
    c.send({ op: 'call', channel: '/service/echo', data: 1, ref: 5 })
    t.match(await c.waitFrame((f) => f.ref === 5), { type: 'error', error: 'forbidden' })
  })

  t.test('resume with lastEventId: the missed messages, in order, then live; unknown ids get a gap', async (t) => {
    const first = await openWs(t, `${wsBase}/sessions/f/ws`, full)
    first.send({ op: 'subscribe', channel: '/keep/**', ref: 1 })
    await first.waitFrame((f) => f.ref === 1)
    for (let i = 1; i <= 3; i++) await faye.publish('/keep/a', { i })
    const seen = await first.waitFrame((f) => f.type === 'message', { count: 3 })
    first.close()
    await first.closed
    for (let i = 4; i <= 7; i++) await faye.publish('/keep/a', { i })
    await waitFor(() => localSession(app, 'f').bufferedCount >= 7)
    const second = await openWs(t, `${wsBase}/sessions/f/ws`, full)
    second.send({ op: 'subscribe', channel: '/keep/**', lastEventId: seen.id, ref: 'r' })
    const ack = await second.waitFrame((f) => f.ref === 'r')
    t.equal(ack.lastEventId, seen.id, 'the ack says where the subscription continues from')
    await faye.publish('/keep/a', { i: 8 })
    await second.waitFrame((f) => f.type === 'message' && f.data?.i === 8)
    t.same(second.messages().map((m) => m.data.i), [4, 5, 6, 7, 8], 'exactly the missed messages, then live')
    t.notOk(second.frames.some((f) => f.type === 'gap'))
    const ids = second.messages().map((m) => Number(String(m.id).split('-')[1]))
    t.same(ids, [...ids].sort((a, b) => a - b), 'ids increase')

    const third = await openWs(t, `${wsBase}/sessions/f/ws`, full)
    third.send({ op: 'subscribe', channel: '/keep/**', lastEventId: 'zz-1', ref: 'u' })
    t.match(await third.waitFrame((f) => f.type === 'gap'), { reason: 'unknown-id', lastEventId: 'zz-1' })
  })

  t.test('shutdown: a final shutdown frame, then close 1001', async (t) => {
    const c = await openWs(t, `${wsBase}/sessions/f/ws`, full)
    c.send({ op: 'subscribe', channel: '/keep/**', ref: 1 })
    await c.waitFrame((f) => f.ref === 1)
    await faye.publish('/keep/last', { last: true })
    const m = await c.waitFrame((f) => f.type === 'message' && f.data?.last === true)
    localSession(app, 'f').shutdownCallers()
    const closed = await c.closed
    t.equal(closed.code, 1001)
    t.match(c.frames.at(-1), { type: 'shutdown', lastEventId: m.id, retryMs: Number })
  })
})

t.test('websocket - a slow caller is closed with 1013 and its last id; the fast caller gets everything', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const MAX_QUEUE = 256 * 1024
  const { app, base } = await startBridge(t, makeConfig({ f: { url: faye.url, subscribe: ['/flood'], bufferSize: 20 } }, {
    sse: { maxQueueBytes: MAX_QUEUE, writeTimeoutMs: 10_000 }
  }))
  await waitConnected(app)
  await waitFor(() => localSession(app, 'f').readiness().ready, { timeoutMs: 10_000 })
  const session = localSession(app, 'f')
  const wsBase = base.replace('http:', 'ws:')
  const fast = await openWs(t, `${wsBase}/sessions/f/ws`)
  const slow = await openWs(t, `${wsBase}/sessions/f/ws`)
  fast.send({ op: 'subscribe', channel: '/flood', ref: 1 })
  slow.send({ op: 'subscribe', channel: '/flood', ref: 1 })
  await fast.waitFrame((f) => f.ref === 1)
  await slow.waitFrame((f) => f.ref === 1)
  slow.ws.pause()

  const payload = 'x'.repeat(64 * 1024)
  let published = 0
  const started = Date.now()
  while (session.stats.slowDrops === 0 && published < 2_000) {
    published++
    await faye.publish('/flood', { n: published, payload })
    // the fast socket is read in this process too: on a loaded machine it must not fall 256 KiB behind itself
    if (published % 4 === 0) await waitFor(() => fast.messages().length >= published - 4 || session.stats.slowDrops > 0, { timeoutMs: 10_000 })
  }
  // queue-full usually trips at once; on a loaded machine the kernel may absorb more and the 10 s write deadline decides
  await waitFor(() => session.stats.slowDrops === 1, {
    timeoutMs: 30_000,
    message: () => `the slow socket is dropped (published ${published} in ${Date.now() - started} ms; fast got ${fast.messages().length}, slow got ${slow.messages().length}; upstream events in ${session.stats.eventsIn})`
  })
  t.comment(`slow WebSocket dropped after ${published} messages (~${(published * payload.length / 1048576).toFixed(1)} MiB) in ${Date.now() - started} ms; maxQueueBytes ${MAX_QUEUE}`)
  slow.ws.resume()
  const closed = await slow.closed
  t.equal(closed.code, 1013, 'close code 1013 (try again later)')
  t.match(closed.reason, /^slow consumer: (queue-full|write-timeout)$/)
  const last = slow.frames.at(-1)!
  t.match(last, { type: 'slow', reason: /queue-full|write-timeout/, lastEventId: /^[a-z0-9]+-\d+$/ })
  const received = slow.messages()
  t.ok(received.length > 0, 'the slow socket got messages before it fell behind')
  t.equal(last.lastEventId, received.at(-1)?.id, 'lastEventId is the last message it received')
  await fast.waitFrame((f) => f.type === 'message' && f.data?.n === published, { timeoutMs: 20_000 })
  t.same(fast.messages().map((m) => m.data.n), Array.from({ length: published }, (_, i) => i + 1), 'the fast socket got every message in order')
  t.equal(app.bridge.callerCount(), 1)
})
