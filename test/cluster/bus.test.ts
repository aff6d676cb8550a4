/** server/cluster/{bus,interest}.ts against a real redis-server: requests to the holder, answers, 503/504; interest of live replicas only. */
import t from 'tap'
import { startRedis } from '../helpers/redis.js'
import { Bus } from '../../server/cluster/bus.js'
import { Interest } from '../../server/cluster/interest.js'
import { ErrorCode, HttpError } from '../../server/errors.js'
import { captureLog, clusterConfig, openLink } from './fixtures.js'

t.test('bus - answers, the holder\'s errors as they are, 503 without a holder, 504 without an answer', async (t) => {
  const redis = await startRedis(t)
  const log = captureLog().log
  const asker = new Bus(await openLink(t, clusterConfig(redis.url, { replicaId: 'asker' })), log)
  await asker.start(async () => { throw new Error('not used') })
  t.teardown(() => { asker.close() })
  const holder = new Bus(await openLink(t, clusterConfig(redis.url, { replicaId: 'holder' })), log)
  const seen: unknown[] = []
  await holder.start(async (request) => {
    seen.push(request)
    if (request.channel === '/ok') return { successful: true, channel: '/ok', id: '7' }
    if (request.channel === '/denied') throw new HttpError(403, ErrorCode.UPSTREAM_DENIED, 'The upstream server denied the publish', { details: { bayeux: { error: '403::denied' } }, headers: { 'X-Why': 'test' } })
    if (request.channel === '/crash') throw new Error('boom')
    return await new Promise(() => {}) // never answers
  })
  t.teardown(() => { holder.close() })

  t.same(await asker.request('holder', { op: 'publish', session: 's', channel: '/ok', data: { a: [1] }, timeoutMs: 500 }), { successful: true, channel: '/ok', id: '7' })
  t.same(seen[0], { op: 'publish', session: 's', channel: '/ok', data: { a: [1] }, timeoutMs: 500 }, 'the request as sent')
  const denied = await asker.request('holder', { op: 'publish', session: 's', channel: '/denied', timeoutMs: 500 }).catch((e: unknown) => e)
  t.type(denied, HttpError)
  t.match(denied, { statusCode: 403, code: 'upstream_denied', details: { bayeux: { error: '403::denied' } }, headers: { 'X-Why': 'test' } })
  t.match(await asker.request('holder', { op: 'call', session: 's', channel: '/crash', timeoutMs: 500 }).catch((e: unknown) => e), { statusCode: 502, code: 'upstream_rejected', message: 'boom' })
  t.match(await asker.request('gone', { op: 'publish', session: 's', channel: '/ok', timeoutMs: 500 }).catch((e: unknown) => e), { statusCode: 503, code: 'upstream_unavailable', message: /No replica holds session "s" right now \(replica gone is gone\)/ })
  const started = Date.now()
  t.match(await asker.request('holder', { op: 'call', session: 's', channel: '/silent', timeoutMs: 300 }).catch((e: unknown) => e), { statusCode: 504, code: 'call_timeout' })
  t.ok(Date.now() - started >= 1_200, 'after the holder\'s own deadline plus the margin')
})

t.test('interest - every live replica\'s patterns; a silent replica\'s expire; the last caller removes a pattern', async (t) => {
  const redis = await startRedis(t)
  const log = captureLog().log
  const a = new Interest(await openLink(t, clusterConfig(redis.url, { replicaId: 'a' })), log)
  const bLink = await openLink(t, clusterConfig(redis.url, { replicaId: 'b' }))
  const b = new Interest(bLink, log)
  await a.add('s1', '/x/**')
  await a.add('s1', '/x/**')
  await a.add('s2', '/y')
  await b.add('s1', '/z')
  const sweep = async () => Object.fromEntries([...await b.sweep()].map(([k, v]) => [k, [...v].sort()]))
  t.same(await sweep(), { s1: ['/x/**', '/z'], s2: ['/y'] })
  a.remove('s1', '/x/**')
  t.same(await sweep(), { s1: ['/x/**', '/z'], s2: ['/y'] }, 'one caller of two left')
  a.remove('s1', '/x/**')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(await sweep(), { s1: ['/z'], s2: ['/y'] })
  t.same(a.local('s2'), ['/y'])
  // a replica that stopped beating (its registry entry older than 3 × leaseMs) no longer counts
  await bLink.send(['ZADD', 'test:replicas', '1', 'ghost'])
  await bLink.send(['HSET', 'test:replica:ghost:interest', 's1\n/ghost', '1'])
  t.same(await sweep(), { s1: ['/z'], s2: ['/y'] })
  t.equal(await bLink.send(['ZSCORE', 'test:replicas', 'ghost']), null, 'dropped from the registry')
})
