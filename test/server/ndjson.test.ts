/**
 * NDJSON output (issue 7): `Accept: application/x-ndjson` on GET …/events streams one JSON object per line with the
 * same ids as SSE, resumes with ?lastEventId= (or Last-Event-ID), announces gaps in-band, keeps idle streams alive
 * with a heartbeat line. The frame renderings themselves are checked too.
 */
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { frameOf } from '../../server/frames.js'
import { messageFrame } from '../../server/frames.js'
import { makeConfig, openSse, startBridge, waitConnected } from './fixtures/bridge.js'
import { openNdjson } from './fixtures/callers.js'

t.test('ndjson - frames render as SSE, NDJSON lines and WebSocket text from one serialization', async (t) => {
  const m = messageFrame('e-7', '/chat', { text: 'two\nlines', n: 1 }, { replayId: 3 })
  t.equal(m.sse().toString(), 'id: e-7\nevent: message\ndata: {"channel":"/chat","data":{"text":"two\\nlines","n":1},"ext":{"replayId":3}}\n\n')
  t.equal(m.line().toString(), '{"type":"message","id":"e-7","channel":"/chat","data":{"text":"two\\nlines","n":1},"ext":{"replayId":3}}\n')
  t.equal(m.bytes('ws').toString(), '{"type":"message","id":"e-7","channel":"/chat","data":{"text":"two\\nlines","n":1},"ext":{"replayId":3}}')
  t.equal(m.line(), m.line(), 'rendered once, cached')
  t.equal(frameOf('shutdown', {}, undefined, 2500).line().toString(), '{"type":"shutdown","retryMs":2500}\n')
  t.equal(frameOf('gap', { reason: 'too-old' }).line().toString(), '{"type":"gap","reason":"too-old"}\n')
  t.equal(frameOf('odd', '42').line().toString(), '{"type":"odd","data":42}\n')
  for (const f of [m, frameOf('x', { a: [1, { b: null }] })]) t.doesNotThrow(() => JSON.parse(f.line().toString()))
})

t.test('ndjson - one object per line, same ids as SSE, resume, gap, heartbeat', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const { app, base } = await startBridge(t, makeConfig({ f: { url: faye.url, subscribe: ['/tick'], bufferSize: 100 } }, { sse: { heartbeatMs: 1_000 } }))
  await waitConnected(app)
  await waitFor(() => app.bridge.sessions.get('f')!.readiness().ready, { timeoutMs: 10_000 })
  const url = `${base}/sessions/f/events?channel=/tick`

  const nd = await openNdjson(t, url)
  const sse = await openSse(t, url)
  t.equal(nd.status, 200)
  t.match(String(nd.headers['content-type']), /^application\/x-ndjson/)
  t.equal(nd.headers['x-accel-buffering'], 'no')
  for (let n = 1; n <= 3; n++) await faye.publish('/tick', { n })
  await nd.waitObject((o) => o.type === 'message', { count: 3 })
  await sse.waitEvent((e) => e.event === 'message', { count: 3 })
  t.ok(nd.raw().endsWith('\n'), 'every line ends with a newline')
  const messages = nd.objects().filter((o) => o.type === 'message')
  t.same(messages.map((o) => o.data.n), [1, 2, 3])
  t.same(messages.map((o) => o.id), sse.messages().map((m) => m.id), 'the same ids as the SSE stream')
  t.same(Object.keys(messages[0]!), ['type', 'id', 'channel', 'data'])
  nd.close()
  await nd.done

  for (let n = 4; n <= 6; n++) await faye.publish('/tick', { n })
  await sse.waitEvent((e) => e.event === 'message', { count: 6 })
  const resumed = await openNdjson(t, `${url}&lastEventId=${encodeURIComponent(messages[2]!.id)}`)
  t.equal(resumed.headers['bridge-last-event-id'], messages[2]!.id)
  await faye.publish('/tick', { n: 7 })
  await resumed.waitObject((o) => o.type === 'message' && o.data.n === 7)
  t.same(resumed.objects().filter((o) => o.type === 'message').map((o) => o.data.n), [4, 5, 6, 7], 'the missed lines, then live')
  t.same(resumed.objects().filter((o) => o.type === 'message').map((o) => o.id), sse.messages().slice(3).map((m) => m.id))

  const header = await openNdjson(t, url, { 'Last-Event-ID': messages[1]!.id })
  await header.waitObject((o) => o.type === 'message' && o.data.n === 7)
  t.equal(header.objects().filter((o) => o.type === 'message')[0]!.data.n, 3, 'Last-Event-ID works too')

  const unknown = await openNdjson(t, `${url}&lastEventId=nope-1`)
  t.match(await unknown.waitObject(() => true), { type: 'gap', reason: 'unknown-id', lastEventId: 'nope-1' }, 'the gap is the first line')

  const hb = await resumed.waitObject((o) => o.type === 'heartbeat', { timeoutMs: 5_000 })
  t.same(hb, { type: 'heartbeat' }, 'an idle stream gets {"type":"heartbeat"} lines')
  for (const line of resumed.lines) t.doesNotThrow(() => JSON.parse(line))
})
