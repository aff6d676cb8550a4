/**
 * Pure pieces of server/: the resume ring, resume planning, channel patterns, SSE framing, error mapping.
 */
import t from 'tap'
import { channelMatches, channelProblem, matchingPatterns, patternCovers } from '../../server/channels.js'
import { Ring } from '../../server/event-log/ring.js'
import { formatId, parseId, planResume } from '../../server/event-log/resume.js'
import type { ResumeContext } from '../../server/event-log/resume.js'
import { MemoryEventLog } from '../../server/event-log/memory-log.js'
import { messageFrame, sseFrame, sseRetry } from '../../server/frames.js'
import { ServerError, TransportTimeoutError, TransportConnectionClosed, ClientInvalidOperation, ClientError } from '../../client-core/index.js'
import { mapUpstreamError } from '../../server/upstream/errors.js'

function entry (seq: number, channel = '/a') {
  return { seq, id: formatId('t', seq), channel, frame: sseFrame('message', { frame: seq }) }
}

t.test('ring - keeps the last N in order and evicts the oldest', async (t) => {
  const ring = new Ring(3)
  t.equal(ring.firstSeq, null)
  t.same(ring.since(0), [])
  for (let i = 1; i <= 5; i++) ring.push(entry(i))
  t.equal(ring.size, 3)
  t.equal(ring.firstSeq, 3)
  t.equal(ring.lastSeq, 5)
  t.same(ring.since(0).map((e) => e.seq), [3, 4, 5])
  t.same(ring.since(3).map((e) => e.seq), [4, 5])
  t.same(ring.since(5), [])
  t.same(ring.since(3, (e) => e.seq !== 4).map((e) => e.seq), [5])
  t.throws(() => ring.push(entry(9)), /sequence 9 after 5/)
})

t.test('ring - capacity 0 holds nothing', async (t) => {
  const ring = new Ring(0)
  const pushed = entry(1)
  t.equal(ring.push(pushed), pushed)
  t.equal(ring.size, 0)
  t.same(ring.since(0), [])
})

function ctx (over: Partial<ResumeContext> = {}): ResumeContext {
  const log = new MemoryEventLog(3, { epoch: 'ep1' })
  for (let i = 1; i <= 5; i++) log.append({ channel: i % 2 === 0 ? '/even' : '/odd', data: { frame: i } })
  return { log, rehandshakeSeq: null, coveredSince: () => true, ...over }
}

t.test('resume - ids round-trip and bad ids are unknown', async (t) => {
  t.same(parseId(formatId('abc123', 42)), { epoch: 'abc123', seq: 42 })
  t.equal(parseId('nope'), null)
  t.equal(parseId('ABC-1'), null)
  t.equal(parseId('a-1-2'), null)
})

t.test('resume - no Last-Event-ID: live only', async (t) => {
  const plan = planResume(ctx(), null, ['/odd'])
  t.same(plan, { replay: [], gap: null, afterSeq: 5 })
})

t.test('resume - an id still in the buffer replays exactly what follows, filtered by channel', async (t) => {
  const plan = planResume(ctx(), 'ep1-3', ['/even', '/odd'])
  t.equal(plan.gap, null)
  t.same(plan.replay.map((e) => e.seq), [4, 5])
  t.same(planResume(ctx(), 'ep1-2', ['/odd']).replay.map((e) => e.seq), [3, 5], 'oldest held follows directly: no gap')
  t.equal(planResume(ctx(), 'ep1-2', ['/odd']).gap, null)
  t.same(planResume(ctx(), 'ep1-5', ['/odd']).replay, [], 'up to date')
})

t.test('resume - too old: gap with the count, then what is held', async (t) => {
  const plan = planResume(ctx(), 'ep1-1', ['/odd', '/even'])
  t.match(plan.gap, { reason: 'too-old', lastEventId: 'ep1-1', firstAvailableId: 'ep1-3', currentId: 'ep1-5', missed: 1 })
  t.same(plan.replay.map((e) => e.seq), [3, 4, 5])
  t.equal(plan.afterSeq, 2)
})

t.test('resume - other epoch, garbage, or a future id: unknown-id gap and live only', async (t) => {
  for (const id of ['old1-3', 'garbage', 'ep1-99']) {
    const plan = planResume(ctx(), id, ['/odd'])
    t.equal(plan.gap?.reason, 'unknown-id', id)
    t.same(plan.replay, [], id)
  }
})

t.test('resume - a channel not subscribed upstream the whole time, or a re-handshake since: gap, then replay', async (t) => {
  const notCovered = planResume(ctx({ coveredSince: (p) => p !== '/even' }), 'ep1-3', ['/even', '/odd'])
  t.match(notCovered.gap, { reason: 'not-subscribed', channels: ['/even'] })
  t.same(notCovered.replay.map((e) => e.seq), [4, 5])
  const rehandshake = planResume(ctx({ rehandshakeSeq: 4 }), 'ep1-3', ['/odd'])
  t.match(rehandshake.gap, { reason: 'rehandshake' })
  t.equal(planResume(ctx({ rehandshakeSeq: 2 }), 'ep1-3', ['/odd']).gap, null, 're-handshake before the id: nothing missed')
})

t.test('channels - grammar, matching, coverage', async (t) => {
  t.equal(channelProblem('/a/b', false), null)
  t.equal(channelProblem('/a/**', true), null)
  t.match(channelProblem('/a/**', false), /wildcards/)
  t.match(channelProblem('/a/*/b', true), /last segment/)
  t.match(channelProblem('a', true), /starts with/)
  t.match(channelProblem('/a//b', true), /empty segment/)
  t.match(channelProblem('/a/b%', true), /invalid characters/)
  t.ok(channelMatches('/a/*', '/a/b'))
  t.notOk(channelMatches('/a/*', '/a/b/c'))
  t.ok(channelMatches('/a/**', '/a/b/c'))
  t.notOk(channelMatches('/a/**', '/a'))
  t.same(matchingPatterns('/a/b'), ['/a/b', '/a/*', '/a/**', '/**'])
  t.ok(patternCovers('/a/**', '/a/*'))
  t.ok(patternCovers('/a/**', '/a/b/**'))
  t.ok(patternCovers('/a/*', '/a/b'))
  t.notOk(patternCovers('/a/*', '/a/**'))
  t.notOk(patternCovers('/a/*', '/a/b/c'))
  t.notOk(patternCovers('/a/b', '/a/*'))
})

t.test('sse - frames: one data line, id and event, retry once, JSON escapes newlines', async (t) => {
  const frame = messageFrame('e-1', '/chat', { text: 'two\nlines\r\n', n: 1 }, undefined).toString()
  t.equal(frame, 'id: e-1\nevent: message\ndata: {"channel":"/chat","data":{"text":"two\\nlines\\r\\n","n":1}}\n\n')
  t.equal(frame.split('\n').filter((l) => l.startsWith('data:')).length, 1)
  t.match(messageFrame('e-2', '/c', 1, { replayId: 7 }).toString(), /"ext":\{"replayId":7\}/)
  t.match(messageFrame('e-3', '/c', undefined, undefined).toString(), /"data":null/)
  t.equal(sseFrame('gap', { a: 1 }).toString(), 'event: gap\ndata: {"a":1}\n\n')
  t.equal(sseFrame('shutdown', {}, undefined, 2500).toString(), 'retry: 2500\nevent: shutdown\ndata: {}\n\n')
  t.equal(sseRetry(2000).toString(), 'retry: 2000\n\n')
})

t.test('frames - the SSE bytes are the one copy: json, NDJSON and WebSocket renderings read back from them, multi-byte text intact', async (t) => {
  const text = 'héllo — ✓ 😀 '.repeat(2_000)
  const frame = messageFrame('e-9', '/intl', { text }, undefined)
  t.equal(frame.json, JSON.stringify({ channel: '/intl', data: { text } }))
  t.equal(frame.sse().toString('utf8'), `id: e-9\nevent: message\ndata: ${frame.json}\n\n`)
  t.equal(frame.sse(), frame.sse(), 'rendered once')
  t.same(JSON.parse(frame.bytes('ndjson').toString('utf8')), { type: 'message', id: 'e-9', channel: '/intl', data: { text } })
  t.equal(frame.bytes('ws').toString('utf8') + '\n', frame.bytes('ndjson').toString('utf8'))
  t.equal(frame.length, Buffer.byteLength(frame.toString(), 'utf8'))
})

t.test('upstream errors - each client-core error maps to its HTTP status', async (t) => {
  const refused = (error: string) => new ServerError('Publish request failed.', { channel: '/x', id: '3', successful: false, error })
  const cases: Array<[unknown, number, string]> = [
    [refused('403::publish_denied'), 403, 'upstream_denied'],
    [refused('400::bad'), 400, 'upstream_rejected'],
    [refused('404::none'), 404, 'upstream_rejected'],
    [refused('402::session_unknown'), 503, 'upstream_unavailable'],
    [refused('500::boom'), 502, 'upstream_rejected'],
    [refused('weird'), 502, 'upstream_rejected'],
    [new TransportTimeoutError('slow'), 504, 'upstream_timeout'],
    [new TransportConnectionClosed('gone'), 503, 'upstream_unavailable'],
    [new ClientInvalidOperation('closed'), 503, 'upstream_unavailable'],
    [new ClientError('bad channel'), 400, 'invalid_channel'],
    [new Error('???'), 502, 'upstream_rejected']
  ]
  for (const [err, status, code] of cases) {
    const mapped = mapUpstreamError(err, 's', 'publish', 3)
    t.equal(mapped.statusCode, status, code)
    t.equal(mapped.code, code)
    if (status === 503) t.equal(mapped.headers['Retry-After'], '3')
  }
  t.equal(mapUpstreamError(new TransportTimeoutError('x'), 's', 'call', 1).code, 'call_timeout')
  t.same(mapUpstreamError(refused('403::publish_denied'), 's', 'publish', 1).body().bayeux, { error: '403::publish_denied', channel: '/x', id: '3' })
})
