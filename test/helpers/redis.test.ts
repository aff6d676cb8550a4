/** Proves test/helpers/redis.ts against the real redis-server: ports, options, stop/start with and without AOF. */
import t from 'tap'
import { createClient } from 'redis'
import { startRedis } from './redis.js'

async function client (url: string) {
  const c = createClient({ url, socket: { reconnectStrategy: false } })
  c.on('error', () => {})
  await c.connect()
  return c
}

t.test('redis helper - starts on 127.0.0.1 with the policy asked for', async (t) => {
  const redis = await startRedis(t, { maxmemoryPolicy: 'allkeys-lru' })
  t.match(redis.url, /^redis:\/\/127\.0\.0\.1:\d+$/)
  const c = await client(redis.url)
  t.same(await c.configGet('maxmemory-policy'), { 'maxmemory-policy': 'allkeys-lru' })
  t.same(await c.configGet('appendonly'), { appendonly: 'no' })
  c.destroy()
})

t.test('redis helper - restart keeps the data with AOF and loses it without', async (t) => {
  for (const appendonly of [true, false]) {
    const redis = await startRedis(t, { appendonly })
    let c = await client(redis.url)
    await c.set('k', 'v')
    c.destroy()
    await redis.restart()
    c = await client(redis.url)
    t.equal(await c.get('k'), appendonly ? 'v' : null, `appendonly ${String(appendonly)}`)
    c.destroy()
  }
})

t.test('redis helper - restartEmpty loses the data even with AOF', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  let c = await client(redis.url)
  await c.set('k', 'v')
  c.destroy()
  await redis.restartEmpty()
  c = await client(redis.url)
  t.equal(await c.get('k'), null)
  c.destroy()
})

t.test('redis helper - kill, then start on the same port', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const port = redis.port
  let c = await client(redis.url)
  await c.set('k', 'v')
  c.destroy()
  await redis.kill()
  t.equal(redis.running, false)
  await t.rejects(client(redis.url), 'nothing listens after the kill')
  await redis.start()
  t.equal(redis.port, port)
  c = await client(redis.url)
  t.equal(await c.get('k'), 'v', 'appendfsync always: an acknowledged write survives SIGKILL')
  c.destroy()
})
