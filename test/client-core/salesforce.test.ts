/**
 * Salesforce Streaming API behaviour, against the Salesforce-like fixture (test/helpers/salesforce.ts, built on
 * cometd-nodejs-server): replay positions across session loss, invalid replayId fallback, token refresh after a
 * revocation, `403::Unknown client` with `reconnect: none`, and hard backoff on limit errors.
 */
import t from 'tap'
import type { Test } from 'tap'
import { Client, ReplayExtension, BearerAuth } from '../../client-core/index.js'
import type { Message, ReplayFallback, ClientOptions, ReplayExtensionOptions } from '../../client-core/index.js'
import { startSalesforceLike, SF_DEFAULT_TOKEN } from '../helpers/salesforce.js'
import type { SalesforceLike } from '../helpers/salesforce.js'
import { collector, delay, waitFor } from '../helpers/wait.js'

const CHANNEL = '/event/Order__e'

function sfClient (t: Test, sf: SalesforceLike, replay: ReplayExtensionOptions, options: ClientOptions = {}, token = (): string => SF_DEFAULT_TOKEN): { client: Client, replay: ReplayExtension, auth: BearerAuth } {
  const ext = new ReplayExtension(replay)
  const auth = new BearerAuth({ getToken: token })
  const client = new Client(sf.url, { connectionTypes: 'long-polling', extensions: [ext], auth, ...options })
  t.teardown(async () => await client.close())
  return { client, replay: ext, auth }
}

const ids = (messages: Message[]): number[] => messages.map((m) => (m.data as { event: { replayId: number } }).event.replayId)

t.test('replay: the position follows events and survives a lost session; nothing retained is lost', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, maxIntervalMs: 1000 })
  t.teardown(sf.close)
  const { client, replay } = sfClient(t, sf, { start: -1 })
  await client.open()
  const got = collector<Message>()
  await client.subscribe(CHANNEL, got.push)
  const published = [sf.publish(CHANNEL, { n: 1 }), sf.publish(CHANNEL, { n: 2 })]
  await got.waitForCount(2, { timeoutMs: 5000 })
  t.equal(replay.positions.get(CHANNEL), published[1]!.data.event.replayId, 'the position is the last replayId')
  t.equal(replay.serverSupportsReplay, true)

  // The server forgets the session; events published meanwhile are replayed from the position on resubscribe.
  await sf.stop()
  const during = [sf.publish(CHANNEL, { n: 3 }), sf.publish(CHANNEL, { n: 4 })]
  await sf.start()
  sf.expireAll()
  await got.waitForCount(4, { timeoutMs: 15_000 })
  const after = sf.publish(CHANNEL, { n: 5 })
  await got.waitForCount(5, { timeoutMs: 5000 })
  t.same(ids(got.items), [...published, ...during, after].map((e) => e.data.event.replayId), 'every event once, in order')
})

t.test('replay: a stored position is used at start; an invalid one falls back and is reported', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 3 } })
  t.teardown(sf.close)
  const events = Array.from({ length: 5 }, (_, i) => sf.publish(CHANNEL, { n: i }))
  const stored = events[2]!.data.event.replayId // still retained (the last 3 are)
  const a = sfClient(t, sf, { positions: { [CHANNEL]: stored } })
  await a.client.open()
  const got = collector<Message>()
  await a.client.subscribe(CHANNEL, got.push)
  await got.waitForCount(2, { timeoutMs: 5000 })
  t.same(ids(got.items), [events[3]!, events[4]!].map((e) => e.data.event.replayId), 'resumed after the stored id')

  const fallbacks = collector<ReplayFallback>()
  const b = sfClient(t, sf, { positions: { [CHANNEL]: events[0]!.data.event.replayId }, fallback: -2, onFallback: fallbacks.push })
  await b.client.open()
  const gotB = collector<Message>()
  await b.client.subscribe(CHANNEL, gotB.push)
  t.equal(fallbacks.items.length, 1, 'the fallback is reported')
  t.equal(fallbacks.items[0]?.refused, events[0]!.data.event.replayId)
  t.equal(fallbacks.items[0]?.fallback, -2)
  t.match(fallbacks.items[0]?.error, /^400::The replayId/)
  await gotB.waitForCount(3, { timeoutMs: 5000 })
  t.same(ids(gotB.items), events.slice(2).map((e) => e.data.event.replayId), 'everything still retained')
  t.ok(b.client.subscriptions.has(CHANNEL))
})

t.test('token revoked mid-session: refreshed, re-handshaken, resubscribed, nothing lost within retention', async (t) => {
  let current = 'token-1'
  const sf = await startSalesforceLike({ timeoutMs: 1500, tokens: (token) => token === current })
  t.teardown(sf.close)
  const { client, auth } = sfClient(t, sf, { start: -1 }, {}, () => current)
  await client.open()
  const got = collector<Message>()
  await client.subscribe(CHANNEL, got.push)
  sf.publish(CHANNEL, { n: 1 })
  await got.waitForCount(1, { timeoutMs: 5000 })
  current = 'token-2'
  sf.revoke('token-1')
  sf.publish(CHANNEL, { n: 2 })
  await waitFor(() => auth.refreshes >= 1, { timeoutMs: 10_000 })
  await got.waitForCount(2, { timeoutMs: 10_000 })
  sf.publish(CHANNEL, { n: 3 })
  await got.waitForCount(3, { timeoutMs: 5000 })
  t.same(got.items.map((m) => (m.data as { payload: { n: number } }).payload.n), [1, 2, 3])
  t.equal(client.state, 'connected')
  t.ok(client.stats.handshakes >= 2, 'a fresh handshake with the new token')
})

t.test('403::Unknown client with reconnect:none is treated as handshake', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, unknownClientAdvice: 'none' })
  t.teardown(sf.close)
  const { client } = sfClient(t, sf, { start: -1 })
  await client.open()
  const got = collector<Message>()
  await client.subscribe(CHANNEL, got.push)
  const first = client.clientId
  sf.expireAll()
  await waitFor(() => client.clientId !== first && client.subscriptions.has(CHANNEL), { timeoutMs: 10_000 })
  sf.publish(CHANNEL, { n: 1 })
  await got.waitForCount(1, { timeoutMs: 5000 })
  t.equal(client.state, 'connected', 'not stopped like faye#492')
})

t.test('limit errors back off hard: no handshake storm', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500 })
  t.teardown(sf.close)
  const { client } = sfClient(t, sf, { start: -1 }, { backoff: { initialMs: 100, earlyMaxMs: 500, maxMs: 3000 } })
  await client.open()
  await client.subscribe(CHANNEL)
  sf.setHandshakeLimit(true)
  sf.resetCounters()
  sf.expireAll()
  const watchMs = 4000
  await delay(watchMs)
  const attempts = sf.counters.handshakes.attempts
  t.comment(`${attempts} handshake attempts in ${watchMs} ms while the org was at its limit`)
  t.ok(attempts >= 1 && attempts <= 4, 'a handful of attempts, not a loop')
  t.not(client.state, 'connected')
  sf.setHandshakeLimit(false)
  await waitFor(() => client.state === 'connected' && client.subscriptions.has(CHANNEL), { timeoutMs: 10_000 })
  t.pass('recovered once the limit was lifted')
})
