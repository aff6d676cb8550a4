import t from 'tap'
import { parseConfigObject, redactConfig, redactUrl, type Config } from '../../config/index.js'

function parse (obj: unknown): Config {
  const r = parseConfigObject(obj, {})
  if (!r.ok) throw new Error(JSON.stringify(r.errors))
  return r.config
}

t.test('redact - secret headers (case-insensitive) and secret-named keys', async (t) => {
  const config = parse({
    sessions: {
      sf: {
        url: 'https://h/cometd',
        headers: {
          Authorization: 'Bearer abc',
          'proxy-authorization': 'Basic xyz',
          COOKIE: 'sid=1',
          'X-Api-Token': 't',
          'X-Client-Secret': 's',
          'X-Api-Key': 'k',
          'X-Tenant': 'acme',
          Accept: 'application/json'
        }
      },
      // a session whose name looks like a secret is not a secret
      'token-service': { url: 'http://t/cometd' }
    }
  })
  const redacted = redactConfig(config) as Config
  t.same(redacted.sessions.sf!.headers, {
    Authorization: '[redacted]',
    'proxy-authorization': '[redacted]',
    COOKIE: '[redacted]',
    'X-Api-Token': '[redacted]',
    'X-Client-Secret': '[redacted]',
    'X-Api-Key': '[redacted]',
    'X-Tenant': 'acme',
    Accept: 'application/json'
  })
  t.equal(redacted.sessions['token-service']!.url, 'http://t/cometd')
  t.equal(config.sessions.sf!.headers.Authorization, 'Bearer abc', 'the config itself is untouched')
  t.notMatch(JSON.stringify(redacted), /Bearer abc|xyz|sid=1/)
})

t.test('redact - URL passwords and secret query parameters', async (t) => {
  t.equal(redactUrl('https://user:pw@h:8443/cometd?access_token=abc&x=1#f'), 'https://user:[redacted]@h:8443/cometd?access_token=[redacted]&x=1#f')
  t.equal(redactUrl('http://h/cometd?password=p'), 'http://h/cometd?password=[redacted]')
  t.equal(redactUrl('http://user@h/cometd'), 'http://user@h/cometd')
  t.equal(redactUrl('http://h/cometd?x=1'), 'http://h/cometd?x=1')
  const config = parse({ sessions: { a: { url: 'http://u:secret@h/cometd' } } })
  t.equal((redactConfig(config) as Config).sessions.a!.url, 'http://u:[redacted]@h/cometd')
})

t.test('redact - everything else is printed as is', async (t) => {
  const config = parse({ listen: { port: 1 }, sessions: { a: { url: 'http://h/cometd', subscribe: ['/a/**'] } } })
  t.same(redactConfig(config), config)
})
