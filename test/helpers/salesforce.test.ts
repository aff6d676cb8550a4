/**
 * Proves the Salesforce-like fixture (salesforce.ts) on the wire with plain fetch POSTs, and with
 * the official cometd client. Every test tears down what it starts; the file exits by itself.
 */
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { createOfficialClient, OfficialClientError, type OfficialMessage } from './official-client.js'
import {
  SF_DEFAULT_TOKEN,
  sfInvalidReplayError,
  startSalesforceLike,
  type SalesforceLike,
  type SalesforceLikeOptions,
} from './salesforce.js'
import { collector, waitFor, withDeadline } from './wait.js'

type Json = Record<string, unknown>
interface Posted {
  status: number
  json: Json[]
  setCookie: string | null
}

const TOKEN = SF_DEFAULT_TOKEN
const HANDSHAKE = { channel: '/meta/handshake', id: '1', version: '1.0', supportedConnectionTypes: ['long-polling'], ext: { replay: true } }
const DENIED = {
  id: '1',
  channel: '/meta/handshake',
  successful: false,
  error: '403::Handshake denied',
  ext: { sfdc: { failureReason: '401::Authentication invalid' } },
  advice: { reconnect: 'none' },
}

async function post(url: string, body: unknown, opts: { token?: string | null; cookie?: string; raw?: string } = {}): Promise<Posted> {
  const headers: Record<string, string> = { 'content-type': 'application/json' }
  const token = opts.token === undefined ? TOKEN : opts.token
  if (token !== null) headers['authorization'] = `Bearer ${token}`
  if (opts.cookie) headers['cookie'] = opts.cookie
  const res = await fetch(url, { method: 'POST', headers, body: opts.raw ?? JSON.stringify(body), signal: AbortSignal.timeout(5000) })
  const text = await res.text()
  return { status: res.status, json: text && res.headers.get('content-type')?.includes('json') ? (JSON.parse(text) as Json[]) : [], setCookie: res.headers.get('set-cookie') }
}

interface Session {
  clientId: string
  cookie: string
  /** POSTs one message of this session (clientId added). */
  send(message: Json, token?: string | null): Promise<Posted>
  connect(id: string, token?: string | null): Promise<Posted>
  subscribe(id: string, subscription: string | string[], replay?: Record<string, unknown>, token?: string | null): Promise<Posted>
}

async function handshake(sf: SalesforceLike, token: string = TOKEN): Promise<Session> {
  const hs = await post(sf.url, [HANDSHAKE], { token })
  const reply = hs.json[0]
  if (!reply?.['successful']) throw new Error(`handshake failed: ${JSON.stringify(hs.json)}`)
  const cookie = hs.setCookie!.split(';')[0]!
  const clientId = reply['clientId'] as string
  const send = (message: Json, tok: string | null = token): Promise<Posted> =>
    post(sf.url, [{ ...message, clientId }], { token: tok, cookie })
  return {
    clientId,
    cookie,
    send,
    // advice.timeout 0: answered at once (cometd honours the client's timeout)
    connect: (id, tok) => send({ channel: '/meta/connect', id, connectionType: 'long-polling', advice: { timeout: 0 } }, tok),
    subscribe: (id, subscription, replay, tok) =>
      send({ channel: '/meta/subscribe', id, subscription, ...(replay ? { ext: { replay } } : {}) }, tok),
  }
}

async function start(t: Test, opts: SalesforceLikeOptions = {}): Promise<SalesforceLike> {
  const sf = await startSalesforceLike({ timeoutMs: 2000, ...opts })
  t.teardown(sf.close)
  return sf
}

const events = (posted: Posted): Json[] => posted.json.filter((m) => !String(m['channel']).startsWith('/meta/'))
const replayIds = (msgs: Json[]): number[] => msgs.map((m) => (m['data'] as { event: { replayId: number } }).event.replayId)

t.test('salesforce - url, handshake with a valid, wrong and missing token', async (t) => {
  const sf = await start(t, { tokens: ['good'] })
  t.match(sf.url, /^http:\/\/127\.0\.0\.1:\d+\/cometd\/59\.0$/)

  const missing = await post(sf.url, [HANDSHAKE], { token: null })
  t.equal(missing.status, 200)
  t.same(missing.json, [DENIED], 'exact wire shape of a denied handshake')
  t.equal(missing.setCookie, null, 'no BAYEUX_BROWSER cookie on a denied handshake')
  t.same((await post(sf.url, [HANDSHAKE], { token: 'bad' })).json, [DENIED])
  t.equal(sf.sessions(), 0)

  const ok = await post(sf.url, [HANDSHAKE], { token: 'good' })
  t.match(ok.setCookie, /^BAYEUX_BROWSER=[0-9a-f]{40}/)
  t.match(ok.json[0], {
    id: '1',
    channel: '/meta/handshake',
    successful: true,
    clientId: /^[0-9a-f]{40}$/,
    version: '1.0',
    supportedConnectionTypes: ['long-polling'],
    ext: { replay: true, 'payload.format': true },
    advice: { reconnect: 'retry', interval: 0, timeout: 2000 },
  })
  // the old `OAuth <sid>` scheme is accepted too
  const oauth = await fetch(sf.url, { method: 'POST', headers: { authorization: 'OAuth good', 'content-type': 'application/json' }, body: JSON.stringify([HANDSHAKE]) })
  t.match(((await oauth.json()) as Json[])[0], { successful: true })
  t.same(sf.counters.handshakes, { attempts: 4, successes: 2 })
  t.equal(sf.counters.authFailures, 2)
  t.equal(sf.sessions(), 2)

  sf.setTokens((tok) => tok.startsWith('fn-'))
  t.match((await post(sf.url, [HANDSHAKE], { token: 'fn-1' })).json[0], { successful: true })
  t.same((await post(sf.url, [HANDSHAKE], { token: 'good' })).json, [DENIED])
})

t.test('salesforce - connect advice, live event shape, client publish denied', async (t) => {
  const sf = await start(t)
  const s = await handshake(sf)
  const c1 = await s.connect('2')
  t.same(c1.json, [{ id: '2', channel: '/meta/connect', successful: true, advice: { reconnect: 'retry', interval: 0, timeout: 2000 } }])
  t.same((await s.subscribe('3', '/event/Order__e')).json, [{ id: '3', channel: '/meta/subscribe', subscription: '/event/Order__e', successful: true }])
  const ev = sf.publish('/event/Order__e', { Amount__c: 5 })
  t.equal(ev.data.event.replayId, 1000)
  t.match(ev.data.event.createdDate, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  const c2 = await s.connect('4')
  t.same(c2.json, [
    { channel: '/event/Order__e', data: { event: { replayId: 1000, createdDate: ev.data.event.createdDate }, payload: { Amount__c: 5 } } },
    { id: '4', channel: '/meta/connect', successful: true, advice: { reconnect: 'retry', interval: 0, timeout: 2000 } },
  ])
  t.match((await s.send({ channel: '/event/Order__e', id: '5', data: {} })).json[0], { successful: false, error: '403::publish_denied' })
  const badType = await s.send({ channel: '/meta/connect', id: '6', connectionType: 'websocket' })
  t.match(badType.json[0], { successful: false, error: '400::Invalid connection type' })
  t.same(sf.counters.connects, { attempts: 3, successes: 2 })
  t.same(sf.counters.subscribes, { attempts: 1, successes: 1 })
})

t.test('salesforce - replay: -2 in order within retention, N, -1, invalid ids', async (t) => {
  const sf = await start(t, { retention: { count: 3 } })
  const a = [1, 2, 3, 4].map((n) => sf.publish('/event/A__e', { n })) // 1000..1003, 1000 evicted
  const b = sf.publish('/event/B__e', { n: 'b' }) // 1004: ids are not contiguous per channel
  const a5 = sf.publish('/event/A__e', { n: 5 }) // 1005, 1001 evicted
  t.same(replayIds(sf.events('/event/A__e') as unknown as Json[]), [1002, 1003, 1005])
  t.equal(b.data.event.replayId, 1004)
  t.equal(a[0]!.data.event.replayId, 1000)

  const s = await handshake(sf)
  const all = await s.subscribe('2', '/event/A__e', { '/event/A__e': -2, '/event/Other__e': 7 })
  t.same(replayIds(events(all)), [1002, 1003, 1005], 'every retained event, oldest first (entries for other channels ignored)')
  t.same(events(all).map((m) => (m['data'] as { payload: unknown }).payload), [{ n: 3 }, { n: 4 }, { n: 5 }])
  t.same(all.json.at(-1), { id: '2', channel: '/meta/subscribe', subscription: '/event/A__e', successful: true })
  t.equal(sf.counters.replayed, 3)

  const s2 = await handshake(sf)
  t.same(replayIds(events(await s2.subscribe('3', '/event/A__e', { '/event/A__e': 1003 }))), [1005], 'N: events after N')
  t.same(replayIds(events(await s2.subscribe('4', '/event/A__e', { '/event/A__e': '1002' }))), [1003, 1005], 'string ids parsed')
  t.same(events(await s2.subscribe('5', '/event/A__e', { '/event/A__e': -1 })), [], '-1: nothing replayed')
  t.same(events(await s2.subscribe('6', '/event/B__e')), [], 'no entry: new events only')

  for (const bad of [1001 /* evicted */, 1004 /* another channel's */, 99_999 /* unknown */, -3, 'abc']) {
    const res = await s2.subscribe('7', '/event/A__e', { '/event/A__e': bad })
    t.same(res.json, [{ id: '7', channel: '/meta/subscribe', successful: false, subscription: '/event/A__e', error: sfInvalidReplayError(bad) }], `invalid ${bad}`)
  }
  t.equal(
    sfInvalidReplayError(1001),
    '400::The replayId {1001} you provided was invalid. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.',
  )
  // a rejected subscribe subscribes nothing
  const s3 = await handshake(sf)
  await s3.subscribe('2', '/event/A__e', { '/event/A__e': 1 })
  sf.publish('/event/A__e', { n: 6 })
  t.same(events(await s3.connect('3')), [])
  // ... while a replayed subscriber then gets the live event after the replayed ones
  t.same(replayIds(events(await s.connect('9'))), [1006])
  t.equal(a5.data.event.replayId, 1005)

  // with a connect held, replayed events still ride on the subscribe's own response, before its reply
  const s4 = await handshake(sf)
  await s4.connect('2')
  const before = sf.counters.connects.attempts
  const held = s4.send({ channel: '/meta/connect', id: '3', connectionType: 'long-polling' })
  await waitFor(() => sf.counters.connects.attempts === before + 1, { message: 'held connect received' })
  const sub = await s4.subscribe('4', '/event/A__e', { '/event/A__e': -2 })
  t.same(sub.json.map((m) => m['channel']), ['/event/A__e', '/event/A__e', '/event/A__e', '/meta/subscribe'])
  sf.expireSession(s4.clientId)
  t.match((await held).json, [{ id: '3', error: '403::Unknown client' }])
})

t.test('salesforce - 403::Unknown client after expireAll / expireSession, held connect answered at once', async (t) => {
  const sf = await start(t, { timeoutMs: 10_000 })
  const a = await handshake(sf)
  const b = await handshake(sf)
  t.same(sf.clientIds(), [a.clientId, b.clientId])
  // b holds a connect (no advice: held for 10 s)
  await b.connect('2') // the first connect is answered at once by our advice.timeout 0
  const t0 = Date.now()
  const held = b.send({ channel: '/meta/connect', id: '3', connectionType: 'long-polling' })
  await waitFor(() => sf.counters.connects.attempts === 2, { message: 'held connect received' })
  t.equal(sf.expireAll(), 2)
  const answered = await held
  t.ok(Date.now() - t0 < 2000, 'the held connect returned at once')
  t.same(answered.json, [{ id: '3', channel: '/meta/connect', successful: false, error: '403::Unknown client', advice: { reconnect: 'handshake', interval: 0 } }])
  t.same((await a.connect('4')).json, [{ id: '4', channel: '/meta/connect', successful: false, error: '403::Unknown client', advice: { reconnect: 'handshake', interval: 0 } }])
  // replies to unknown sessions carry cometd's id and channel only (no subscription)
  t.same((await a.subscribe('5', '/event/X')).json, [{ id: '5', channel: '/meta/subscribe', successful: false, error: '403::Unknown client', advice: { reconnect: 'handshake', interval: 0 } }])
  t.equal(sf.sessions(), 0)

  // no cookie at all (restforce#97)
  const c = await handshake(sf)
  const noCookie = await post(sf.url, [{ channel: '/meta/connect', id: '6', clientId: c.clientId, connectionType: 'long-polling' }])
  t.match(noCookie.json[0], { successful: false, error: '403::Unknown client', advice: { reconnect: 'handshake', interval: 0 } })

  // expireSession(): the newest by default, or by id; the `reconnect:none` variant
  const d = await handshake(sf)
  sf.setUnknownClientAdvice('none')
  t.equal(sf.expireSession(), true)
  t.same(sf.clientIds(), [c.clientId])
  t.same((await d.connect('7')).json, [{ id: '7', channel: '/meta/connect', successful: false, error: '403::Unknown client', advice: { reconnect: 'none' } }])
  t.equal(sf.expireSession(c.clientId), true)
  t.equal(sf.expireSession('nope'), false)
  t.equal(sf.counters.unknownClient, 5)
  t.match((await handshake(sf)).clientId, /^[0-9a-f]{40}$/, 're-handshake works')
})

t.test('salesforce - unknownClientAdvice none option and maxIntervalMs expiry', async (t) => {
  const sf = await start(t, { unknownClientAdvice: 'none', maxIntervalMs: 100 })
  const s = await handshake(sf)
  await waitFor(() => sf.sessions() === 0, { timeoutMs: 3000, message: 'the session to expire (sweeper ~1 s)' })
  t.same((await s.connect('2')).json, [{ id: '2', channel: '/meta/connect', successful: false, error: '403::Unknown client', advice: { reconnect: 'none' } }])
})

t.test('salesforce - 401::Authentication invalid after revoke, held connect kicked, grant', async (t) => {
  const sf = await start(t, { tokens: ['t1', 't2'], timeoutMs: 10_000 })
  const s = await handshake(sf, 't1')
  const other = await handshake(sf, 't2')
  await s.connect('2')
  const held = s.send({ channel: '/meta/connect', id: '3', connectionType: 'long-polling' })
  await waitFor(() => sf.counters.connects.attempts === 2, { message: 'held connect received' })
  const t0 = Date.now()
  sf.revoke('t1')
  t.match((await held).json, [{ id: '3', successful: true }], 'the held connect returns at once, normally')
  t.ok(Date.now() - t0 < 2000)
  const denied = await s.connect('4')
  t.same(denied.json, [{ id: '4', channel: '/meta/connect', successful: false, error: '401::Authentication invalid', advice: { reconnect: 'none' } }])
  t.same((await s.subscribe('5', '/event/X')).json, [{ id: '5', channel: '/meta/subscribe', successful: false, subscription: '/event/X', error: '401::Authentication invalid', advice: { reconnect: 'none' } }])
  t.same((await post(sf.url, [HANDSHAKE], { token: 't1' })).json, [DENIED])
  t.match((await other.connect('6')).json[0], { successful: true }, 'other tokens unaffected')
  // a refreshed token works on the same session (Salesforce checks every request)
  t.match((await s.connect('7', 't2')).json[0], { successful: true })
  sf.grant('t1')
  t.match((await s.connect('8', 't1')).json[0], { successful: true })
  t.equal(sf.counters.authFailures, 3)
})

t.test('salesforce - concurrent user limit, maxClients and daily limit', async (t) => {
  const sf = await start(t, { maxClients: 2 })
  const LIMIT = { id: '1', channel: '/meta/handshake', successful: false, error: '403::Organization concurrent user limit exceeded', advice: { reconnect: 'none' } }
  sf.setHandshakeLimit(true)
  t.same((await post(sf.url, [HANDSHAKE])).json, [LIMIT])
  t.same((await post(sf.url, [HANDSHAKE])).json, [LIMIT])
  t.same(sf.counters.handshakes, { attempts: 2, successes: 0 })
  sf.setHandshakeLimit(false)
  const s = await handshake(sf)
  await handshake(sf)
  t.same((await post(sf.url, [HANDSHAKE])).json, [LIMIT], 'maxClients live sessions')
  t.same(sf.counters.handshakes, { attempts: 5, successes: 2 })
  t.equal(sf.counters.limitErrors, 3)
  sf.setDailyLimit(true)
  t.same((await s.connect('2')).json, [{ id: '2', channel: '/meta/connect', successful: false, error: '403::Organization total events daily limit exceeded', advice: { reconnect: 'none' } }])
  sf.setDailyLimit(false)
  t.match((await s.connect('3')).json[0], { successful: true })
  sf.resetCounters()
  t.same(sf.counters.handshakes, { attempts: 0, successes: 0 })
})

t.test('salesforce - stop()/start() keeps the port and the event store, loses sessions', async (t) => {
  const sf = await start(t)
  const s = await handshake(sf)
  sf.publish('/event/A__e', 1)
  const port = sf.port
  await sf.stop()
  await t.rejects(post(sf.url, [HANDSHAKE]), 'refused while stopped')
  sf.publish('/event/A__e', 2) // stored while down
  await sf.start()
  t.equal(sf.port, port)
  t.equal(sf.sessions(), 0)
  t.match((await s.connect('2')).json[0], { successful: false, error: '403::Unknown client' })
  const s2 = await handshake(sf)
  t.same(replayIds(events(await s2.subscribe('2', '/event/A__e', { '/event/A__e': -2 }))), [1000, 1001])
  t.same(sf.events('/event/A__e').map((e) => e.data.payload), [1, 2])
})

t.test('salesforce - HTTP level: long-polling only, version in the path, body limit', async (t) => {
  const sf = await start(t, { version: '60.0' })
  t.match(sf.url, /\/cometd\/60\.0$/)
  t.match((await post(sf.url + '/handshake', [HANDSHAKE])).json[0], { successful: true }, 'sub-paths accepted')
  const base = sf.url.replace(/\/cometd\/60\.0$/, '')
  const noVersion = await fetch(base + '/cometd', { method: 'POST', body: JSON.stringify([HANDSHAKE]) })
  t.equal(noVersion.status, 400)
  t.equal(await noVersion.text(), 'API version in the URI is mandatory')
  const retired = await fetch(base + '/cometd/36.0', { method: 'POST', body: JSON.stringify([HANDSHAKE]) })
  t.equal(retired.status, 400)
  t.equal(await retired.text(), 'Unsupported API version')
  t.equal((await post(base + '/cometd/59.0', [HANDSHAKE])).status, 404, 'another version is not mounted')
  t.equal((await fetch(sf.url)).status, 400, 'GET')
  t.equal((await post(sf.url, null, { raw: '{nope' })).status, 400, 'bad JSON')
  t.equal((await post(sf.url, [])).status, 400, 'empty batch')
  const big = [{ ...HANDSHAKE, ext: { pad: 'x'.repeat(33_000) } }]
  t.equal((await post(sf.url, big)).status, 413)

  const ws = new WebSocket(sf.url.replace(/^http/, 'ws'), { headers: { authorization: `Bearer ${TOKEN}` } })
  const status = await withDeadline(
    new Promise<number | string>((resolve) => {
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0))
      ws.once('open', () => resolve('open'))
      ws.once('error', (err) => resolve(err.message))
    }),
    2000,
    'websocket refusal',
  )
  ws.terminate()
  t.equal(status, 400, 'websocket upgrade refused with HTTP 400')
})

t.test('salesforce - official cometd client: bearer header, replay ext, live events, 401 on revoke', async (t) => {
  const sf = await start(t, { tokens: ['tok'] })
  sf.publish('/event/A__e', 'old-1')
  sf.publish('/event/A__e', 'old-2')
  const headers = { Authorization: 'Bearer tok' }
  const client = createOfficialClient(sf.url, { transport: 'long-polling', config: { requestHeaders: headers } })
  t.teardown(client.disconnect)
  t.match(await client.handshake(), { successful: true, ext: { replay: true, 'payload.format': true } })
  const got = collector<OfficialMessage>()
  const subscribed = new Promise<OfficialMessage>((resolve) =>
    client.cometd.subscribe('/event/A__e', got.push, { ext: { replay: { '/event/A__e': -2 } } }, resolve),
  )
  t.match(await withDeadline(subscribed, 5000, 'subscribe'), { successful: true })
  sf.publish('/event/A__e', 'live')
  const msgs = await got.waitForCount(3)
  t.same(msgs.map((m) => (m.data as { payload: unknown }).payload), ['old-1', 'old-2', 'live'])
  t.same(msgs.map((m) => (m.data as { event: { replayId: number } }).event.replayId), [1000, 1001, 1002])

  const failures = collector<OfficialMessage>()
  client.cometd.addListener('/meta/connect', (m: OfficialMessage) => {
    if (!m.successful) failures.push(m)
  })
  sf.revoke('tok')
  const [failure] = await failures.waitForCount(1)
  t.match(failure, { successful: false, error: '401::Authentication invalid', advice: { reconnect: 'none' } })

  const denied = createOfficialClient(sf.url, { transport: 'long-polling', config: { requestHeaders: headers }, timeoutMs: 2000 })
  t.teardown(denied.disconnect)
  await t.rejects(denied.handshake(), OfficialClientError)
})

t.test('salesforce - close() with a held connect leaves no timer behind; close is idempotent', async (t) => {
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  const sf = await startSalesforceLike({ timeoutMs: 30_000 })
  t.teardown(sf.close)
  const s = await handshake(sf)
  const held = s.send({ channel: '/meta/connect', id: '2', connectionType: 'long-polling' }).then(
    () => null,
    (err: unknown) => err,
  )
  await waitFor(() => sf.counters.connects.attempts === 1 && sf.connections > 0, { message: 'held connect' })
  await Promise.all([sf.close(), sf.close()])
  t.type(await held, Error, 'the held poll is cut')
  await waitFor(() => timers() === before, { timeoutMs: 1000, message: () => `timers back to ${before} (now ${timers()})` })
  await t.rejects(sf.start(), /after close/)
})
