import t from 'tap'
import { hostname } from 'node:os'
import { loadConfig, parseConfigObject, redactConfig, type Config, type LoadResult } from '../../config/index.js'

function config (result: LoadResult): Config {
  if (!result.ok) throw new Error(`expected a valid config, got:\n${result.text}`)
  return result.config
}

function errors (obj: unknown, env: Record<string, string> = {}): string {
  const r = parseConfigObject(obj, env)
  if (r.ok) throw new Error('expected an invalid config')
  return r.errors.map((e) => `${e.path}: ${e.message}`).join('\n')
}

t.test('cluster config - absent by default: the bridge runs alone', async (t) => {
  const c = config(loadConfig({ argv: [], env: {} }))
  t.equal(c.cluster, undefined)
})

t.test('cluster config - defaults: replicaId is hostname-pid, lease 3 s, 100,000 entries, prefix cometd-bridge', async (t) => {
  const r = parseConfigObject({ cluster: { redis: 'redis://127.0.0.1:6379' } }, {})
  if (!r.ok) throw new Error(JSON.stringify(r.errors))
  t.same(r.config.cluster, {
    redis: 'redis://127.0.0.1:6379',
    replicaId: `${hostname()}-${process.pid}`,
    leaseMs: 3000,
    streamMaxLen: 100000,
    keyPrefix: 'cometd-bridge'
  })
})

t.test('cluster config - ${VAR} substitution for the password, rediss:// for TLS, redacted when printed', async (t) => {
  const r = parseConfigObject({ cluster: { redis: 'rediss://app:${REDIS_PASSWORD}@redis.internal:6380/2', replicaId: 'bridge-a' } }, { REDIS_PASSWORD: 's3cr3t' })
  if (!r.ok) throw new Error(JSON.stringify(r.errors))
  t.equal(r.config.cluster?.redis, 'rediss://app:s3cr3t@redis.internal:6380/2')
  const printed = JSON.stringify(redactConfig(r.config))
  t.notMatch(printed, /s3cr3t/)
  t.match(printed, 'rediss://[redacted]@redis.internal:6380/2', 'the user info is hidden whole (the one redaction: config/redact.ts)')
  // a password without a user name (requirepass)
  const r2 = parseConfigObject({ cluster: { redis: 'redis://:pw-only@127.0.0.1:6379' } }, {})
  if (!r2.ok) throw new Error(JSON.stringify(r2.errors))
  t.notMatch(JSON.stringify(redactConfig(r2.config)), /pw-only/)
})

t.test('cluster config - env COMETD_BRIDGE_REDIS_URL and COMETD_BRIDGE_REPLICA_ID', async (t) => {
  const c = config(loadConfig({ argv: [], env: { COMETD_BRIDGE_REDIS_URL: 'redis://:pw@10.0.0.5:6379', COMETD_BRIDGE_REPLICA_ID: 'bridge-b' } }))
  t.match(c.cluster, { redis: 'redis://:pw@10.0.0.5:6379', replicaId: 'bridge-b', leaseMs: 3000 })
  const printed = loadConfig({ argv: ['--print-config'], env: { COMETD_BRIDGE_REDIS_URL: 'redis://:pw@10.0.0.5:6379' } })
  t.ok(printed.ok)
  t.notMatch(printed.ok ? printed.text ?? '' : '', /:pw@/)
  // a replica id alone is not a cluster
  const alone = loadConfig({ argv: [], env: { COMETD_BRIDGE_REPLICA_ID: 'bridge-b' } })
  t.notOk(alone.ok)
  t.match(alone.ok ? '' : alone.text, /cluster\.redis.*required: the Redis URL/)
})

t.test('cluster config - bad values name the field and never echo the URL', async (t) => {
  const text = errors({
    cluster: { redis: 'http://user:hunter2@h:6379', replicaId: 'a|b', leaseMs: 50, streamMaxLen: 10, keyPrefix: 'has space', extra: 1 }
  })
  t.match(text, /cluster\.redis: must be a redis:\/\/ or rediss:\/\/ URL/)
  t.match(text, /cluster\.replicaId: a replica id: 1 to 128 letters/)
  t.match(text, /cluster\.leaseMs: must be an integer between 300 and 600000/)
  t.match(text, /cluster\.streamMaxLen: must be an integer between 100 and 100000000/)
  t.match(text, /cluster\.keyPrefix: a key prefix/)
  t.match(text, /cluster\.extra/)
  t.notMatch(text, /hunter2/)
  t.match(errors({ cluster: { redis: 'not a url' } }), /cluster\.redis: Invalid URL/)
  t.match(errors({ cluster: { redis: 'redis://h:6379/x/y' } }), /cluster\.redis: the path may only be a database number/)
  t.match(errors({ cluster: 'redis://h' }), /cluster: must be a mapping/)
  t.match(errors({ cluster: { redis: 'redis://${NOPE}@h' } }), /cluster\.redis: environment variable NOPE is not set/)
})
