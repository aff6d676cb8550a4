/**
 * The daemon's start with and without `cluster`: no Redis client loaded without it; a Redis that may evict keys,
 * or none at all, refused at start with a clear message (and the password never printed).
 */
import t from 'tap'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { startFaye } from '../helpers/faye.js'
import { startRedis } from '../helpers/redis.js'
import { waitFor, withDeadline } from '../helpers/wait.js'
import { request } from '../server/fixtures/bridge.js'
import { ROOT, spawnNode } from '../server/fixtures/spawn.js'

const NO_REDIS = `--import=${pathToFileURL(join(ROOT, 'test/cluster/fixtures/no-redis.mjs')).href}`

function configFile (t: { teardown: (fn: () => void) => void }, config: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-start-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'bridge.json')
  writeFileSync(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, auth: { allowUnauthenticated: true }, ...config }))
  return file
}

t.test('start - without a cluster block the Redis client is never loaded', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const plain = spawnNode(t, 'server/main.ts', ['--config', configFile(t, { sessions: { s: { url: faye.url } } })], {}, [NO_REDIS])
  const base = `http://127.0.0.1:${await plain.port(60_000)}`
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 15_000 })
  t.equal(plain.exitCode, null, 'runs with the redis package made unloadable')
  // the same guard stops a bridge that has a cluster block: the guard works
  const redis = await startRedis(t)
  const clustered = spawnNode(t, 'server/main.ts', ['--config', configFile(t, { cluster: { redis: redis.url }, sessions: { s: { url: faye.url } } })], {}, [NO_REDIS])
  const exit = await withDeadline(clustered.exited, 60_000, 'exit')
  t.not(exit.code, 0)
  t.match(clustered.stderr(), /the redis package was loaded/)
})

t.test('start - a Redis with maxmemory-policy allkeys-lru is refused with a clear message', async (t) => {
  const redis = await startRedis(t, { maxmemoryPolicy: 'allkeys-lru', args: ['--requirepass', 'hunter2'] })
  const file = configFile(t, { cluster: { redis: `redis://:\${REDIS_PASSWORD}@127.0.0.1:${redis.port}` }, sessions: { s: { url: 'http://127.0.0.1:9/cometd' } } })
  const child = spawnNode(t, 'server/main.ts', ['--config', file], { REDIS_PASSWORD: 'hunter2' })
  const exit = await withDeadline(child.exited, 60_000, 'exit')
  t.equal(exit.code, 1)
  t.match(child.stderr(), /cometd-bridge: Redis has maxmemory-policy allkeys-lru: the bridge needs noeviction/)
  t.notMatch(child.stdout() + child.stderr(), /hunter2/, 'the password is never printed')
})

t.test('start - no Redis at the URL: refused after the start-up deadline', async (t) => {
  const redis = await startRedis(t)
  const url = redis.url
  await redis.stop()
  const child = spawnNode(t, 'server/main.ts', ['--config', configFile(t, { cluster: { redis: url }, sessions: {} })])
  const exit = await withDeadline(child.exited, 60_000, 'exit')
  t.equal(exit.code, 1)
  t.match(child.stderr(), /cometd-bridge: Cannot reach Redis/)
})

t.test('docker-compose.yml - the cluster profile: a Redis the bridge accepts, two replicas with their own ids and ports', async (t) => {
  const YAML = (await import('yaml')).default
  const { readFileSync } = await import('node:fs')
  const { loadConfig } = await import('../../config/index.js')
  const compose = YAML.parse(readFileSync(join(ROOT, 'docker-compose.yml'), 'utf8')) as any
  const redis = compose.services.redis
  t.same(redis.profiles, ['cluster'])
  t.match(redis.command.join(' '), /--maxmemory-policy noeviction/)
  t.match(redis.command.join(' '), /--appendonly yes/)
  const replicas = ['bridge-a', 'bridge-b'].map((name) => compose.services[name])
  t.same(replicas.map((r) => r.profiles), [['cluster'], ['cluster']])
  t.same(replicas.map((r) => r.environment.COMETD_BRIDGE_REPLICA_ID), ['bridge-a', 'bridge-b'])
  t.same(replicas.map((r) => r.ports), [['127.0.0.1:8081:8080'], ['127.0.0.1:8082:8080']])
  t.same(replicas.map((r) => Object.keys(r.depends_on).sort()), [['demo-upstream', 'redis'], ['demo-upstream', 'redis']])
  const dir = mkdtempSync(join(tmpdir(), 'compose-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  for (const r of replicas) {
    const file = join(dir, 'bridge.yaml')
    writeFileSync(file, compose.configs[r.configs[0].source].content)
    const loaded = loadConfig({ argv: [], env: { ...r.environment, COMETD_BRIDGE_CONFIG: file } })
    if (!loaded.ok) throw new Error(loaded.text)
    t.match(loaded.config.cluster, { redis: 'redis://redis:6379', replicaId: r.environment.COMETD_BRIDGE_REPLICA_ID })
  }
})
