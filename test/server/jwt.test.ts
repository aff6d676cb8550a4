/**
 * JWT callers: real tokens signed with jose (HS256 secret, ES256 and RS256 PEM public keys, a JWKS served by a
 * local http server) against a bridge in front of a real faye. Rights from the claims (token-entry names and
 * Mercure's shape), 401 with a reason for every bad token, 503 when the key set is unreachable, the in-band end
 * of streams at expiry (SSE, NDJSON, WebSocket) or not (`onExpiry: keep`), and the config checks.
 */
import { generateKeyPairSync } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SignJWT, exportJWK, exportSPKI, generateKeyPair } from 'jose'
import type { CryptoKey, JWK, JWTPayload } from 'jose'
import t from 'tap'
import { defaultConfig, parseConfigObject, redactConfig } from '../../config/index.js'
import type { Config, JwtConfig } from '../../config/index.js'
import { closeServer, createHttpServer, listen } from '../helpers/net-util.js'
import { startFaye } from '../helpers/faye.js'
import { makeConfig, openSse, request, startBridge, waitConnected } from './fixtures/bridge.js'
import type { Teardown } from './fixtures/bridge.js'
import { openNdjson, openWs, statusOf } from './fixtures/callers.js'

const AUTH_DEFAULTS = defaultConfig().auth
const SECRET = 'jwt-secret-0123456789abcdef0123456789abcdef'
const RIGHTS = { sessions: ['a'], subscribe: ['/chat/**'], publish: ['/chat/*'] }
const now = (): number => Math.floor(Date.now() / 1000)

async function sign (claims: JWTPayload, key: CryptoKey | Uint8Array, alg: string, kid?: string): Promise<string> {
  return await new SignJWT(claims).setProtectedHeader({ alg, ...(kid !== undefined ? { kid } : {}) }).sign(key)
}
const hs = async (claims: JWTPayload, secret = SECRET): Promise<string> => await sign(claims, new TextEncoder().encode(secret), 'HS256')

function jwtConfig (over: Partial<JwtConfig>): JwtConfig {
  return { clockToleranceSec: 0, jwksCacheMaxAgeSec: 600, onExpiry: 'end', defaultSessions: [], ...over }
}

async function bridgeWith (t: Teardown, jwt: JwtConfig, extra: { allowQueryToken?: boolean } = {}) {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const config = makeConfig({ a: { url: faye.url }, b: { url: faye.url } })
  config.auth = { ...AUTH_DEFAULTS, ...extra, jwt }
  const bridge = await startBridge(t, config, { logLevel: 'debug' })
  await waitConnected(bridge.app)
  return { ...bridge, faye }
}

const bearer = (token: string): Record<string, string> => ({ Authorization: `Bearer ${token}` })

t.test('jwt - HS256: rights from the claims, and a 401 with a reason for every bad token', async (t) => {
  const { base, logs } = await bridgeWith(t, jwtConfig({ secret: SECRET, issuer: 'https://idp.example', audience: 'cometd-bridge' }))
  const good = { ...RIGHTS, iss: 'https://idp.example', aud: 'cometd-bridge', sub: 'alice', exp: now() + 600 }
  const token = await hs(good)

  const sse = await openSse(t, `${base}/sessions/a/events?channel=/chat/x`, bearer(token))
  t.equal(sse.status, 200, 'SSE within the claims')
  sse.close()
  t.equal((await statusOf(`${base}/sessions/a/events?channel=/other`, { headers: bearer(token) })).status, 403, 'channel outside subscribe')
  t.equal((await statusOf(`${base}/sessions/b/events?channel=/chat/x`, { headers: bearer(token) })).status, 403, 'session outside sessions')
  const published = await request(`${base}/sessions/a/publish/chat/x`, { method: 'POST', headers: bearer(token), body: '{"n":1}' })
  t.equal(published.status, 200, 'publish within the claims')
  t.equal((await request(`${base}/metrics`, { headers: bearer(token) })).status, 403, 'no metrics claim: 403')
  t.equal((await request(`${base}/admin/reload`, { method: 'POST', headers: bearer(token) })).status, 403, 'no admin claim: 403')
  const reload = await request(`${base}/admin/reload`, { method: 'POST', headers: bearer(await hs({ ...good, admin: true })) })
  t.equal(reload.json.error, 'reload_unavailable', 'an admin claim passes (this bridge has no config source to re-read)')

  const cases: Array<[string, string, string]> = [
    ['expired', await hs({ ...good, exp: now() - 60 }), 'expired'],
    ['not yet valid', await hs({ ...good, nbf: now() + 600 }), 'not_yet_valid'],
    ['signed with another secret', await hs(good, 'another-secret-0123456789abcdef0123456789'), 'bad_signature'],
    ['wrong issuer', await hs({ ...good, iss: 'https://evil.example' }), 'wrong_issuer'],
    ['wrong audience', await hs({ ...good, aud: 'someone-else' }), 'wrong_audience'],
    ['no audience', await hs({ ...RIGHTS, iss: 'https://idp.example', exp: now() + 600 }), 'wrong_audience'],
    ['exp not a number', await hs({ ...good, exp: 'soon' as unknown as number }), 'invalid_claims'],
    ['subscribe not a list', await hs({ ...good, subscribe: '/chat/**' }), 'invalid_claims'],
    ['a /meta pattern', await hs({ ...good, subscribe: ['/meta/**'] }), 'invalid_claims'],
    ['console not a boolean', await hs({ ...good, console: 'yes' }), 'invalid_claims'],
    ['alg none', `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify(good)).toString('base64url')}.`, 'algorithm_not_allowed'],
    ['garbage with two dots', 'a.b.c', 'malformed'],
    ['not a JWT at all', 'not-a-jwt-0123456789abcdef', 'malformed']
  ]
  for (const [name, bad, reason] of cases) {
    const res = await request(`${base}/sessions/a/publish/chat/x`, { method: 'POST', headers: bearer(bad), body: '{"n":1}' })
    t.equal(res.status, 401, `${name}: 401`)
    t.equal(res.json?.error, 'unauthorized', `${name}: error code`)
    t.equal(res.json?.reason, reason, `${name}: reason ${String(res.json?.message)}`)
    t.match(res.headers.get('www-authenticate') ?? '', /error="invalid_token", error_description="/, `${name}: challenge`)
  }
  t.equal((await request(`${base}/healthz`)).status, 200, 'still serving after every bad token')
  t.notOk(logs.text().includes(token.split('.')[2]!), 'the token never reaches the logs')
})

t.test('jwt - ES256 and RS256 public keys (PEM files); Mercure-shaped claims', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'jwt-keys-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  for (const alg of ['ES256', 'RS256'] as const) {
    await t.test(alg, async (t) => {
      const pair = await generateKeyPair(alg, { extractable: true })
      const file = join(dir, `${alg}.pem`)
      writeFileSync(file, await exportSPKI(pair.publicKey))
      const { base } = await bridgeWith(t, jwtConfig({ publicKeyFile: file, defaultSessions: ['*'] }))
      const mercure = await sign({ mercure: { subscribe: ['*'], publish: ['/chat/x', 'https://example.com/books/{id}'] }, exp: now() + 600 }, pair.privateKey, alg)
      const sse = await openSse(t, `${base}/sessions/b/events?channel=/anything/**`, bearer(mercure))
      t.equal(sse.status, 200, 'mercure.subscribe ["*"] → every channel, defaultSessions ["*"] → every session')
      sse.close()
      t.equal((await request(`${base}/sessions/a/publish/chat/x`, { method: 'POST', headers: bearer(mercure), body: '1' })).status, 200, 'mercure.publish channel')
      t.equal((await request(`${base}/sessions/a/publish/books/1`, { method: 'POST', headers: bearer(mercure), body: '1' })).status, 403, 'a URI-template topic grants nothing')

      const other = await generateKeyPair(alg)
      const forged = await sign({ ...RIGHTS, exp: now() + 600 }, other.privateKey, alg)
      const res = await request(`${base}/sessions/a/publish/chat/x`, { method: 'POST', headers: bearer(forged), body: '1' })
      t.equal(res.json?.reason, 'bad_signature', 'signed by another key')
      const hmac = await hs({ ...RIGHTS, exp: now() + 600 })
      const confused = await request(`${base}/sessions/a/publish/chat/x`, { method: 'POST', headers: bearer(hmac), body: '1' })
      t.equal(confused.json?.reason, 'algorithm_not_allowed', 'an HS256 token against a public key (algorithm confusion) is refused')
    })
  }
})

interface JwksServer { url: string, fetches: () => number, keys: JWK[], close: () => Promise<void> }

async function serveJwks (keys: JWK[]): Promise<JwksServer> {
  let fetches = 0
  const state = { keys }
  const { server, sockets } = createHttpServer((_req: http.IncomingMessage, res: http.ServerResponse) => {
    fetches++
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }))
  })
  const port = await listen(server)
  return {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    fetches: () => fetches,
    get keys () { return state.keys },
    set keys (k: JWK[]) { state.keys = k },
    close: async () => { await closeServer(server, sockets) }
  }
}

t.test('jwt - a JWKS from a local server: fetched once, cached, refreshed after jwksCacheMaxAgeSec; 503 when unreachable', async (t) => {
  const first = await generateKeyPair('ES256', { extractable: true })
  const second = await generateKeyPair('RS256', { extractable: true })
  const jwks = await serveJwks([{ ...(await exportJWK(first.publicKey)), kid: 'one', alg: 'ES256', use: 'sig' }])
  t.teardown(jwks.close)
  const { base } = await bridgeWith(t, jwtConfig({ jwksUrl: jwks.url, jwksCacheMaxAgeSec: 1 }))
  const claims = { ...RIGHTS, exp: now() + 600 }
  const one = await sign(claims, first.privateKey, 'ES256', 'one')
  for (let i = 0; i < 5; i++) {
    t.equal((await request(`${base}/sessions/a/publish/chat/x`, { method: 'POST', headers: bearer(one), body: '1' })).status, 200, `request ${i + 1} with kid "one"`)
  }
  t.equal(jwks.fetches(), 1, 'five requests, one fetch of the key set')

  // the identity provider rotates its keys; the bridge sees the new set once its copy is older than the max age
  jwks.keys = [{ ...(await exportJWK(second.publicKey)), kid: 'two', alg: 'RS256', use: 'sig' }]
  await new Promise((resolve) => setTimeout(resolve, 1_200))
  const two = await sign(claims, second.privateKey, 'RS256', 'two')
  t.equal((await request(`${base}/sessions/a/publish/chat/x`, { method: 'POST', headers: bearer(two), body: '1' })).status, 200, 'a token of the new key')
  t.equal(jwks.fetches(), 2, 'the stale set was fetched again')
  const unknown = await sign(claims, first.privateKey, 'ES256', 'three')
  const res = await request(`${base}/sessions/a/publish/chat/x`, { method: 'POST', headers: bearer(unknown), body: '1' })
  t.equal(res.status, 401)
  t.equal(res.json?.reason, 'unknown_key', 'a kid the set does not have')

  await jwks.close()
  await new Promise((resolve) => setTimeout(resolve, 1_200))
  const down = await request(`${base}/sessions/a/publish/chat/x`, { method: 'POST', headers: bearer(two), body: '1' })
  t.equal(down.status, 503, 'the key set cannot be fetched: 503, not 401 (the token may be fine)')
  t.equal(down.json?.error, 'auth_unavailable')
  t.equal(down.headers.get('retry-after'), '5')
})

t.test('jwt - a stream ends in-band when its token expires (SSE, NDJSON, WebSocket); onExpiry: keep leaves it open', async (t) => {
  const { base, faye } = await bridgeWith(t, jwtConfig({ secret: SECRET }), { allowQueryToken: true })
  const exp = now() + 2
  const token = await hs({ ...RIGHTS, exp })
  const started = Date.now()
  const sse = await openSse(t, `${base}/sessions/a/events?channel=/chat/x&access_token=${token}`)
  const ndjson = await openNdjson(t, `${base}/sessions/a/events?channel=/chat/x`, bearer(token))
  const ws = await openWs(t, `${base.replace('http', 'ws')}/sessions/a/ws`, bearer(token))
  t.equal(sse.status, 200, 'SSE with the token as access_token (EventSource)')
  t.equal(ndjson.status, 200)
  await faye.publish('/chat/x', { n: 1 })
  await sse.waitEvent((e) => e.event === 'message')

  const expired = await sse.waitEvent((e) => e.event === 'token-expired', { timeoutMs: 8_000 })
  t.comment(`SSE ended ${Date.now() - started} ms after opening (exp ${exp * 1000 - started} ms after)`)
  t.ok(Date.now() >= exp * 1000, 'not before exp')
  t.same(JSON.parse(expired.data), { reason: 'token-expired', expiredAt: new Date(exp * 1000).toISOString() })
  await sse.done
  t.ok(sse.ended, 'the SSE response ended')
  const line = await ndjson.waitObject((o) => o.type === 'token-expired', { timeoutMs: 8_000 })
  t.equal(line.reason, 'token-expired', 'NDJSON: the same event as a line')
  await ndjson.done
  const frame = await ws.waitFrame((f) => f.type === 'token-expired', { timeoutMs: 8_000 })
  t.equal(frame.reason, 'token-expired', 'WebSocket: the same event as a frame')
  t.same(await ws.closed, { code: 1008, reason: 'token expired' }, 'then close 1008')
  const again = await request(`${base}/sessions/a/publish/chat/x`, { method: 'POST', headers: bearer(token), body: '1' })
  t.equal(again.json?.reason, 'expired', 'reconnecting with the same token: 401 expired')
})

t.test('jwt - onExpiry: keep leaves the stream open past exp', async (t) => {
  const { base, faye } = await bridgeWith(t, jwtConfig({ secret: SECRET, onExpiry: 'keep' }))
  const exp = now() + 1
  const sse = await openSse(t, `${base}/sessions/a/events?channel=/chat/x`, bearer(await hs({ ...RIGHTS, exp })))
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, exp * 1000 - Date.now()) + 1_000))
  await faye.publish('/chat/x', { after: 'exp' })
  await sse.waitEvent((e) => e.event === 'message')
  t.notOk(sse.ended, 'still open a second after exp')
  t.notOk(sse.events.some((e) => e.event === 'token-expired'))
})

t.test('jwt - config: one key source, a long enough secret, a readable PEM key; the secret redacted; JWT counts as auth', async (t) => {
  const parse = (jwt: unknown, extra: Record<string, unknown> = {}) => parseConfigObject({ auth: { jwt }, ...extra }, {})
  const errorsOf = (r: ReturnType<typeof parse>): string => (r.ok ? '' : JSON.stringify(r.errors))
  t.match(errorsOf(parse({ secret: SECRET, jwksUrl: 'http://127.0.0.1:1/jwks' })), /auth\.jwt.*exactly one of secret, publicKeyFile or jwksUrl/)
  t.match(errorsOf(parse({})), /exactly one of/)
  const short = parse({ secret: 'too-short-secret' })
  t.match(errorsOf(short), /auth\.jwt\.secret.*at least 32 bytes/)
  t.notOk(errorsOf(short).includes('too-short-secret'), 'the secret is never echoed')
  t.match(errorsOf(parse({ publicKeyFile: '/nonexistent/key.pem' })), /auth\.jwt\.publicKeyFile.*cannot read the file \(ENOENT\)/)
  const dir = mkdtempSync(join(tmpdir(), 'jwt-cfg-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  writeFileSync(join(dir, 'junk.pem'), 'not a key')
  t.match(errorsOf(parse({ publicKeyFile: join(dir, 'junk.pem') })), /auth\.jwt\.publicKeyFile.*not a PEM public key/)
  const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' })
  writeFileSync(join(dir, 'k1.pem'), k1.publicKey.export({ type: 'spki', format: 'pem' }))
  t.match(errorsOf(parse({ publicKeyFile: join(dir, 'k1.pem') })), /auth\.jwt\.publicKeyFile.*unsupported EC curve secp256k1/)
  t.match(errorsOf(parse({ secret: SECRET, algorithms: ['RS256'] })), /auth\.jwt\.algorithms.*RS256 need a public key/)
  t.match(errorsOf(parse({ jwksUrl: 'ftp://x/jwks' })), /auth\.jwt\.jwksUrl/)
  t.match(errorsOf(parse({ secret: SECRET, onExpiry: 'later' })), /auth\.jwt\.onExpiry.*end or keep/)

  const ok = parse({ secret: SECRET, issuer: 'https://idp.example' }, { listen: { host: '0.0.0.0' } })
  t.ok(ok.ok, 'a non-loopback listener with only auth.jwt is allowed')
  if (ok.ok) {
    const config = ok.config as Config
    t.same(config.auth.jwt, { secret: SECRET, issuer: 'https://idp.example', clockToleranceSec: 30, jwksCacheMaxAgeSec: 600, onExpiry: 'end', defaultSessions: [] }, 'defaults')
    const shown = JSON.stringify(redactConfig(config))
    t.notOk(shown.includes(SECRET), 'the secret is redacted from --print-config')
    t.match(shown, /"secret":"\[redacted\]"/)
  }
  const jwks = parseConfigObject({ auth: { jwt: { jwksUrl: 'https://idp:pw@idp.example/jwks' } } }, {})
  t.ok(jwks.ok)
  if (jwks.ok) t.notOk(JSON.stringify(redactConfig(jwks.config as Config)).includes(':pw@'), 'credentials in jwksUrl redacted')
})
