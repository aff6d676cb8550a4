/**
 * client-core contract suite: the same scenarios against every real peer and transport we support —
 * faye over websocket, faye over long-polling, cometd-nodejs-server over long-polling.
 */
import t from 'tap'
import type { Test } from 'tap'
import { Client, Extension, MessageEncodingError, ServerError, TransportTimeoutError, ClientError, ClientInvalidOperation } from '../../client-core/index.js'
import type { ClientOptions, ConnectionType, Message, Payload } from '../../client-core/index.js'
import { startFaye } from '../helpers/faye.js'
import { startCometd } from '../helpers/cometd-server.js'
import { collector, waitFor, withDeadline } from '../helpers/wait.js'

interface Peer {
  url: string
  publish: (channel: string, data: unknown) => Promise<void>
  stop: () => Promise<void>
  start: () => Promise<void>
  close: () => Promise<void>
}

interface Case {
  name: string
  type: ConnectionType
  services: boolean
  start: () => Promise<Peer>
}

const cases: Case[] = [
  { name: 'faye websocket', type: 'websocket', services: false, start: async () => await startFaye({ timeoutSec: 5 }) },
  { name: 'faye long-polling', type: 'long-polling', services: false, start: async () => await startFaye({ timeoutSec: 5 }) },
  { name: 'cometd-nodejs-server long-polling', type: 'long-polling', services: true, start: async () => await startCometd({ options: { timeout: 5000 } }) }
]

function client (t: Test, url: string, type: ConnectionType, options: ClientOptions = {}): Client {
  const c = new Client(url, { connectionTypes: [type], ...options })
  t.teardown(async () => await c.close())
  return c
}

for (const tc of cases) {
  t.test(`${tc.name}`, async (t) => {
    const peer = await tc.start()
    t.teardown(peer.close)

    t.test('two-client chat', async (t) => {
      const alice = client(t, peer.url, tc.type)
      const bob = client(t, peer.url, tc.type)
      await alice.open()
      await bob.open()
      t.equal(alice.connectionType, tc.type)
      t.equal(alice.state, 'connected')
      t.notOk(alice.closed)
      await alice.subscribe('/chat/demo')
      await bob.subscribe('/chat/demo')
      t.same([...alice.subscriptions], ['/chat/demo'])
      const reply = await bob.publish('/chat/demo', { user: 'bob', chat: 'hello' })
      t.equal(reply.successful, true)
      const got = await withDeadline(alice.receive(), 5000, 'alice receive')
      t.equal(got.channel, '/chat/demo')
      t.same(got.data, { user: 'bob', chat: 'hello' })
      const own = await withDeadline(bob.receive(), 5000, 'bob receive')
      t.same(own.data, { user: 'bob', chat: 'hello' }, 'the publisher gets its own message too')
    })

    t.test('wildcards and listeners', async (t) => {
      // Separate subscribers: cometd-nodejs-server delivers a message once per matching subscription of a session.
      const sub = client(t, peer.url, tc.type)
      const sub2 = client(t, peer.url, tc.type)
      const pub = client(t, peer.url, tc.type)
      await Promise.all([sub.open(), sub2.open(), pub.open()])
      const one = collector<Message>()
      const deep = collector<Message>()
      await sub.subscribe('/w/*', one.push)
      await sub2.subscribe('/w/**', deep.push)
      await pub.publish('/w/a', 1)
      await pub.publish('/w/a/b', 2)
      await deep.waitForCount(2)
      await one.waitForCount(1)
      t.same(one.items.map((m) => m.data), [1], '/w/* matches one segment only')
      t.same(deep.items.map((m) => m.data).sort(), [1, 2], '/w/** matches any depth')
      t.equal(sub.pendingCount, 0, 'listener subscriptions do not fill the receive buffer')
    })

    t.test('unsubscribe stops delivery', async (t) => {
      const sub = client(t, peer.url, tc.type)
      const pub = client(t, peer.url, tc.type)
      await sub.open()
      await pub.open()
      const got = collector<Message>()
      await sub.subscribe('/u/x', got.push)
      await pub.publish('/u/x', 'before')
      await got.waitForCount(1)
      await sub.unsubscribe('/u/x', got.push)
      t.same([...sub.subscriptions], [])
      await pub.publish('/u/x', 'after')
      // A marker on another channel proves the 'after' message had its chance to arrive.
      const marker = collector<Message>()
      await sub.subscribe('/u/marker', marker.push)
      await pub.publish('/u/marker', 'm')
      await marker.waitForCount(1)
      t.same(got.items.map((m) => m.data), ['before'])
      await t.rejects(sub.unsubscribe('/u/x'), ClientError, 'unsubscribing twice is an error')
    })

    t.test('invalid channels and meta publish are refused client-side', async (t) => {
      const sent: string[] = []
      class Spy extends Extension {
        override async outgoing (payload: Payload): Promise<void> { for (const m of payload) sent.push(m.channel) }
      }
      const c = client(t, peer.url, tc.type, { extensions: [new Spy()] })
      await c.open()
      const out = sent.filter((ch) => ch !== '/meta/connect').length
      await t.rejects(c.publish('/meta/connect', {}), ClientError)
      await t.rejects(c.publish('/a/*', {}), ClientError, 'no publish to a pattern')
      await t.rejects(c.subscribe('no-slash'), ClientError)
      await t.rejects(c.subscribe('/a//b'), ClientError)
      await t.rejects(c.subscribe('/a/**/b'), ClientError)
      await t.rejects(c.subscribe('/meta/handshake'), ClientError)
      t.equal(sent.filter((ch) => ch !== '/meta/connect').length, out, 'nothing was sent')
      const cyclic: Record<string, unknown> = {}
      cyclic.self = cyclic
      await t.rejects(c.publish('/ok/x', cyclic), MessageEncodingError, 'data that cannot be serialized fails alone')
      let deep: unknown = 1
      for (let i = 0; i < 20_000; i++) deep = [deep]
      await t.rejects(c.publish('/ok/x', deep), MessageEncodingError, 'so does data nested deeper than the stack')
      t.equal((await c.publish('/ok/x', 'fine')).successful, true, 'the client goes on')
    })

    if (tc.services) {
      t.test('remoteCall request/reply and its timeout', async (t) => {
        const c = client(t, peer.url, tc.type)
        await c.open()
        t.same(await c.remoteCall('/service/echo', { q: 42 }), { q: 42 })
        t.same(await c.remoteCall('echo', 'short name'), 'short name')
        const results = await Promise.all([1, 2, 3].map(async (n) => await c.remoteCall('/service/echo', n)))
        t.same(results, [1, 2, 3], 'concurrent calls are matched by id')
        const started = Date.now()
        await t.rejects(c.remoteCall('/service/slow', {}, { timeoutMs: 300 }), TransportTimeoutError)
        t.ok(Date.now() - started < 5000)
        t.same(await c.remoteCall('/service/echo', 'still fine'), 'still fine')
      })

      t.test('ServerError from a security policy', async (t) => {
        const c = client(t, peer.url, tc.type)
        await c.open()
        const err = await c.subscribe('/forbidden/x').then(() => null, (e: unknown) => e)
        t.type(err, ServerError)
        const se = err as ServerError
        t.equal(se.errorCode, 403)
        t.equal(se.response?.channel, '/meta/subscribe')
        t.same([...c.requestedSubscriptions], [], 'a refused subscription is not kept')
        const perr = await c.publish('/forbidden/x', 1).then(() => null, (e: unknown) => e) as ServerError
        t.type(perr, ServerError)
        t.equal(perr.errorCode, 403)
        t.match(perr.error, /publish_denied/)
      })
    }

    t.test('slow consumer: the buffer is bounded, the connection keeps flowing', async (t) => {
      const c = client(t, peer.url, tc.type, { maxPendingCount: 5 })
      const pub = client(t, peer.url, tc.type)
      await c.open()
      await pub.open()
      await c.subscribe('/slow/q')
      let overflows = 0
      c.on('overflow', () => { overflows++ })
      for (let i = 0; i < 20; i++) await pub.publish('/slow/q', i)
      await waitFor(() => c.stats.messagesIn > 0 && c.pendingCount === 5 && c.stats.dropped === 15, { timeoutMs: 5000, message: () => `pending ${c.pendingCount} dropped ${c.stats.dropped}` })
      t.equal(overflows, 15, 'every drop is reported')
      // publish from the consuming task while the buffer is full: no deadlock, and its echo pushes out one more
      await c.publish('/slow/q', 'mine')
      await waitFor(() => c.stats.dropped === 16, { timeoutMs: 5000 })
      const got: unknown[] = []
      for (let i = 0; i < 5; i++) got.push((await c.receive()).data)
      t.same(got, [16, 17, 18, 19, 'mine'], 'the five newest are kept, the oldest dropped')
      t.equal(c.pendingCount, 0)
    })

    t.test('server restart on the same port: reconnect, resubscribe, later messages arrive', async (t) => {
      const c = client(t, peer.url, tc.type, { connectionTimeoutMs: null })
      await c.open()
      const got = collector<Message>()
      await c.subscribe('/restart/x', got.push)
      const handshakes = collector<boolean>()
      c.on('handshake', (e) => handshakes.push(e.rehandshake))
      await peer.stop()
      await waitFor(() => c.state !== 'connected', { timeoutMs: 20_000, message: () => `state ${c.state}` })
      const back = Date.now()
      await peer.start()
      await handshakes.waitForCount(1, { timeoutMs: 15_000 })
      await waitFor(() => c.subscriptions.has('/restart/x'), { timeoutMs: 10_000 })
      const resubscribedMs = Date.now() - back
      t.comment(`resubscribed ${resubscribedMs} ms after the server came back`)
      t.equal(handshakes.items[0], true, 'reported as a re-handshake')
      await peer.publish('/restart/x', 'after restart')
      await got.waitForCount(1, { timeoutMs: 5000 })
      t.same(got.items[0]?.data, 'after restart')
      t.ok(c.stats.reconnects >= 1, 'reconnect counted')
      t.equal(c.state, 'connected')
    })

    t.test('server down: receive() rejects with TransportTimeoutError, a later receive() succeeds', async (t) => {
      const c = client(t, peer.url, tc.type, { connectionTimeoutMs: 1000 })
      await c.open()
      await c.subscribe('/down/x')
      await peer.stop()
      const started = Date.now()
      const err = await withDeadline(c.receive().then(() => null, (e: unknown) => e), 30_000, 'receive')
      t.type(err, TransportTimeoutError)
      t.comment(`receive() gave up after ${Date.now() - started} ms`)
      t.notOk(c.closed, 'the client is not closed by the timeout')
      await peer.start()
      await waitFor(() => c.subscriptions.has('/down/x') && c.state === 'connected', { timeoutMs: 15_000 })
      await peer.publish('/down/x', 'back')
      const msg = await withDeadline(c.receive(), 5000, 'receive after recovery')
      t.same(msg.data, 'back')
    })

    t.test('lifecycle: close is idempotent, a closed client can be reopened', async (t) => {
      const c = client(t, peer.url, tc.type)
      await c.open()
      await t.rejects(c.open(), ClientInvalidOperation)
      const first = c.clientId
      await Promise.all([c.close(), c.close()])
      await c.close()
      t.ok(c.closed)
      t.equal(c.state, 'disconnected')
      await t.rejects(c.publish('/x/y', 1), ClientInvalidOperation)
      await t.rejects(c.receive(), ClientInvalidOperation)
      await c.open()
      t.not(c.clientId, first, 'a new session')
      await c.subscribe('/again/x')
      await c.publish('/again/x', 'ok')
      t.same((await withDeadline(c.receive(), 5000, 'receive')).data, 'ok')
      const seen: unknown[] = []
      await c.close()
      for await (const m of c) seen.push(m)
      t.same(seen, [], 'iteration ends on a closed, drained client')
    })
  })
}
