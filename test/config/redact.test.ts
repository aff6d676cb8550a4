/** The one redaction (config/redact.ts) and the JSON error place (config/json-error.ts), as pure units. */
import fc from 'fast-check'
import t from 'tap'
import { parseConfigObject, redactConfig, redactUrl, type Config } from '../../config/index.js'
import { isTokenParam, queryTokens, redactRequestUrl, redactText, redactValue } from '../../config/redact.js'
import { jsonErrorOffset, jsonErrorPlace } from '../../config/json-error.js'

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

t.test('redact - URLs: user info, every query value and the fragment', async (t) => {
  t.equal(redactUrl('https://user:pw@h:8443/cometd?access_token=abc&x=1#f'), 'https://[redacted]@h:8443/cometd?access_token=[redacted]&x=[redacted]#[redacted]')
  t.equal(redactUrl('http://h/cometd?password=p'), 'http://h/cometd?password=[redacted]')
  t.equal(redactUrl('http://ghp_secret@h/cometd'), 'http://[redacted]@h/cometd', 'a token as the user name')
  t.equal(redactUrl('http://h/cometd'), 'http://h/cometd')
  t.equal(redactUrl('not a url'), '(invalid URL)')
  const config = parse({ sessions: { a: { url: 'http://u:secret@h/cometd', auth: { tokenUrl: 'https://login.example/token?client_secret=s3', clientId: 'c', refreshToken: 'r' } } } })
  const shown = redactConfig(config) as Config
  t.equal(shown.sessions.a!.url, 'http://[redacted]@h/cometd')
  t.equal(shown.sessions.a!.auth!.tokenUrl, 'https://login.example/token?client_secret=[redacted]', 'tokenUrl is shown, through the URL rule')
  t.equal(shown.sessions.a!.auth!.refreshToken, '[redacted]')
  t.equal(redactText('fetch https://a:b@h/x?k=v failed; see http://h/ok'), 'fetch https://[redacted]@h/x?k=[redacted] failed; see http://h/ok')
})

t.test('redact - log objects: secret keys at any depth, ext.auth whole, URLs in strings', async (t) => {
  const shown = redactValue({
    msg: { ext: { auth: { token: 'x1' }, other: 1 }, data: 'ok' },
    headers: { authorization: 'Bearer x2', accept: 'a' },
    nested: { accessToken: 'x3', password: 'x4', limits: { maxTokens: 5 } },
    error: 'GET http://u:x5@h/ failed'
  })
  t.same(shown, {
    msg: { ext: { auth: '[redacted]', other: 1 }, data: 'ok' },
    headers: { authorization: '[redacted]', accept: 'a' },
    nested: { accessToken: '[redacted]', password: '[redacted]', limits: { maxTokens: 5 } },
    error: 'GET http://[redacted]@h/ failed'
  })
})

t.test('redact - the caller token parameter: one rule for auth and for the logs', async (t) => {
  for (const name of ['access_token', 'access_tok%65n', '%61ccess_token', 'access%5Ftoken', 'ACCESS_TOKEN'.toLowerCase()]) {
    t.ok(isTokenParam(name), `${name} is the token parameter`)
    t.same(queryTokens(`channel=/a&${name}=S3CRET`), ['S3CRET'], `auth reads ${name}`)
    t.equal(redactRequestUrl(`/s/x/events?channel=/a&${name}=S3CRET`), `/s/x/events?channel=/a&${name}=[redacted]`, `the log hides ${name}`)
  }
  t.notOk(isTokenParam('ACCESS_TOKEN'), 'names are case-sensitive for auth…')
  t.equal(redactRequestUrl('/x?ACCESS_TOKEN=a&access+token=b&access_tok%2565n=c&my-api-key=d&channel=/a'),
    '/x?ACCESS_TOKEN=[redacted]&access+token=[redacted]&access_tok%2565n=[redacted]&my-api-key=[redacted]&channel=/a',
    '…and the logs hide every secret-looking name, also once decoded again')
  t.same(queryTokens('access_token=a&access_tok%65n=b'), ['a', 'b'], 'two spellings are two tokens (refused as such)')
})

t.test('json error place: the offset of the first syntax error, never the text', async (t) => {
  t.equal(jsonErrorOffset('{"a": 1}'), -1)
  t.equal(jsonErrorOffset('{"token": SECRET}'), 10)
  t.equal(jsonErrorPlace('{\n  "a": [1,\n  2,]\n}'), 'at line 3, column 5')
  t.equal(jsonErrorPlace('{"a": "unterminated'), 'at line 1, column 7')
  t.equal(jsonErrorPlace('{"a": 1'), 'at the end (the text stops short)')
  t.equal(jsonErrorPlace('[1] x'), 'at line 1, column 5')
  // the scanner and JSON.parse agree on what is valid JSON
  const nearJson = fc.oneof(
    fc.json(),
    fc.tuple(fc.json(), fc.nat(), fc.constantFrom('', ',', '}', ']', '"', ':', 'x', '\\', '\u0001', ' ', '-', '0', 'e'))
      .map(([text, at, insert]) => text.slice(0, at % (text.length + 1)) + insert + text.slice(at % (text.length + 1)))
  )
  fc.assert(fc.property(nearJson, (text) => {
    let valid = true
    try { JSON.parse(text) } catch { valid = false }
    return (jsonErrorOffset(text) === -1) === valid
  }), { numRuns: 2_000 })
})
