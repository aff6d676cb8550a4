import t from 'tap'
import { loadConfig, defaultConfig, isDemoEnabled, type Config, type LoadResult } from '../../config/index.js'

function config (result: LoadResult): Config {
  if (!result.ok) throw new Error(`expected a valid config, got:\n${result.text}`)
  return result.config
}

const YAML_FILE = `
listen:
  host: 0.0.0.0
  port: 9000
auth:
  allowUnauthenticated: true
logLevel: debug
sessions:
  sf:
    url: https://example.my.salesforce.com/cometd/58.0
    connectionTypes: [long-polling]
    headers:
      X-Tenant: acme
    subscribe: ["/event/Order__e", "/data/**"]
  chat:
    url: http://127.0.0.1:9000/cometd
sse:
  heartbeatMs: 20000
`

t.test('defaults - an empty config is valid and fully defaulted', async (t) => {
  const c = config(loadConfig({ argv: [], env: {} }))
  t.same(c, {
    listen: { host: '127.0.0.1', port: 8080 },
    logLevel: 'info',
    demo: 'auto',
    sessions: {},
    sse: { heartbeatMs: 15000, retryMs: 2000, maxQueueBytes: 1048576, writeTimeoutMs: 30000, maxCallers: 10000 },
    http: { bodyLimitBytes: 1048576, publishTimeoutMs: 10000, callTimeoutMs: 10000 },
    shutdownTimeoutMs: 10000,
    auth: { tokens: [], allowQueryToken: false, allowUnauthenticated: false, public: { metrics: false, sessions: false } },
    dynamicSessions: { enabled: false, allowUrls: [], idleTimeoutMs: 300000, maxPerToken: 5, maxTotal: 50 },
    dataDir: './data',
    checkpointIntervalMs: 200
  })
  t.same(defaultConfig(), c)
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.listen), 'the config is deep-frozen')
  t.equal(isDemoEnabled(c), true, 'demo auto without sessions runs the demo upstream')
})

t.test('defaults - a session gets every session default', async (t) => {
  const c = config(loadConfig({ argv: [], env: { COMETD_BRIDGE_URL: 'http://h/cometd' } }))
  t.same(c.sessions.default, {
    url: 'http://h/cometd',
    connectionTypes: ['websocket', 'long-polling'],
    headers: {},
    subscribe: [],
    bufferSize: 1000,
    maxNetworkDelayMs: 10000,
    connectionTimeoutMs: 10000,
    unsubscribeLingerMs: 5000,
    tls: { rejectUnauthorized: true },
    ack: false,
    replay: { enabled: false, start: -1, fallback: -2, deepResume: true, deepResumeMaxClients: 1, deepResumeTimeoutMs: 120000 }
  })
  t.equal(isDemoEnabled(c), false, 'demo auto with a session does not run the demo upstream')
  const capped = config(loadConfig({ argv: [], env: { COMETD_BRIDGE_URL: 'http://h/cometd', COMETD_BRIDGE_MAX_BATCH_BYTES: '32000' } }))
  t.equal(capped.sessions.default!.maxBatchBytes, 32000, 'COMETD_BRIDGE_MAX_BATCH_BYTES (absent by default: client-core decides)')
})

t.test('file - YAML via --config, relative to cwd', async (t) => {
  const dir = t.testdir({ 'bridge.yaml': YAML_FILE })
  const c = config(loadConfig({ argv: ['--config', 'bridge.yaml'], env: {}, cwd: dir }))
  t.same(c.listen, { host: '0.0.0.0', port: 9000 })
  t.equal(c.logLevel, 'debug')
  t.same(Object.keys(c.sessions), ['sf', 'chat'])
  t.same(c.sessions.sf!.connectionTypes, ['long-polling'])
  t.same(c.sessions.sf!.subscribe, ['/event/Order__e', '/data/**'])
  t.equal(c.sessions.chat!.bufferSize, 1000)
  t.equal(c.sse.heartbeatMs, 20000)
  t.equal(c.sse.retryMs, 2000, 'unset keys of a given section keep their default')
})

t.test('file - JSON via COMETD_BRIDGE_CONFIG', async (t) => {
  const dir = t.testdir({ 'c.json': JSON.stringify({ listen: { port: 0 }, demo: false, shutdownTimeoutMs: 0 }) })
  const c = config(loadConfig({ argv: [], env: { COMETD_BRIDGE_CONFIG: `${dir}/c.json` } }))
  t.equal(c.listen.port, 0)
  t.equal(c.demo, false)
  t.equal(c.shutdownTimeoutMs, 0)
})

t.test('file - --config wins over COMETD_BRIDGE_CONFIG; an empty file is an empty config', async (t) => {
  const dir = t.testdir({ 'empty.yml': '# nothing\n', 'other.yml': 'logLevel: warn\n' })
  const c = config(loadConfig({ argv: ['-c', 'empty.yml'], env: { COMETD_BRIDGE_CONFIG: 'other.yml' }, cwd: dir }))
  t.equal(c.logLevel, 'info')
  t.equal(config(loadConfig({ argv: [], env: { COMETD_BRIDGE_CONFIG: 'other.yml' }, cwd: dir })).logLevel, 'warn')
})

t.test('file - COMETD_BRIDGE_DEFAULTS: the config file, env and flags win over the defaults file', async (t) => {
  const dir = t.testdir({
    'defaults.json': JSON.stringify({ listen: { host: '0.0.0.0', port: 8080 }, dataDir: '/data', shutdownTimeoutMs: 8000 }),
    'mine.yaml': 'listen: { port: 9000 }\ndataDir: /srv/bridge\n'
  })
  // 0.0.0.0 needs caller tokens
  const token = { COMETD_BRIDGE_TOKEN: 'defaults-test-token-0123456789abcdef' }
  const defaultsOnly = config(loadConfig({ argv: [], env: { ...token, COMETD_BRIDGE_DEFAULTS: 'defaults.json' }, cwd: dir }))
  t.same([defaultsOnly.listen.host, defaultsOnly.listen.port, defaultsOnly.dataDir, defaultsOnly.shutdownTimeoutMs], ['0.0.0.0', 8080, '/data', 8000])
  const env = { ...token, COMETD_BRIDGE_DEFAULTS: 'defaults.json', COMETD_BRIDGE_CONFIG: 'mine.yaml' }
  const withFile = config(loadConfig({ argv: [], env, cwd: dir }))
  t.same([withFile.listen.host, withFile.listen.port, withFile.dataDir, withFile.shutdownTimeoutMs], ['0.0.0.0', 9000, '/srv/bridge', 8000],
    'the file wins key by key; what it does not set keeps the defaults file\'s value')
  const withEnv = config(loadConfig({ argv: ['--port', '9100'], env: { ...env, COMETD_BRIDGE_SHUTDOWN_TIMEOUT_MS: '3000' }, cwd: dir }))
  t.same([withEnv.listen.port, withEnv.shutdownTimeoutMs], [9100, 3000], 'env and flags still win')
  const missing = loadConfig({ argv: [], env: { COMETD_BRIDGE_DEFAULTS: 'nope.json' }, cwd: dir })
  t.match(missing, { ok: false, errors: [{ path: 'COMETD_BRIDGE_DEFAULTS', message: /cannot read config file .*nope\.json/ }] })
})

t.test('file - YAML anchors and merge keys', async (t) => {
  const dir = t.testdir({
    'c.yaml': `
sessions:
  a: &common { url: "http://a/cometd", connectionTypes: [long-polling], bufferSize: 5 }
  b: { <<: *common, url: "http://b/cometd" }
`
  })
  const c = config(loadConfig({ argv: ['--config', `${dir}/c.yaml`], env: {} }))
  t.same(c.sessions.b!.connectionTypes, ['long-polling'])
  t.equal(c.sessions.b!.bufferSize, 5)
  t.equal(c.sessions.b!.url, 'http://b/cometd')
})

t.test('env - overrides the file', async (t) => {
  const dir = t.testdir({ 'bridge.yaml': YAML_FILE })
  const c = config(loadConfig({
    argv: ['--config', 'bridge.yaml'],
    cwd: dir,
    env: {
      COMETD_BRIDGE_HOST: '::1',
      COMETD_BRIDGE_PORT: '7000',
      COMETD_BRIDGE_LOG_LEVEL: 'WARN',
      COMETD_BRIDGE_DEMO: 'true',
      COMETD_BRIDGE_SHUTDOWN_TIMEOUT_MS: '2500',
      COMETD_BRIDGE_SSE_HEARTBEAT_MS: '5000',
      COMETD_BRIDGE_HTTP_BODY_LIMIT_BYTES: '2048'
    }
  }))
  t.same(c.listen, { host: '::1', port: 7000 })
  t.equal(c.logLevel, 'warn', 'log level is case-insensitive in env')
  t.equal(c.demo, true)
  t.equal(c.shutdownTimeoutMs, 2500)
  t.equal(c.sse.heartbeatMs, 5000)
  t.equal(c.http.bodyLimitBytes, 2048)
  t.same(Object.keys(c.sessions), ['sf', 'chat'], 'no session "default" without session variables')
})

t.test('env - session variables target the session "default", merged into the file', async (t) => {
  const dir = t.testdir({
    'c.yaml': 'sessions:\n  default:\n    url: http://file/cometd\n    headers: { X-A: a, X-B: b }\n    subscribe: [/a]\n'
  })
  const c = config(loadConfig({
    argv: [],
    env: {
      COMETD_BRIDGE_CONFIG: `${dir}/c.yaml`,
      COMETD_BRIDGE_HEADERS: '{"X-B":"env","X-C":"c"}',
      COMETD_BRIDGE_SUBSCRIBE: '/x, /y/**',
      COMETD_BRIDGE_CONNECTION_TYPES: 'long-polling',
      COMETD_BRIDGE_BUFFER_SIZE: '0',
      COMETD_BRIDGE_TLS_REJECT_UNAUTHORIZED: 'no'
    }
  }))
  const s = c.sessions.default!
  t.equal(s.url, 'http://file/cometd', 'the file url is kept')
  t.same(s.headers, { 'X-A': 'a', 'X-B': 'env', 'X-C': 'c' }, 'header maps merge, env wins')
  t.same(s.subscribe, ['/x', '/y/**'], 'lists are replaced, not merged')
  t.same(s.connectionTypes, ['long-polling'])
  t.equal(s.bufferSize, 0)
  t.equal(s.tls.rejectUnauthorized, false)
})

t.test('env - COMETD_BRIDGE_URL alone defines the session "default" (sidecar)', async (t) => {
  const c = config(loadConfig({ argv: [], env: { COMETD_BRIDGE_URL: 'http://host/cometd' } }))
  t.same(Object.keys(c.sessions), ['default'])
  t.equal(c.sessions.default!.url, 'http://host/cometd')
})

t.test('env - empty values count as unset; Kubernetes service links are ignored', async (t) => {
  const c = config(loadConfig({
    argv: [],
    env: {
      COMETD_BRIDGE_PORT: 'tcp://10.0.0.7:8080',
      COMETD_BRIDGE_SERVICE_HOST: '10.0.0.7',
      COMETD_BRIDGE_SERVICE_PORT: '8080',
      COMETD_BRIDGE_PORT_8080_TCP_ADDR: '10.0.0.7',
      COMETD_BRIDGE_HOST: '',
      COMETD_BRIDGE_URL: '  ',
      COMETD_BRIDGE_IMAGE_TAG: 'v1'
    }
  }))
  t.same(c.listen, { host: '127.0.0.1', port: 8080 })
  t.same(c.sessions, {})
})

t.test('flags - override env', async (t) => {
  const c = config(loadConfig({
    argv: ['--host', '0.0.0.0', '--port=9001', '--log-level', 'trace', '--url', 'https://flag/cometd', '--no-demo'],
    env: { COMETD_BRIDGE_HOST: '::', COMETD_BRIDGE_PORT: '1', COMETD_BRIDGE_LOG_LEVEL: 'error', COMETD_BRIDGE_URL: 'http://env/cometd', COMETD_BRIDGE_DEMO: 'true', COMETD_BRIDGE_ALLOW_UNAUTHENTICATED: 'true' }
  }))
  t.same(c.listen, { host: '0.0.0.0', port: 9001 })
  t.equal(c.logLevel, 'trace')
  t.equal(c.sessions.default!.url, 'https://flag/cometd')
  t.equal(c.demo, false)
})

t.test('flags - --demo / --no-demo: the last one wins; repeated value flags too', async (t) => {
  t.equal(config(loadConfig({ argv: ['--demo', '--no-demo'], env: {} })).demo, false)
  t.equal(config(loadConfig({ argv: ['--no-demo', '--demo'], env: {} })).demo, true)
  t.equal(config(loadConfig({ argv: ['--port', '1', '--port', '2'], env: {} })).listen.port, 2)
})

t.test('demo - auto, true and false', async (t) => {
  const withSession = { sessions: { a: { url: 'http://a/cometd' } } }
  t.equal(isDemoEnabled({ demo: 'auto', sessions: {} }), true)
  t.equal(isDemoEnabled({ demo: 'auto', ...withSession } as never), false)
  t.equal(isDemoEnabled({ demo: true, ...withSession } as never), true)
  t.equal(isDemoEnabled({ demo: false, sessions: {} }), false)
  t.equal(isDemoEnabled({ demo: 'auto', sessions: {}, dynamicSessions: { enabled: true } }), false, 'dynamic sessions only: no demo')
  t.equal(isDemoEnabled({ demo: true, sessions: {}, dynamicSessions: { enabled: true } }), true, 'unless asked for')
  for (const [text, value] of [['auto', 'auto'], ['TRUE', true], ['1', true], ['off', false]] as const) {
    t.equal(config(loadConfig({ argv: [], env: { COMETD_BRIDGE_DEMO: text } })).demo, value, `COMETD_BRIDGE_DEMO=${text}`)
  }
})
