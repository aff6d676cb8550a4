import t, { type Test } from 'tap'
import { CONFIG_EXIT_CODE, formatIssues, loadConfig, parseConfigObject, type ConfigIssue } from '../../config/index.js'

/** The errors of an invalid config object (validated without env). */
function errorsOf (obj: unknown): ConfigIssue[] {
  const r = parseConfigObject(obj, {})
  if (r.ok) throw new Error(`expected errors for ${JSON.stringify(obj)}`)
  return r.errors
}

function loadErrors (t: Test, argv: string[], env: Record<string, string> = {}, cwd?: string): ConfigIssue[] {
  const r = loadConfig(cwd === undefined ? { argv, env } : { argv, env, cwd })
  if (r.ok) throw new Error(`expected errors for ${JSON.stringify({ argv, env })}`)
  t.equal(r.text, `cometd-bridge: invalid configuration (${r.errors.length} problem${r.errors.length === 1 ? '' : 's'}):\n${formatIssues(r.errors)}\n`)
  return r.errors
}

const url = 'http://h/cometd'

t.test('errors - the exit code is EX_CONFIG', async (t) => {
  t.equal(CONFIG_EXIT_CODE, 78)
})

t.test('errors - bad URL', async (t) => {
  t.same(errorsOf({ sessions: { sf: { url: 'not a url' } } }), [{ path: 'sessions.sf.url', message: 'Invalid URL' }])
  t.same(errorsOf({ sessions: { sf: { url: 'ws://h/cometd' } } }), [{ path: 'sessions.sf.url', message: 'must be an http:// or https:// URL (got ws://)' }])
  t.match(errorsOf({ sessions: { sf: {} } }), [{ path: 'sessions.sf.url', message: /^required/ }])
  t.match(errorsOf({ sessions: { sf: null } }), [{ path: 'sessions.sf', message: /must be a mapping/ }])
})

t.test('errors - bad port (file, env and flag)', async (t) => {
  const message = 'must be an integer between 0 and 65535'
  for (const port of [70000, -1, 1.5, 'eighty', true, null]) {
    t.same(errorsOf({ listen: { port } }), [{ path: 'listen.port', message }], `port ${JSON.stringify(port)}`)
  }
  t.same(loadErrors(t, [], { COMETD_BRIDGE_PORT: '80a' }), [{ path: 'listen.port', message: `${message} (from env COMETD_BRIDGE_PORT)` }])
  t.same(loadErrors(t, ['--port', '99999']), [{ path: 'listen.port', message: `${message} (from --port)` }])
})

t.test('errors - other ranges name the field', async (t) => {
  t.same(errorsOf({ sessions: { a: { url, bufferSize: 1_000_001 } } }), [{ path: 'sessions.a.bufferSize', message: 'must be an integer between 0 and 1000000' }])
  t.same(errorsOf({ sessions: { a: { url, maxBatchBytes: 100 } } }), [{ path: 'sessions.a.maxBatchBytes', message: 'must be an integer between 1024 and 67108864' }])
  t.same(loadErrors(t, [], { COMETD_BRIDGE_URL: url, COMETD_BRIDGE_MAX_BATCH_BYTES: '32k' }), [{ path: 'sessions.default.maxBatchBytes', message: 'must be an integer between 1024 and 67108864 (from env COMETD_BRIDGE_MAX_BATCH_BYTES)' }])
  t.same(errorsOf({ sse: { heartbeatMs: 10 } }), [{ path: 'sse.heartbeatMs', message: 'must be an integer between 1000 and 300000' }])
  t.same(errorsOf({ http: { bodyLimitBytes: 0 } }), [{ path: 'http.bodyLimitBytes', message: 'must be an integer between 1 and 104857600' }])
  t.same(errorsOf({ shutdownTimeoutMs: -5 }), [{ path: 'shutdownTimeoutMs', message: 'must be an integer between 0 and 600000' }])
  t.same(errorsOf({ logLevel: 'verbose' }), [{ path: 'logLevel', message: 'must be one of fatal, error, warn, info, debug, trace, silent' }])
  t.same(errorsOf({ demo: 'yes' }), [{ path: 'demo', message: 'must be auto, true or false' }])
  t.same(errorsOf({ sessions: { a: { url, tls: { rejectUnauthorized: 'no' } } } }), [{ path: 'sessions.a.tls.rejectUnauthorized', message: 'must be true or false' }])
  t.match(errorsOf({ sessions: { a: { url, tls: { ca: '/etc/ssl/ca.pem' } } } }), [{ path: 'sessions.a.tls.ca', message: /PEM/ }])
})

t.test('errors - unknown keys name the key, with a suggestion', async (t) => {
  t.same(errorsOf({ listen: { prot: 1 } }), [{ path: 'listen.prot', message: 'unknown key (did you mean "port"?)' }])
  t.same(errorsOf({ port: 1 }), [{ path: 'port', message: 'unknown key here (did you mean listen.port?)' }])
  t.same(errorsOf({ sessions: { a: { url, subscribes: [] } } }), [{ path: 'sessions.a.subscribes', message: 'unknown key (did you mean "subscribe"?)' }])
  t.match(errorsOf({ sessions: { a: { url, tls: { verify: false } } } }), [{ path: 'sessions.a.tls.verify', message: /^unknown key \(expected one of: rejectUnauthorized, ca\)/ }])
  t.same(errorsOf({ x: 1, y: 2 }).map((e) => e.path), ['x', 'y'], 'one issue per unknown key')
  t.match(errorsOf(JSON.parse('{"__proto__": {"a": 1}}')), [{ path: '__proto__', message: /not allowed/ }])
})

t.test('errors - bad channel', async (t) => {
  const issues = errorsOf({ sessions: { a: { url, subscribe: ['/ok/**', 'no-slash', '/a//b', '/a/**/b', '/meta/connect', '/service/x', '/ok/**'] } } })
  t.same(issues.map((i) => i.path), [
    'sessions.a.subscribe[1]', 'sessions.a.subscribe[2]', 'sessions.a.subscribe[3]', 'sessions.a.subscribe[4]', 'sessions.a.subscribe[5]', 'sessions.a.subscribe'
  ])
  t.match(issues, [
    { message: /starts with "\/"/ }, { message: /empty segment/ }, { message: /wildcard must be the last segment/ },
    { message: /cannot subscribe to a \/meta channel/ }, { message: /\/service/ }, { message: /must not repeat a channel/ }
  ])
})

t.test('errors - bad connection types', async (t) => {
  t.same(errorsOf({ sessions: { a: { url, connectionTypes: ['websocket', 'callback-polling'] } } }),
    [{ path: 'sessions.a.connectionTypes[1]', message: 'must be "websocket" or "long-polling"' }])
  t.same(errorsOf({ sessions: { a: { url, connectionTypes: [] } } }),
    [{ path: 'sessions.a.connectionTypes', message: 'must list at least one connection type' }])
  t.same(errorsOf({ sessions: { a: { url, connectionTypes: ['long-polling', 'long-polling'] } } }),
    [{ path: 'sessions.a.connectionTypes', message: 'must not repeat a connection type' }])
  t.same(loadErrors(t, [], { COMETD_BRIDGE_URL: url, COMETD_BRIDGE_CONNECTION_TYPES: 'websocket,polling' }),
    [{ path: 'sessions.default.connectionTypes[1]', message: 'must be "websocket" or "long-polling" (from env COMETD_BRIDGE_CONNECTION_TYPES)' }])
})

t.test('errors - headers', async (t) => {
  t.same(errorsOf({ sessions: { a: { url, headers: { 'Bad Name': 'x', Host: 'h', 'X-N': 5, 'X-CRLF': 'a\r\nb', authorization: 'a', Authorization: 'b' } } } }), [
    { path: 'sessions.a.headers["Bad Name"]', message: 'is not a valid HTTP header name' },
    { path: 'sessions.a.headers.Host', message: 'is set by the transport and cannot be configured' },
    { path: 'sessions.a.headers.X-N', message: 'a header value must be a string (quote numbers in YAML)' },
    { path: 'sessions.a.headers.X-CRLF', message: 'a header value must not contain CR, LF or NUL' },
    { path: 'sessions.a.headers.Authorization', message: 'duplicate header (also set as "authorization"; names are case-insensitive)' }
  ])
})

t.test('errors - bad JSON in COMETD_BRIDGE_HEADERS names the field and the variable', async (t) => {
  const [issue, ...rest] = loadErrors(t, [], { COMETD_BRIDGE_URL: url, COMETD_BRIDGE_HEADERS: '{"Authorization": Bearer}' })
  t.same(rest, [])
  t.equal(issue!.path, 'sessions.default.headers')
  t.equal(issue!.message, 'invalid JSON at line 1, column 19 (from env COMETD_BRIDGE_HEADERS)', 'where, never the text')
  t.match(loadErrors(t, [], { COMETD_BRIDGE_URL: url, COMETD_BRIDGE_HEADERS: '["a"]' }), [{ path: 'sessions.default.headers', message: /must be a JSON object/ }])
})

t.test('errors - bad session names', async (t) => {
  t.same(errorsOf({ sessions: { 'has space': { url }, ['x'.repeat(65)]: { url } } }).map((e) => e.message), [
    'a session name must match /^[A-Za-z0-9_-]{1,64}$/', 'a session name must match /^[A-Za-z0-9_-]{1,64}$/'
  ])
  t.same(errorsOf(JSON.parse('{"sessions": {"__proto__": {"url": "http://h/cometd"}}}')), [{ path: 'sessions.__proto__', message: '"__proto__" is not allowed as a key' }])
  t.same(errorsOf(JSON.parse('{"sessions": {"a": {"url": "http://h/cometd", "headers": {"__proto__": "x"}}}}')), [{ path: 'sessions.a.headers.__proto__', message: '"__proto__" is not allowed as a key' }])
})

t.test('errors - unreadable or unparsable file names the option that named it', async (t) => {
  const dir = t.testdir({ 'bad.yaml': 'a: [1,\n', 'bad.json': '{"a": }', 'list.yaml': '- 1\n', 'dup.yaml': 'a: 1\na: 2\n', sub: {} })
  t.match(loadErrors(t, ['--config', 'missing.yaml'], {}, dir), [{ path: '--config', message: /cannot read config file .*missing\.yaml: ENOENT/ }])
  t.match(loadErrors(t, [], { COMETD_BRIDGE_CONFIG: 'missing.yaml' }, dir), [{ path: 'COMETD_BRIDGE_CONFIG', message: /ENOENT/ }])
  t.match(loadErrors(t, ['--config', 'sub'], {}, dir), [{ path: '--config', message: /EISDIR/ }])
  t.match(loadErrors(t, ['--config', 'bad.yaml'], {}, dir), [{ path: '--config', message: /^invalid YAML in .*bad\.yaml: .*line 2, column 1$/ }])
  t.match(loadErrors(t, ['--config', 'bad.json'], {}, dir), [{ path: '--config', message: /^invalid JSON in .*bad\.json: at line 1, column 7$/ }])
  t.match(loadErrors(t, ['--config', 'list.yaml'], {}, dir), [{ path: '--config', message: /must contain a mapping .* not a list/ }])
  t.match(loadErrors(t, ['--config', 'dup.yaml'], {}, dir), [{ path: '--config', message: /Map keys must be unique/ }])
  // a broken file is reported with the other sources' problems, but the half config is not validated
  t.same(loadErrors(t, ['--config', 'missing.yaml', '--bogus'], { COMETD_BRIDGE_CONNECTION_TYPES: 'x' }, dir).map((e) => e.path), ['--bogus', '--config'])
})

t.test('errors - flags: unknown, missing value, stray arguments', async (t) => {
  t.same(loadErrors(t, ['--prot', '80']), [
    { path: '--prot', message: 'unknown flag (did you mean --port?)' },
    { path: 'argv', message: 'unexpected argument "80" (see --help)' }
  ])
  t.same(loadErrors(t, ['--verbose']), [{ path: '--verbose', message: 'unknown flag (see --help)' }])
  t.same(loadErrors(t, ['-x']), [{ path: '-x', message: 'unknown flag (see --help)' }])
  t.same(loadErrors(t, ['--port']), [{ path: '--port', message: 'requires a value (--port VALUE or --port=VALUE)' }])
  t.same(loadErrors(t, ['--url', '--demo']), [{ path: '--url', message: 'requires a value (--url VALUE or --url=VALUE)' }])
  t.same(loadErrors(t, ['--check-config=yes']), [{ path: '--check-config', message: 'takes no value' }])
  t.same(loadErrors(t, ['--help', '--nope']).map((e) => e.path), ['--nope'], '--help does not hide a bad flag')
})

t.test('errors - a misspelt COMETD_BRIDGE_ variable is an error', async (t) => {
  t.same(loadErrors(t, [], { COMETD_BRIDGE_PROT: '80' }), [{ path: 'COMETD_BRIDGE_PROT', message: 'unknown environment variable (did you mean COMETD_BRIDGE_PORT?)' }])
  t.same(loadErrors(t, [], { COMETD_BRIDGE_LOGLEVEL: 'x' }), [{ path: 'COMETD_BRIDGE_LOGLEVEL', message: 'unknown environment variable (did you mean COMETD_BRIDGE_LOG_LEVEL?)' }])
})

t.test('errors - every problem is reported at once, in one line each', async (t) => {
  const dir = t.testdir({
    'c.yaml': [
      'listen: { port: 65536, hots: x }',
      'logLevel: loud',
      'sessions:',
      '  sf:',
      '    url: "ftp://x"',
      '    connectionTypes: [smoke-signals]',
      '    subscribe: [chat]',
      '    headers: { Authorization: "Bearer ${SF_TOKEN}" }',
      '  "bad name": { url: "http://x/cometd" }',
      ''
    ].join('\n')
  })
  const r = loadConfig({ argv: ['--config', 'c.yaml', '--log-level', 'loud', '--nope'], env: { COMETD_BRIDGE_SSE_MAX_CALLERS: '0' }, cwd: dir })
  t.notOk(r.ok)
  if (r.ok) return
  t.same(r.errors.map((e) => e.path).sort(), [
    '--nope',
    'listen.hots',
    'listen.port',
    'logLevel',
    'sessions.sf.connectionTypes[0]',
    'sessions.sf.headers.Authorization',
    'sessions.sf.subscribe[0]',
    'sessions.sf.url',
    'sessions["bad name"]',
    'sse.maxCallers'
  ])
  t.match(r.errors.find((e) => e.path === 'logLevel'), { message: /\(from --log-level\)$/ })
  t.match(r.errors.find((e) => e.path === 'sse.maxCallers'), { message: /\(from env COMETD_BRIDGE_SSE_MAX_CALLERS\)$/ })
  const lines = r.text.trimEnd().split('\n')
  t.equal(lines[0], 'cometd-bridge: invalid configuration (10 problems):')
  t.equal(lines.length, 11)
  t.notMatch(r.text, /SF_TOKEN is set|s3cr3t/, 'no value is echoed')
})

t.test('errors - messages never echo a value', async (t) => {
  const secret = 'Bearer sk-live-SECRET'
  const issues = errorsOf({ sessions: { a: { url: `http://user:${secret}@/`, headers: { 'X-Token': 5, 'Bad Name': secret } } } })
  t.notMatch(formatIssues(issues), /SECRET/)
})
