/** server/cluster/redis.ts against a real redis-server: policy check, epoch, health, reader watchdog. */
import t from 'tap'
import { startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'
import { RedisLink, LuaScript } from '../../server/cluster/redis.js'
import { ClusterError } from '../../server/cluster/errors.js'
import { captureLog, clusterConfig, openLink } from './fixtures.js'

t.test('redis link - connects, sets the epoch once, writes its heartbeat, is ready', async (t) => {
  const redis = await startRedis(t)
  const a = await openLink(t, clusterConfig(redis.url, { replicaId: 'a' }))
  const b = await openLink(t, clusterConfig(redis.url, { replicaId: 'b' }))
  t.equal(a.state, 'up')
  t.same(a.readiness(), { ready: true })
  t.match(a.epoch, /^[a-z0-9]{12,}$/)
  t.equal(b.epoch, a.epoch, 'the second replica finds the epoch of the first')
  t.equal(await a.send(['GET', 'test:epoch']), a.epoch)
  t.ok(Number(await a.send(['PTTL', 'test:replica:a'])) > 0, 'heartbeat key with a TTL')
  await a.close()
  t.equal(await b.send(['EXISTS', 'test:replica:a']), 0, 'a closing replica removes its heartbeat at once')
  t.equal(a.state, 'closed')
  await t.rejects(a.send(['PING']), { code: 'REDIS_CLOSED' })
})

t.test('redis link - a Redis that may evict keys is refused at start with a clear message', async (t) => {
  const redis = await startRedis(t, { maxmemoryPolicy: 'allkeys-lru' })
  const err = await RedisLink.open(clusterConfig(redis.url), { log: captureLog().log, startTimeoutMs: 3_000 }).catch((e: unknown) => e)
  t.type(err, ClusterError)
  t.match(err, { code: 'REDIS_EVICTION_POLICY', message: /maxmemory-policy allkeys-lru: the bridge needs noeviction/ })
})

t.test('redis link - unreachable at start: a ClusterError after the deadline, password never in the message', async (t) => {
  const redis = await startRedis(t)
  const url = `redis://:hunter2@127.0.0.1:${redis.port}`
  await redis.stop()
  const started = Date.now()
  const err = await RedisLink.open(clusterConfig(url), { log: captureLog().log, startTimeoutMs: 800 }).catch((e: unknown) => e)
  t.match(err, { code: 'REDIS_UNREACHABLE', message: /Cannot reach Redis/ })
  t.notMatch(String((err as Error).message), /hunter2/)
  t.ok(Date.now() - started < 5_000, 'bounded')
})

t.test('redis link - a password: the right one works, a wrong one is refused without echo', async (t) => {
  const redis = await startRedis(t, { args: ['--requirepass', 's3cr3t'] })
  const link = await openLink(t, clusterConfig(`redis://:s3cr3t@127.0.0.1:${redis.port}`))
  t.equal(link.state, 'up')
  const err = await RedisLink.open(clusterConfig(`redis://:wrong-pw@127.0.0.1:${redis.port}`), { log: captureLog().log, startTimeoutMs: 1_000 }).catch((e: unknown) => e)
  t.type(err, ClusterError)
  t.notMatch(String((err as Error).message), /wrong-pw|s3cr3t/)
})

t.test('redis link - restart without data: down, up again, and a new epoch is announced', async (t) => {
  const redis = await startRedis(t)
  const log = captureLog()
  const link = await openLink(t, clusterConfig(redis.url), log.log)
  const first = link.epoch
  const changes: string[] = []
  link.onEpochChange((epoch, previous) => { changes.push(`${previous}->${epoch}`) })
  await redis.stop()
  await waitFor(() => link.state === 'down', { timeoutMs: 3_000 })
  t.match(link.readiness(), { ready: false, reason: /^redis down: / })
  await redis.start()
  await waitFor(() => link.state === 'up', { timeoutMs: 5_000, message: () => `up again; ${link.reason}` })
  t.not(link.epoch, first)
  t.same(changes, [`${first}->${link.epoch}`])
  // scripts are loaded again (EVALSHA → NOSCRIPT → EVAL)
  t.equal(await link.eval(new LuaScript('return ARGV[1]'), [], ['x']), 'x')
  t.equal(await link.eval(new LuaScript('return ARGV[1]'), [], ['y']), 'y')
})

t.test('redis link - restart with AOF: the same epoch, no announcement', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const link = await openLink(t, clusterConfig(redis.url))
  const first = link.epoch
  let changed = false
  link.onEpochChange(() => { changed = true })
  await redis.restart()
  await waitFor(() => link.state === 'down' || link.state === 'up', { timeoutMs: 3_000 })
  await waitFor(async () => link.state === 'up' && await link.send(['PING']).catch(() => null) === 'PONG', { timeoutMs: 5_000 })
  t.equal(link.epoch, first)
  t.equal(changed, false)
})

t.test('redis link - a hung Redis (SIGSTOP) is down after a heartbeat deadline, up when it answers again', async (t) => {
  const redis = await startRedis(t)
  const link = await openLink(t, clusterConfig(redis.url, { leaseMs: 600 }))
  redis.pause()
  t.teardown(() => { redis.resume() })
  const paused = Date.now()
  await waitFor(() => link.state === 'down', { timeoutMs: 3_000 })
  t.comment(`down ${Date.now() - paused} ms after the pause (leaseMs 600)`)
  // the reader watchdog: a blocking read on a hung Redis gives up after block + grace
  const err = await link.blockingRead(['XREAD', 'BLOCK', '100', 'STREAMS', 'test:none', '$'], 100, 200).catch((e: unknown) => e)
  t.match(err, { code: 'REDIS_TIMEOUT' })
  redis.resume()
  await waitFor(() => link.state === 'up', { timeoutMs: 3_000 })
  t.equal(await link.blockingRead(['XREAD', 'BLOCK', '50', 'STREAMS', 'test:none', '$'], 50, 2_000), null, 'a new reader connection works')
})

t.test('redis link - CLIENT UNBLOCK ends the blocking read at once', async (t) => {
  const redis = await startRedis(t)
  const link = await openLink(t, clusterConfig(redis.url))
  await link.blockingRead(['XREAD', 'BLOCK', '10', 'STREAMS', 'test:none', '$'], 10, 2_000)
  const started = Date.now()
  const read = link.blockingRead(['XREAD', 'BLOCK', '5000', 'STREAMS', 'test:none', '$'], 5_000, 2_000)
  await waitFor(async () => { await link.unblockReader(); return Date.now() - started > 50 })
  t.equal(await read, null)
  t.ok(Date.now() - started < 4_000, `unblocked after ${Date.now() - started} ms`)
})

t.test('redis link - a policy changed at runtime makes the link refused until it is fixed', async (t) => {
  const redis = await startRedis(t)
  const link = await openLink(t, clusterConfig(redis.url))
  await link.send(['CONFIG', 'SET', 'maxmemory-policy', 'volatile-lru'])
  // every connection of the link reconnects and checks again
  await link.send(['CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'no']).catch(() => {})
  await waitFor(() => link.state === 'refused', { timeoutMs: 3_000 })
  t.match(link.readiness(), { ready: false, reason: /maxmemory-policy volatile-lru \(noeviction required\)/ })
  await link.send(['CONFIG', 'SET', 'maxmemory-policy', 'noeviction'])
  await waitFor(() => link.state === 'up', { timeoutMs: 3_000 })
})
