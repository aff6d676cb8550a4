/** Pure units of client-core: error parsing, channel names and matching, backoff, the bounded queue. */
import t from 'tap'
import { parseBayeuxError, ServerError, CometdError, TransportError, TransportTimeoutError, ClientError, ClientInvalidOperation, TransportConnectionClosed, Backoff, channelMatches, channelProblem, matchingPatterns } from '../../client-core/index.js'
import { BoundedQueue } from '../../client-core/queue.js'

t.test('parseBayeuxError', async (t) => {
  t.same(parseBayeuxError('402::session_unknown'), { errorCode: 402, errorArgs: [], errorMessage: 'session_unknown' })
  t.same(parseBayeuxError('403:a,/foo:Denied'), { errorCode: 403, errorArgs: ['a', '/foo'], errorMessage: 'Denied' })
  t.same(parseBayeuxError('401:abc:Unknown client'), { errorCode: 401, errorArgs: ['abc'], errorMessage: 'Unknown client' })
  t.same(parseBayeuxError('400::The replayId {x}: was invalid'), { errorCode: 400, errorArgs: [], errorMessage: 'The replayId {x}: was invalid' }, 'a colon in the message stays in the message')
  t.same(parseBayeuxError('12::x'), { errorCode: null, errorArgs: [], errorMessage: 'x' })
  t.same(parseBayeuxError(undefined), { errorCode: null, errorArgs: null, errorMessage: null })
  t.same(parseBayeuxError('oops'), { errorCode: null, errorArgs: null, errorMessage: 'oops' })
})

t.test('error classes: hierarchy, codes, cause', async (t) => {
  const reply = { channel: '/meta/subscribe', successful: false, error: '403::subscribe_denied' }
  const cause = new Error('root')
  const e = new ServerError('Subscribe request failed.', reply, { cause })
  t.ok(e instanceof CometdError)
  t.equal(e.name, 'ServerError')
  t.equal(e.code, 'COMETD_SERVER_ERROR')
  t.equal(e.cause, cause)
  t.equal(e.errorCode, 403)
  t.equal(e.errorMessage, 'subscribe_denied')
  t.equal(e.response, reply)
  t.ok(new TransportTimeoutError('x') instanceof TransportError)
  t.ok(new TransportConnectionClosed('x') instanceof TransportError)
  t.ok(new ClientInvalidOperation('x') instanceof ClientError)
  t.equal(new TransportTimeoutError('x').code, 'COMETD_TRANSPORT_TIMEOUT')
})

t.test('channel names', async (t) => {
  for (const ok of ['/a', '/a/b', '/chat/demo', '/a/*', '/a/**', '/**', '/topic/Account_Updates', '/event/Order__e', '/a.b', '/a-b_c!~()$@']) {
    t.equal(channelProblem(ok, true), null, ok)
  }
  for (const bad of ['', '/', 'a', '/a/', '/a//b', '/a/*/b', '/a/b*', '/a/%00', '/a/\u00e9', '/a/b?c', 42, null]) {
    t.not(channelProblem(bad, true), null, String(bad))
  }
  t.not(channelProblem('/a/*', false), null, 'no wildcard where one is not allowed')
  t.not(channelProblem('/' + 'x'.repeat(2000), true), null, 'too long')
})

t.test('channel matching', async (t) => {
  t.ok(channelMatches('/a/*', '/a/b'))
  t.notOk(channelMatches('/a/*', '/a/b/c'))
  t.notOk(channelMatches('/a/*', '/a'))
  t.ok(channelMatches('/a/**', '/a/b/c'))
  t.notOk(channelMatches('/a/**', '/a'))
  t.notOk(channelMatches('/a/**', '/ab/c'))
  t.ok(channelMatches('/**', '/x'))
  t.same(matchingPatterns('/a/b/c'), ['/a/b/c', '/a/b/*', '/a/b/**', '/a/**', '/**'])
  t.same(matchingPatterns('/a'), ['/a', '/*', '/**'])
})

t.test('backoff: full jitter, capped, small during the first minute', async (t) => {
  let r = 1
  const b = new Backoff({ initialMs: 100, earlyMaxMs: 1000, maxMs: 8000 }, () => r)
  t.same([b.next(0), b.next(0), b.next(0), b.next(0), b.next(0), b.next(0)], [100, 200, 400, 800, 1000, 1000])
  t.equal(b.next(61_000), 6400, 'after a minute the cap grows')
  t.equal(b.next(61_000), 8000, 'up to maxMs')
  t.equal(b.next(61_000, 500), 8500, 'advice.interval is added')
  b.reset()
  t.equal(b.next(100_000), 100, 'reset starts over')
  r = 0
  t.equal(b.next(100_000), 0, 'full jitter reaches 0')
  const random = new Backoff()
  const samples = Array.from({ length: 200 }, () => { random.reset(); for (let i = 0; i < 5; i++) random.next(0); return random.next(0) })
  t.ok(new Set(samples).size > 50, 'two clients do not retry in lock-step')
  t.ok(samples.every((s) => s >= 0 && s <= 1000))
  const hard = new Backoff({ maxMs: 8000 }, () => 1)
  t.equal(hard.next(0, 0, true), 8000, 'a limit error backs off hard at once')
})

t.test('bounded queue drops the oldest and never blocks', async (t) => {
  const q = new BoundedQueue<number>(3)
  t.equal(q.push(1), undefined)
  q.push(2); q.push(3)
  t.equal(q.push(4), 1, 'the oldest is returned as dropped')
  t.equal(q.size, 3)
  t.equal(q.shift(), 2)
  const w = q.wait()
  t.equal(await w.promise, 3)
  q.shift()
  const waiting = q.wait()
  q.push(9)
  t.equal(await waiting.promise, 9, 'a waiting reader gets the item directly')
  const cancelled = q.wait()
  t.equal(cancelled.cancel(), true)
  q.push(10)
  t.equal(q.size, 1, 'a cancelled wait does not take items')
  const raced = q.wait()
  t.equal(await raced.promise, 10)
  const unbounded = new BoundedQueue<number>(0)
  for (let i = 0; i < 5000; i++) unbounded.push(i)
  t.equal(unbounded.size, 5000)
  for (let i = 0; i < 4000; i++) unbounded.shift()
  t.equal(unbounded.shift(), 4000, 'order kept across compaction')
})

t.test('the package exports the client as cometd-bridge/client (built output)', async (t) => {
  const mod = await import('cometd-bridge/client') as Record<string, unknown>
  for (const name of ['Client', 'Extension', 'AuthExtension', 'CometdError', 'ClientError',
    'ClientInvalidOperation', 'TransportError', 'TransportTimeoutError', 'TransportConnectionClosed', 'ServerError',
    'AckExtension', 'ReplayExtension', 'BearerAuth']) {
    t.type(mod[name], 'function', name)
  }
  t.equal((mod.ConnectionType as Record<string, string>).WEBSOCKET, 'websocket')
})
