import t from 'tap'
import { loadConfig, parseConfigObject, substituteVars } from '../../config/index.js'

t.test('vars - ${VAR} in any string of the file is replaced from the environment', async (t) => {
  const dir = t.testdir({
    'c.yaml': [
      'listen: { host: "${HOST}", port: "${PORT}" }',
      'auth: { allowUnauthenticated: true }',
      'sessions:',
      '  sf:',
      '    url: https://${SF_HOST}/cometd/58.0',
      '    headers: { Authorization: "Bearer ${SF_TOKEN}" }',
      '    subscribe: ["/topic/${TOPIC}"]',
      ''
    ].join('\n')
  })
  const env = { HOST: '0.0.0.0', PORT: '9100', SF_HOST: 'acme.my.salesforce.com', SF_TOKEN: 's3cr3t', TOPIC: 'Orders' }
  const r = loadConfig({ argv: ['--config', `${dir}/c.yaml`], env })
  t.ok(r.ok, r.ok ? '' : r.text)
  if (!r.ok) return
  t.same(r.config.listen, { host: '0.0.0.0', port: 9100 }, 'a substituted number is read as a number')
  t.equal(r.config.sessions.sf!.url, 'https://acme.my.salesforce.com/cometd/58.0')
  t.equal(r.config.sessions.sf!.headers.Authorization, 'Bearer s3cr3t')
  t.same(r.config.sessions.sf!.subscribe, ['/topic/Orders'])
})

t.test('vars - a missing variable is an error naming the field path and the variable', async (t) => {
  const r = parseConfigObject({ sessions: { sf: { url: 'http://h/cometd', headers: { Authorization: 'Bearer ${SF_TOKEN}' } } } }, {})
  t.notOk(r.ok)
  if (r.ok) return
  t.same(r.errors, [{
    path: 'sessions.sf.headers.Authorization',
    message: 'environment variable SF_TOKEN is not set (referenced as ${SF_TOKEN})'
  }])
})

t.test('vars - every missing variable is reported, and the field is not reported twice', async (t) => {
  const r = parseConfigObject({ sessions: { a: { url: 'http://${A_HOST}/cometd', subscribe: ['/x', '/${B}'] } } }, {})
  t.notOk(r.ok)
  if (r.ok) return
  t.same(r.errors.map((e) => e.path), ['sessions.a.url', 'sessions.a.subscribe[1]'])
  t.match(r.errors[0]!.message, /A_HOST/)
  t.match(r.errors[1]!.message, /\bB\b/)
})

t.test('vars - $${ escapes, lone $ is kept, set-but-empty substitutes ""', async (t) => {
  const { value, issues } = substituteVars({ a: 'cost $5, literal $${HOME}, $$x, ${EMPTY}end', b: ['${X}${X}'] }, { EMPTY: '', X: 'x' })
  t.same(issues, [])
  t.same(value, { a: 'cost $5, literal ${HOME}, $$x, end', b: ['xx'] })
})

t.test('vars - bad references are errors naming the field', async (t) => {
  const { issues } = substituteVars({ a: { b: 'x ${1BAD} y', c: 'open ${NEVER_CLOSED' } }, {})
  t.match(issues, [
    { path: 'a.b', message: /invalid variable reference "\$\{1BAD\}"/ },
    { path: 'a.c', message: /unterminated "\$\{"/ }
  ])
})

t.test('vars - keys, env values and flag values are never substituted', async (t) => {
  const r = loadConfig({
    argv: ['--url', 'http://flag/${NOT_A_VAR}'],
    env: { COMETD_BRIDGE_HEADERS: '{"X-Literal":"${NOT_A_VAR}"}' }
  })
  t.ok(r.ok, r.ok ? '' : r.text)
  if (!r.ok) return
  t.equal(r.config.sessions.default!.headers['X-Literal'], '${NOT_A_VAR}')
  t.equal(r.config.sessions.default!.url, 'http://flag/${NOT_A_VAR}', 'the URL is kept as written')
  const { value } = substituteVars({ '${K}': 1 }, { K: 'k' })
  t.same(value, { '${K}': 1 })
})

t.test('vars - a schema error on a substituted value names the variable', async (t) => {
  const r = parseConfigObject({ listen: { port: '${PORT}' } }, { PORT: 'http' })
  t.notOk(r.ok)
  if (r.ok) return
  t.same(r.errors, [{ path: 'listen.port', message: 'must be an integer between 0 and 65535 (from ${PORT})' }])
})

t.test('vars - a YAML alias cycle is an error, not a crash', async (t) => {
  const dir = t.testdir({ 'c.yaml': 'sessions: &s\n  a: *s\n' })
  const r = loadConfig({ argv: ['--config', `${dir}/c.yaml`], env: {} })
  t.notOk(r.ok)
  if (r.ok) return
  t.match(r.errors, [{ path: 'sessions.a', message: /circular reference/ }])
})
