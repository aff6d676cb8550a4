import t from 'tap'
import fc from 'fast-check'
import { configSchema, loadConfig, parseConfigObject } from '../../config/index.js'

const SEED = 20_240_611
const RUNS = 300

/** Values shaped like configs (known keys, plausible and implausible values) so that deep paths are reached. */
const scalar = fc.oneof(
  fc.integer({ min: -2, max: 70_000 }), fc.double(), fc.boolean(), fc.constant(null),
  fc.string(), fc.constantFrom('auto', 'info', 'websocket', 'long-polling', '/a/**', 'http://h/cometd', '${X}', '$${X}', '${', '__proto__')
)
const value = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 6 }), scalar, { maxKeys: 3 }))
const sessionLike = fc.record({
  url: fc.oneof(fc.constantFrom('http://h/cometd', 'https://h:1/x', 'ftp://h', 'nope', '${URL}'), value),
  connectionTypes: fc.oneof(fc.array(fc.constantFrom('websocket', 'long-polling', 'smoke'), { maxLength: 3 }), value),
  headers: fc.oneof(fc.dictionary(fc.constantFrom('Authorization', 'authorization', 'X-A', 'bad name', 'Host'), scalar), value),
  subscribe: fc.oneof(fc.array(fc.constantFrom('/a', '/a/**', '/meta/x', 'x', '/a//b', '/*/a'), { maxLength: 4 }), value),
  bufferSize: value,
  tls: fc.oneof(fc.record({ rejectUnauthorized: value, ca: value }, { requiredKeys: [] }), value),
  extra: value
}, { requiredKeys: [] })
const configLike = fc.record({
  listen: fc.oneof(fc.record({ host: value, port: value, hots: value }, { requiredKeys: [] }), value),
  logLevel: value,
  demo: value,
  sessions: fc.oneof(fc.dictionary(fc.oneof(fc.constantFrom('a', 'b b', 'default', '__proto__'), fc.string({ maxLength: 70 })), sessionLike, { maxKeys: 3 }), value),
  sse: fc.oneof(fc.record({ heartbeatMs: value, retryMs: value }, { requiredKeys: [] }), value),
  http: value,
  shutdownTimeoutMs: value,
  unknown: value
}, { requiredKeys: [] })
const anything = fc.anything({ withBoxedValues: true, withMap: true, withSet: true, withNullPrototype: true, withSparseArray: true, withDate: true, withTypedArray: true, withBigInt: true })

t.test('property - parseConfigObject never throws; every rejection names a path', async (t) => {
  fc.assert(fc.property(fc.oneof(configLike, anything), (obj) => {
    const r = parseConfigObject(obj, { X: 'x' })
    if (r.ok) {
      // what is accepted is a valid config
      return configSchema.safeParse(r.config).success
    }
    return r.errors.length > 0 && r.errors.every((e) => typeof e.path === 'string' && e.path !== '' && typeof e.message === 'string' && e.message !== '')
  }), { seed: SEED, numRuns: RUNS })
  t.pass('no counterexample')
})

t.test('property - a rejection at the root names the root', async (t) => {
  for (const obj of [null, 42, 'x', [], [1], new Map()]) {
    const r = parseConfigObject(obj, {})
    t.match(r, { ok: false, errors: [{ path: '(root)' }] }, String(obj))
  }
})

t.test('property - loadConfig never throws on random argv and env', async (t) => {
  const word = fc.oneof(fc.string(), fc.constantFrom('--port', '--port=1', '--url', '--host', '--demo', '--no-demo', '--check-config', '--print-config', '-c', '--', '-x', '--log-level', 'debug'))
  const envName = fc.oneof(fc.constantFrom('COMETD_BRIDGE_PORT', 'COMETD_BRIDGE_URL', 'COMETD_BRIDGE_HEADERS', 'COMETD_BRIDGE_SUBSCRIBE', 'COMETD_BRIDGE_DEMO', 'COMETD_BRIDGE_PROT'), fc.string())
  fc.assert(fc.property(fc.array(word, { maxLength: 6 }), fc.dictionary(envName, fc.string(), { maxKeys: 4 }), (argv, env) => {
    delete env.COMETD_BRIDGE_CONFIG // no file reads
    const r = loadConfig({ argv: argv.filter((a) => !a.startsWith('-c') && !a.startsWith('--config')), env })
    return r.ok ? r.action !== undefined : r.errors.length > 0 && r.errors.every((e) => e.path !== '') && r.text.includes(r.errors[0]!.path)
  }), { seed: SEED, numRuns: RUNS })
  t.pass('no counterexample')
})
