/**
 * Upstream Bearer tokens (server/upstream/token.ts): the token sources (file read again at every refresh, command with a
 * deadline, OAuth2 refresh-token flow against a local token endpoint), and through the bridge against the
 * Salesforce-like fixture: a token revoked mid-session is refreshed from the file (or command), the session is
 * re-handshaken and resubscribed, nothing published meanwhile is lost (replay), the refresh is reported with
 * `event: upstream` and GET /sessions/:name, and no token ever reaches the logs.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { writeFileSync } from 'node:fs'
import t from 'tap'
import type { Test } from 'tap'
import { TokenProvider } from '../../../server/upstream/token.js'
import { startSalesforceLike } from '../../helpers/salesforce.js'
import { delay, waitFor } from '../../helpers/wait.js'
import { openSse, request, startBridge, waitConnected } from '../fixtures/bridge.js'
import { CHANNEL, range, sfConfig, sfMessages, tempDir, tokenFile, writeToken } from './fixtures.js'
import { upstreamAuthSchema } from '../../../config/index.js'
import type { SessionConfigInput, UpstreamAuthConfig } from '../../../config/index.js'

/** The token settings as the config gives them to the server (defaults filled in). */
function upstreamAuth (input: NonNullable<SessionConfigInput['auth']>): UpstreamAuthConfig {
  return upstreamAuthSchema.parse(input)
}

t.setTimeout(120_000)

const quiet = { info () {}, warn () {} }

async function rejection (p: Promise<unknown>): Promise<string> {
  try {
    await p
  } catch (err) {
    return (err as Error).message
  }
  throw new Error('expected a rejection')
}

t.test('token sources: the file is read again at every refresh', async (t) => {
  const dir = tempDir(t)
  const file = tokenFile(dir, 'first-token')
  const p = new TokenProvider(upstreamAuth({ tokenFile: file }), quiet)
  t.equal(await p.current(), 'first-token')
  writeToken(file, 'second-token')
  t.equal(await p.current(), 'first-token', 'the current token is kept until a refresh')
  t.equal(await p.refresh(), 'second-token', 'a refresh reads the file again (rotated secrets)')
  t.equal(await p.current(), 'second-token')
  writeFileSync(file, '\n')
  await delay(1_100) // refreshes within 1 s share one fetch (several clients failing at once)
  await t.rejects(p.refresh(), /token file .* gave an empty token/)
  const missing = new TokenProvider(upstreamAuth({ tokenFile: join(dir, 'nope') }), quiet)
  await t.rejects(missing.current(), /cannot read token file .*nope: ENOENT/)
  t.match(missing.view(), { source: 'tokenFile', failures: 1, lastError: /ENOENT/ })
})

t.test('token sources: a command with a deadline; its stdout is the token', async (t) => {
  const dir = tempDir(t)
  const file = tokenFile(dir, 'cmd-token')
  t.equal(await new TokenProvider(upstreamAuth({ tokenCommand: `cat ${file}` }), quiet).current(), 'cmd-token')
  const started = Date.now()
  // the shell and its child (sleep) are killed at the deadline: the whole process group
  await t.rejects(new TokenProvider(upstreamAuth({ tokenCommand: 'sleep 30; echo late', timeoutMs: 300 }), quiet).current(), /did not finish within 300 ms/)
  const elapsed = Date.now() - started
  t.comment(`a hanging token command is killed after ${elapsed} ms (deadline 300 ms)`)
  t.ok(elapsed < 5_000, 'not waiting for the command')
  const failed = await rejection(new TokenProvider(upstreamAuth({ tokenCommand: 'echo secret-token-on-stdout; echo "no such org" >&2; exit 3' }), quiet).current())
  t.match(failed, /failed \(exit 3\): no such org/, 'exit code and the last stderr line')
  t.notMatch(failed, /secret-token-on-stdout/, 'never stdout')
  await t.rejects(new TokenProvider(upstreamAuth({ tokenCommand: 'printf "a\\nb\\n"' }), quiet).current(), /more than one line/)
})

async function tokenEndpoint (t: Test, answer: (form: URLSearchParams) => { status: number, body: unknown }): Promise<{ url: string, requests: URLSearchParams[] }> {
  const requests: URLSearchParams[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => {
      const form = new URLSearchParams(body)
      requests.push(form)
      const a = answer(form)
      res.writeHead(a.status, { 'content-type': 'application/json' })
      res.end(JSON.stringify(a.body))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => { resolve() }) }))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/services/oauth2/token`, requests }
}

t.test('token sources: the OAuth2 refresh-token flow', async (t) => {
  let n = 0
  const ep = await tokenEndpoint(t, (form) => form.get('refresh_token') === 'refresh-me'
    ? { status: 200, body: { access_token: `access-${++n}`, instance_url: 'https://x.my.salesforce.com', token_type: 'Bearer' } }
    : { status: 400, body: { error: 'invalid_grant', error_description: 'expired access/refresh token' } })
  const p = new TokenProvider(upstreamAuth({ tokenUrl: ep.url, clientId: 'cid', clientSecret: 'csecret', refreshToken: 'refresh-me' }), quiet)
  t.equal(await p.current(), 'access-1')
  t.equal(await p.refresh(), 'access-2')
  t.same(Object.fromEntries(ep.requests[0]!), { grant_type: 'refresh_token', refresh_token: 'refresh-me', client_id: 'cid', client_secret: 'csecret' })
  const bad = new TokenProvider(upstreamAuth({ tokenUrl: ep.url, clientId: 'cid', refreshToken: 'revoked' }), quiet)
  const refused = await rejection(bad.current())
  t.match(refused, /HTTP 400 \(invalid_grant: expired access\/refresh token\)/)
  t.notMatch(refused, /revoked/, 'the refresh token is not in the message')
  t.match(p.view(), { source: 'oauth', from: ep.url, refreshes: 1 })
})

for (const kind of ['tokenFile', 'tokenCommand'] as const) {
  t.test(`token revoked mid-session (${kind}): refreshed, re-handshaken, resubscribed, nothing lost`, async (t) => {
    let valid = 'token-one-aaaaaaaa'
    const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 1000 }, tokens: (tok) => tok === valid })
    t.teardown(sf.close)
    const dir = tempDir(t)
    const file = tokenFile(dir, valid)
    const auth = kind === 'tokenFile' ? { tokenFile: file } : { tokenCommand: `cat '${file}'` }
    const { app, base, logs } = await startBridge(t, sfConfig(sf.url, dir, { auth, subscribe: [CHANNEL] }))
    await waitConnected(app)
    await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 10_000 })
    const sse = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
    let n = 0
    const timer = setInterval(() => { sf.publish(CHANNEL, { n: ++n }) }, 25)
    t.teardown(() => { clearInterval(timer) })
    await sse.waitEvent((e) => e.event === 'message', { count: 20 })
    // the secret rotates, then the old token is revoked: the held connect fails with 401::Authentication invalid
    valid = 'token-two-bbbbbbbb'
    writeToken(file, valid)
    const revokedAt = Date.now()
    sf.revoke('token-one-aaaaaaaa')
    const refreshed = await sse.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'token-refreshed', { timeoutMs: 15_000 })
    t.comment(`${kind}: token refreshed ${Date.now() - revokedAt} ms after the revocation`)
    t.match(JSON.parse(refreshed.data), { session: 'sf', status: 'token-refreshed', refreshes: 1, source: kind })
    await waitFor(() => app.bridge.sessions.get('sf')!.state === 'connected' && app.bridge.sessions.get('sf')!.readiness().ready, { timeoutMs: 15_000 })
    await delay(500)
    clearInterval(timer)
    const total = n
    await waitFor(() => sfMessages(sse).some((m) => m.n === total), { timeoutMs: 15_000, message: () => `n=${total}; got up to ${sfMessages(sse).at(-1)?.n}` })
    t.same(sfMessages(sse).map((m) => m.n), range(1, total), `all ${total} events once, in order`)
    const view = (await request(`${base}/sessions/sf`)).json
    t.match(view.auth, { source: kind, refreshes: 1, failures: 0 })
    t.ok(sf.counters.authFailures >= 1, `the upstream refused the old token ${sf.counters.authFailures} time(s)`)
    t.equal(view.counters.rehandshakes, 1, 'one re-handshake with the new token')
    const text = logs.text()
    t.notMatch(text, /token-one|token-two/, 'no token in the logs')
    t.notMatch(JSON.stringify(view), /token-one|token-two/, 'no token in GET /sessions/:name')
  })
}

t.test('no token yet: reported, retried with backoff, connected once the secret appears', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, tokens: ['late-token-cccccc'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const file = join(dir, 'mounted-later')
  const { app, base } = await startBridge(t, sfConfig(sf.url, dir, { auth: { tokenFile: file }, subscribe: [CHANNEL] }))
  await waitFor(async () => (await request(`${base}/sessions/sf`)).json.auth.failures >= 2, { timeoutMs: 10_000 })
  const view = (await request(`${base}/sessions/sf`)).json
  t.match(view.auth.lastError, /cannot read token file .*mounted-later: ENOENT/)
  t.equal(view.state, 'disconnected')
  t.equal(sf.counters.handshakes.attempts, 0, 'nothing sent upstream without a token')
  writeToken(file, 'late-token-cccccc')
  await waitConnected(app, 15_000)
  t.pass('connected once the file exists')
})

t.test('OAuth2 refresh-token flow through the bridge', async (t) => {
  let issued = 0
  const ep = await tokenEndpoint(t, () => ({ status: 200, body: { access_token: `oauth-access-${++issued}` } }))
  const sf = await startSalesforceLike({ timeoutMs: 1500, tokens: (tok) => tok === `oauth-access-${issued}` })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const { app, base, logs } = await startBridge(t, sfConfig(sf.url, dir, {
    auth: { tokenUrl: ep.url, clientId: 'cid', clientSecret: 'csecret-123', refreshToken: 'refresh-456' },
    subscribe: [CHANNEL]
  }))
  await waitConnected(app)
  const sse = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 10_000 })
  sf.publish(CHANNEL, { n: 1 })
  sf.revoke('oauth-access-1') // the next token endpoint answer is valid
  await sse.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'token-refreshed', { timeoutMs: 15_000 })
  sf.publish(CHANNEL, { n: 2 })
  await sse.waitEvent((e) => e.event === 'message', { count: 2, timeoutMs: 15_000 })
  t.same(sfMessages(sse).map((m) => m.n), [1, 2])
  t.equal(ep.requests.length, 2, 'one token request at start, one after the revocation')
  t.notMatch(logs.text(), /oauth-access|csecret-123|refresh-456/, 'no secret in the logs')
})
