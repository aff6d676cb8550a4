import { readFileSync } from 'node:fs'
import t from 'tap'
import { loadConfig, redactConfig, usage, ENV_OPTIONS, CONFIG_ENV } from '../../config/index.js'

t.test('cli - no flag means run, with no text', async (t) => {
  const r = loadConfig({ argv: [], env: {} })
  t.match(r, { ok: true, action: 'run' })
  t.notOk('text' in r && r.text !== undefined)
})

t.test('cli - --check-config validates and summarises', async (t) => {
  const r = loadConfig({ argv: ['--check-config'], env: { COMETD_BRIDGE_URL: 'http://u:pw@h/cometd' } })
  t.match(r, { ok: true, action: 'check' })
  if (!r.ok) return
  t.equal(r.text, 'configuration OK: listen 127.0.0.1:8080, 1 session (default: http://u:[redacted]@h/cometd), demo upstream off\n')
  const bad = loadConfig({ argv: ['--check-config', '--port', 'x'], env: {} })
  t.match(bad, { ok: false, errors: [{ path: 'listen.port' }] }, 'an invalid config fails (the CLI exits 78)')
})

t.test('cli - --print-config prints the effective config as JSON, secrets redacted', async (t) => {
  const env = { COMETD_BRIDGE_URL: 'http://h/cometd', COMETD_BRIDGE_HEADERS: '{"Authorization":"Bearer s3cr3t","X-A":"a"}' }
  const r = loadConfig({ argv: ['--print-config', '--port', '9'], env })
  t.match(r, { ok: true, action: 'print' })
  if (!r.ok) return
  t.ok(r.text?.endsWith('\n'))
  const printed = JSON.parse(r.text!) as Record<string, any>
  t.same(printed, redactConfig(r.config))
  t.equal(printed.listen.port, 9)
  t.same(printed.sessions.default.headers, { Authorization: '[redacted]', 'X-A': 'a' })
  t.notMatch(r.text!, /s3cr3t/)
  t.equal(r.config.sessions.default!.headers.Authorization, 'Bearer s3cr3t', 'the returned config keeps the secret')
  t.match(loadConfig({ argv: ['--print-config', '--check-config'], env: {} }), { ok: true, action: 'print' }, 'print wins over check')
})

t.test('cli - --help and -h print the usage without reading the config', async (t) => {
  for (const argv of [['--help'], ['-h'], ['--help', '--config', '/does/not/exist']]) {
    const r = loadConfig({ argv, env: { COMETD_BRIDGE_PORT: 'junk' } })
    t.match(r, { ok: true, action: 'help', text: usage() }, argv.join(' '))
  }
  const text = usage()
  for (const flag of ['--config', '--host', '--port', '--log-level', '--url', '--check-config', '--print-config', '--demo', '--no-demo', '--help', '--version']) {
    t.match(text, flag)
  }
  for (const name of [CONFIG_ENV, ...ENV_OPTIONS.map((o) => o.name)]) t.match(text, name)
})

t.test('cli - --version and -v print the package version without reading the config', async (t) => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { name: string, version: string }
  for (const argv of [['--version'], ['-v'], ['--version', '--config', '/does/not/exist']]) {
    t.match(loadConfig({ argv, env: { COMETD_BRIDGE_PORT: 'junk' } }), { ok: true, action: 'version', text: `${pkg.name} ${pkg.version}` }, argv.join(' '))
  }
  t.match(loadConfig({ argv: ['--version', '--bogus'], env: {} }), { ok: false, errors: [{ path: '--bogus' }] }, 'a bad flag is still an error')
  t.match(usage(), /-v, --version/)
})

t.test('cli - defaults to process.argv and process.env', async (t) => {
  const argv = process.argv
  t.teardown(() => { process.argv = argv })
  process.argv = [argv[0]!, 'main.js', '--check-config', '--port', '1234']
  const r = loadConfig()
  t.match(r, { ok: true, action: 'check', config: { listen: { port: 1234 } } })
})
