/**
 * Secrets are never shown. A table of secret-bearing inputs — a caller token in the query in every spelling the
 * server accepts, upstream URLs and token endpoints with credentials or query secrets, secret headers, token
 * sources, secret JSON values with syntax errors — and for each secret every place it could show: the daemon's log
 * lines (at trace level), every HTTP answer (body and headers), and the output of --print-config / --check-config.
 */
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import t from 'tap'
import type { Test } from 'tap'
import { loadConfig } from '../../config/index.js'
import { defaultConfig } from '../../config/index.js'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { localSession, makeConfig, startBridge, waitConnected } from './fixtures/bridge.js'
import { statusOf, tokenEntry } from './fixtures/callers.js'
import type { StatusResult } from './fixtures/callers.js'

const AUTH_DEFAULTS = defaultConfig().auth

t.setTimeout(60_000)

/** Every secret of this file starts with this, so one search finds any of them. */
const MARK = 'S3CRET'

function shown (answers: StatusResult[]): string {
  return answers.map((a) => `${a.status} ${JSON.stringify(a.headers)} ${a.body}`).join('\n')
}

function assertHidden (t: Test, where: string, text: string, secrets: readonly string[]): void {
  const found = secrets.filter((s) => text.includes(s))
  t.same(found, [], `${where}: no secret shown`)
}

async function closedPort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  await new Promise<void>((resolve) => server.close(() => { resolve() }))
  return port
}

t.test('secrets - a caller token in the query, every spelling: accepted as one rule says, never logged or echoed', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const TOKEN = `${MARK}-caller-token-0123456789`
  const WRONG = `${MARK}-wrong-token-0123456789`
  const config = makeConfig({ a: { url: faye.url } })
  config.auth = { ...AUTH_DEFAULTS, allowQueryToken: true, tokens: [tokenEntry({ name: 'reader', token: TOKEN, sessions: ['a'], subscribe: ['/**'] })] }
  const { app, base, logs } = await startBridge(t, config, { logLevel: 'trace' })
  await waitConnected(app)
  const spellings = ['access_token', 'access_tok%65n', '%61ccess_token', 'access%5ftoken', 'access%5Ftoken']
  // [request target (after base), expected status]; {P} is the spelling, {T} the secret
  const table: Array<[string, number, string]> = [
    ['/sessions/a/events?channel=/chat/x&{P}={T}', 200, TOKEN],
    ['/sessions/a/events?channel=/chat/x&{P}={T}', 401, WRONG],
    ['/sessions/a/events?{P}={T}&{P}={T}', 401, TOKEN],
    ['/sessions?{P}={T}', 401, TOKEN],
    ['/sessions/a?{P}={T}', 401, TOKEN],
    ['/nope?{P}={T}', 401, TOKEN],
    ['/sessions/%zz?{P}={T}', 400, TOKEN],
    ['/sessions/a/events?channel=/chat/x&{P}={T}#frag', 200, TOKEN]
  ]
  const answers: StatusResult[] = []
  for (const spelling of spellings) {
    for (const [target, status, secret] of table) {
      const path = target.replaceAll('{P}', spelling).replaceAll('{T}', secret)
      const r = await statusOf(base + path)
      answers.push(r)
      t.equal(r.status, status, `${path.replace(secret, '…')} → ${status}`)
    }
    const ndjson = await statusOf(`${base}/sessions/a/events?channel=/chat/x&${spelling}=${TOKEN}`, { headers: { Accept: 'application/x-ndjson' } })
    t.equal(ndjson.status, 401, `${spelling}: not on NDJSON streams`)
    answers.push(ndjson)
  }
  const logged = logs.text()
  assertHidden(t, 'HTTP answers', shown(answers), [TOKEN, WRONG])
  assertHidden(t, 'log lines', logged, [TOKEN, WRONG])
  t.ok(logs.lines.some((l) => String((l.req as { url?: string } | undefined)?.url ?? '').includes('access_tok%65n=[redacted]')), 'the encoded name is logged as written, its value redacted')
  t.comment(`${answers.length} answers and ${logs.lines.length} log lines checked`)
})

t.test('secrets - upstream URLs, headers and token sources: not in GET /sessions, /metrics, the logs or --print-config', async (t) => {
  const dead = await closedPort()
  const S = {
    urlPassword: `${MARK}-url-password`,
    urlQuery: `${MARK}-url-query`,
    authorization: `${MARK}-authorization-header`,
    apiKey: `${MARK}-api-key-header`,
    tokenUrlQuery: `${MARK}-token-url-query`,
    clientSecret: `${MARK}-client-secret`,
    refreshToken: `${MARK}-refresh-token`,
    fileToken: `${MARK}-file-token`
  }
  // a token endpoint that refuses, quoting what it was sent (a careless one)
  const endpoint = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => {
      res.writeHead(400, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ error: 'invalid_grant', error_description: `refused ${new URLSearchParams(body).get('refresh_token') ?? ''} at ${req.url ?? ''}` }))
    })
  })
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { endpoint.closeAllConnections(); endpoint.close(() => { resolve() }) }))
  const tokenUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/services/oauth2/token?client_secret=${S.tokenUrlQuery}`
  const dir = t.testdir({ token: S.fileToken + '\n' })
  const sessions = {
    creds: {
      url: `http://user:${S.urlPassword}@127.0.0.1:${dead}/cometd?token=${S.urlQuery}`,
      connectionTypes: ['long-polling'],
      headers: { Authorization: `Bearer ${S.authorization}`, 'X-Api-Key': S.apiKey, 'X-Trace': 'visible' }
    },
    oauth: { url: `http://127.0.0.1:${dead}/cometd`, connectionTypes: ['long-polling'], auth: { tokenUrl, clientId: 'cid', clientSecret: S.clientSecret, refreshToken: S.refreshToken } },
    file: { url: `http://127.0.0.1:${dead}/cometd`, connectionTypes: ['long-polling'], auth: { tokenFile: join(dir, 'token') } }
  }
  const secrets = Object.values(S)

  // the configuration tools
  const file = join(dir, 'bridge.json')
  writeFileSync(file, JSON.stringify({ sessions }))
  for (const flag of ['--print-config', '--check-config']) {
    const r = loadConfig({ argv: ['--config', file, flag], env: {} })
    t.ok(r.ok, `${flag}: valid`)
    assertHidden(t, flag, r.ok ? r.text ?? '' : JSON.stringify(r.errors), secrets)
  }
  const printed = loadConfig({ argv: ['--config', file, '--print-config'], env: {} })
  t.match(printed.ok ? printed.text : '', /"X-Trace": "visible"/, 'what is not secret is shown')

  // the daemon, whose three sessions fail (nothing listens; the token endpoint refuses)
  const parsed = loadConfig({ argv: ['--config', file], env: {} })
  if (!parsed.ok) throw new Error('config')
  const config = makeConfig(parsed.config.sessions as never)
  const { app, base, logs } = await startBridge(t, config, { logLevel: 'trace' })
  await waitFor(() => [...app.bridge.sessions.values()].every((s) => s.lastError !== null) && localSession(app, 'oauth').reliable.tokens!.stats.failures >= 1, { timeoutMs: 15_000 })
  const answers = [
    await statusOf(`${base}/sessions`),
    await statusOf(`${base}/sessions/creds`),
    await statusOf(`${base}/sessions/oauth`),
    await statusOf(`${base}/sessions/file`),
    await statusOf(`${base}/metrics`),
    await statusOf(`${base}/sessions/creds/publish/a`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '1' })
  ]
  const views = JSON.parse(answers[0]!.body) as { sessions: Array<{ name: string, url: string, lastError: { message: string } | null, auth: { from: string, lastError: string | null } | null }> }
  const byName = new Map(views.sessions.map((s) => [s.name, s]))
  t.equal(byName.get('creds')!.url, `http://[redacted]@127.0.0.1:${dead}/cometd?token=[redacted]`)
  t.match(byName.get('oauth')!.auth, { from: /\/services\/oauth2\/token\?client_secret=\[redacted\]$/, lastError: /HTTP 400 \(invalid_grant: refused \[redacted\]/ })
  assertHidden(t, 'HTTP answers', shown(answers), secrets)
  assertHidden(t, 'log lines', logs.text(), secrets)
  t.ok(logs.lines.some((l) => l.level === 40), 'warnings were logged (and checked)')
  t.comment(`${answers.length} answers and ${logs.lines.length} log lines checked`)
})

t.test('secrets - config errors on secret values say where, never what', async (t) => {
  const secret = (n: number): string => `${MARK}-${n}-value`
  const files: Record<string, string> = {
    'unquoted.json': `{"auth": {"tokens": [{"token": ${secret(1)}}]}}`,
    'missing-comma.json': `{"sessions": {"a": {"url": "http://h/c", "headers": {"Authorization": "Bearer ${secret(2)}" "X": "y"}}}}`,
    'unterminated.json': `{"sessions": {"a": {"url": "http://h/c", "headers": {"Authorization": "Bearer ${secret(3)}`,
    'control.json': `{"auth": {"tokens": [{"token": "${secret(4)}\u0001"}]}}`,
    'unterminated.yaml': `auth:\n  tokens:\n    - token: "${secret(5)}\n`,
    'nested.yaml': `auth:\n  tokens:\n    - token: ${secret(6)}: x\n`,
    'short-token.yaml': 'auth:\n  tokens:\n    - token: S3CRET-7\n',
    'bad-token-chars.yaml': `auth:\n  tokens:\n    - token: "${secret(8)} with spaces"\n`,
    'token-url-creds.yaml': `sessions:\n  a:\n    url: http://h/c\n    auth:\n      tokenUrl: https://u:${secret(9)}@login.example/token\n      clientId: c\n      refreshToken: ${secret(10)}\n`,
    'bad-header.yaml': `sessions:\n  a:\n    url: http://h/c\n    headers:\n      Authorization: "Bearer ${secret(11)}\\r\\nX: y"\n`
  }
  const dir = t.testdir(files)
  const cases: Array<{ what: string, argv: string[], env: Record<string, string> }> = Object.keys(files).map((name) => ({ what: name, argv: ['--config', join(dir, name), '--print-config'], env: {} }))
  cases.push({ what: 'env COMETD_BRIDGE_HEADERS, unterminated', argv: ['--print-config'], env: { COMETD_BRIDGE_URL: 'http://h/c', COMETD_BRIDGE_HEADERS: `{"Authorization": "Bearer ${secret(12)}` } })
  cases.push({ what: 'env COMETD_BRIDGE_HEADERS, unquoted', argv: ['--print-config'], env: { COMETD_BRIDGE_URL: 'http://h/c', COMETD_BRIDGE_HEADERS: `{"Authorization": ${secret(13)}}` } })
  cases.push({ what: 'env COMETD_BRIDGE_TOKEN too short', argv: ['--print-config'], env: { COMETD_BRIDGE_TOKEN: 'S3CRET-14' } })
  const lines: string[] = []
  for (const c of cases) {
    const r = loadConfig({ argv: c.argv, env: c.env })
    t.notOk(r.ok, `${c.what}: refused`)
    const text = r.ok ? '' : `${r.text}${JSON.stringify(r.errors)}`
    t.notMatch(text, MARK, `${c.what}: the value is not in the error`)
    lines.push(`${c.what.padEnd(42)} ${r.ok ? '' : r.errors.map((e) => `${e.path}: ${e.message}`).join(' | ')}`)
  }
  t.comment('config errors:\n' + lines.join('\n'))
})
