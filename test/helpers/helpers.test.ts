/**
 * Proves the peer helpers against the real peers: Faye 1.4.3, cometd-nodejs-server 1.2.1 and the
 * official cometd 9 client, plus wait.ts and tls.ts (faults.test.ts covers the fault proxy and the
 * scripted fakes). Every test tears down what it started; the file must exit by itself.
 */
import t from 'tap'
import https from 'node:https'
import type { TLSSocket } from 'node:tls'
import { WebSocket } from 'ws'
import { startCometd } from './cometd-server.js'
import { startFaye } from './faye.js'
import { createOfficialClient, OfficialClientError, type OfficialMessage } from './official-client.js'
import { selfSignedCert } from './tls.js'
import { collector, waitFor, WaitTimeoutError, withDeadline } from './wait.js'

type Json = Record<string, unknown>

async function postJson(url: string, body: unknown, cookie?: string): Promise<{ status: number; json: Json[]; setCookie: string | null }> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  if (cookie) headers['cookie'] = cookie
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) })
  const text = await res.text()
  return { status: res.status, json: text ? (JSON.parse(text) as Json[]) : [], setCookie: res.headers.get('set-cookie') }
}

const HANDSHAKE = { channel: '/meta/handshake', id: '1', version: '1.0', supportedConnectionTypes: ['long-polling'] }

t.test('wait - waitFor returns the truthy value and times out with a descriptive error', async (t) => {
  let n = 0
  t.equal(await waitFor(() => (++n >= 3 ? n : 0), { intervalMs: 1 }), 3)
  await t.rejects(waitFor(() => false, { timeoutMs: 30, message: 'the moon' }), { name: 'WaitTimeoutError', message: /the moon not met/ })
  await t.rejects(withDeadline(new Promise(() => undefined), 20, 'never'), WaitTimeoutError)
  const c = collector<number>()
  setTimeout(() => c.push(1), 5)
  t.same(await c.waitForCount(1), [1])
})

function httpsPost(url: string, ca: string, body: unknown): Promise<{ status: number; body: string; subject: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(url, { method: 'POST', ca, headers: { 'content-type': 'application/json' } }, (res) => {
      const subject = String((res.socket as TLSSocket).getPeerCertificate().subject.CN)
      let text = ''
      res.on('data', (c: Buffer) => (text += c.toString()))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, subject }))
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

t.test('tls - selfSignedCert serves https on 127.0.0.1 and is trusted via ca', async (t) => {
  const { key, cert } = await selfSignedCert()
  const faye = await startFaye({ tls: { key, cert } })
  t.teardown(faye.close)
  const cometd = await startCometd({ tls: { key, cert } })
  t.teardown(cometd.close)
  for (const url of [faye.url, cometd.url]) {
    t.match(url, /^https:\/\/127\.0\.0\.1:\d+\/cometd$/)
    const { status, body, subject } = await httpsPost(url, cert, [HANDSHAKE])
    t.equal(status, 200)
    t.equal(subject, 'localhost')
    t.match(JSON.parse(body), [{ channel: '/meta/handshake', successful: true }])
  }
})

for (const transport of ['long-polling', 'websocket'] as const) {
  t.test(`faye - official client round-trips a message over ${transport}`, async (t) => {
    const faye = await startFaye({ timeoutSec: 5 })
    t.teardown(faye.close)
    const client = createOfficialClient(faye.url, { transport })
    t.teardown(client.disconnect)
    await client.handshake()
    t.equal(client.cometd.getTransport()?.type, transport)
    const got = collector<OfficialMessage>()
    await client.subscribe('/chat/a', got.push)
    t.match(await client.publish('/chat/a', { text: 'hi' }), { successful: true })
    await faye.publish('/chat/a', { from: 'server' })
    const [first, second] = await got.waitForCount(2)
    t.same(first?.data, { text: 'hi' })
    t.same(second?.data, { from: 'server' })
  })
}

t.test('faye - stop/start keeps the port and loses the sessions', async (t) => {
  const faye = await startFaye({ timeoutSec: 2 })
  t.teardown(faye.close)
  const port = faye.port
  const hs = await postJson(faye.url, [HANDSHAKE])
  const clientId = hs.json[0]?.['clientId'] as string
  await faye.stop()
  await t.rejects(fetch(faye.url, { method: 'POST', body: '[]' }))
  await faye.start()
  t.equal(faye.port, port)
  const connect = await postJson(faye.url, [{ channel: '/meta/connect', id: '2', clientId, connectionType: 'long-polling' }])
  t.match(connect.json[0], { successful: false, error: `401:${clientId}:Unknown client`, advice: { reconnect: 'handshake' } })
})

t.test('faye - close() with a held connect and a pinged websocket leaves no timer behind', async (t) => {
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  const faye = await startFaye({ timeoutSec: 30, ping: 1 })
  t.teardown(faye.close)
  const clientId = (await postJson(faye.url, [HANDSHAKE])).json[0]?.['clientId'] as string
  const held = postJson(faye.url, [{ channel: '/meta/connect', id: '2', clientId, connectionType: 'long-polling' }]).then(
    () => null,
    (err: unknown) => err,
  )
  const ws = new WebSocket(faye.wsUrl)
  t.teardown(() => ws.terminate())
  await withDeadline(new Promise((resolve) => ws.once('open', resolve)), 2000, 'ws open')
  await waitFor(() => faye.connections >= 3, { message: 'three connections' })
  await faye.publish('/x', 1) // creates the in-process client too
  await faye.close()
  t.type(await held, Error, 'the held poll is cut')
  await waitFor(() => timers() === before, { timeoutMs: 1000, message: () => `timers back to ${before} (now ${timers()})` })
})

t.test('cometd-server - wire shapes of handshake, echo, slow, forbidden and unknown session', async (t) => {
  const peer = await startCometd({ options: { timeout: 2000 } })
  t.teardown(peer.close)
  const hs = await postJson(peer.url, [HANDSHAKE])
  t.match(hs.setCookie, /^BAYEUX_BROWSER=[0-9a-f]{40}; HttpOnly/)
  t.match(hs.json[0], { successful: true, clientId: /^[0-9a-f]{40}$/, supportedConnectionTypes: ['long-polling'], advice: { reconnect: 'retry', timeout: 2000, interval: 0 } })
  t.equal(peer.sessions(), 1)
  const cookie = hs.setCookie!.split(';')[0]!
  const clientId = hs.json[0]?.['clientId'] as string
  const echo = await postJson(peer.url, [{ channel: '/service/echo', id: '7', clientId, data: { a: 1 } }], cookie)
  t.same(echo.json, [
    { channel: '/service/echo', data: { a: 1 }, id: '7' },
    { id: '7', channel: '/service/echo', successful: true },
  ])
  const slow = await postJson(peer.url, [{ channel: '/service/slow', id: '8', clientId, data: 1 }], cookie)
  t.same(slow.json, [{ id: '8', channel: '/service/slow', successful: true }])
  t.equal(peer.serviceCalls.length, 2)
  const sub = await postJson(peer.url, [{ channel: '/meta/subscribe', id: '9', clientId, subscription: '/forbidden/x' }], cookie)
  t.match(sub.json[0], { successful: false, error: '403::subscribe_denied' })
  const pub = await postJson(peer.url, [{ channel: '/forbidden/x', id: '10', clientId, data: 1 }], cookie)
  t.match(pub.json[0], { successful: false, error: '403::publish_denied' })
  const noCookie = await postJson(peer.url, [{ channel: '/meta/connect', id: '11', clientId, connectionType: 'long-polling' }])
  t.match(noCookie.json[0], { successful: false, error: '402::session_unknown', advice: { reconnect: 'handshake', interval: 0 } })
  t.equal((await fetch(peer.url, { method: 'POST', body: '[]' })).status, 400)
})

t.test('cometd-server - official client: round-trip, remoteCall echo, slow timeout, forbidden', async (t) => {
  const peer = await startCometd()
  t.teardown(peer.close)
  const client = createOfficialClient(peer.url, { transport: 'long-polling' })
  t.teardown(client.disconnect)
  await client.handshake()
  const got = collector<OfficialMessage>()
  await client.subscribe('/chat/*', got.push)
  t.match(await client.publish('/chat/a', 'hello'), { successful: true })
  await peer.publish('/chat/b', 'from server')
  t.same((await got.waitForCount(2)).map((m) => m.data), ['hello', 'from server'])
  t.same((await client.remoteCall('/echo', { q: 42 })).data, { q: 42 })
  t.match(await client.remoteCall('/slow', 1, 200), { successful: false, error: '406::timeout' })
  await t.rejects(client.subscribe('/forbidden/x', () => undefined), OfficialClientError)
})

t.test('cometd-server - ack extension, sessions() and restart on the same port', async (t) => {
  const peer = await startCometd({ ack: true })
  t.teardown(peer.close)
  const client = createOfficialClient(peer.url, { transport: 'long-polling', ack: true })
  t.teardown(client.disconnect)
  t.match(await client.handshake(), { successful: true, ext: { ack: true } })
  t.equal(peer.sessions(), 1)
  t.same((await client.remoteCall('/echo', 'via ack')).data, 'via ack') // rides on /meta/connect
  const port = peer.port
  await peer.stop()
  await peer.start()
  t.equal(peer.port, port)
  t.equal(peer.sessions(), 0)
})

t.test('cometd-server - close() with a held /meta/connect leaves no timer behind', async (t) => {
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  const peer = await startCometd({ options: { timeout: 30_000 } })
  t.teardown(peer.close)
  const hs = await postJson(peer.url, [HANDSHAKE])
  const cookie = hs.setCookie!.split(';')[0]!
  const clientId = hs.json[0]?.['clientId'] as string
  let suspended = false
  peer.cometd.getServerSession(clientId).addListener('suspended', () => (suspended = true))
  const held = postJson(peer.url, [{ channel: '/meta/connect', id: '2', clientId, connectionType: 'long-polling' }], cookie).then(
    () => null,
    (err: unknown) => err,
  )
  await waitFor(() => suspended, { message: 'the connect to be held' })
  t.ok(timers() > before)
  await peer.close()
  t.type(await held, Error, 'the held poll is cut')
  await waitFor(() => timers() === before, { timeoutMs: 1000, message: () => `timers back to ${before} (now ${timers()})` })
})

t.test('official-client - isolated cookie jars give each client its own BAYEUX_BROWSER', async (t) => {
  const peer = await startCometd()
  t.teardown(peer.close)
  const cookies = new Set<string>()
  peer.server.on('request', (req: { headers: { cookie?: string } }) => {
    const m = /BAYEUX_BROWSER=([0-9a-f]+)/.exec(req.headers.cookie ?? '')
    if (m?.[1]) cookies.add(m[1])
  })
  const a = createOfficialClient(peer.url, { transport: 'long-polling' })
  const b = createOfficialClient(peer.url, { transport: 'long-polling' })
  t.teardown(a.disconnect)
  t.teardown(b.disconnect)
  await a.handshake()
  await b.handshake()
  await a.publish('/x', 1)
  await b.publish('/x', 2)
  t.equal(cookies.size, 2)
})

t.test('official-client - a denied handshake rejects and disconnect() still settles', async (t) => {
  const peer = await startCometd({ policy: { canHandshake: () => false } })
  t.teardown(peer.close)
  const client = createOfficialClient(peer.url, { transport: 'long-polling', timeoutMs: 2000 })
  t.teardown(client.disconnect)
  await t.rejects(client.handshake(), { name: 'OfficialClientError', message: /403::handshake_denied/ })
  await client.disconnect()
})
