/**
 * Batching over long-polling against a real cometd-nodejs-server: the batch caps (maxBatchMessages,
 * maxBatchBytes), a body limit (HTTP 413, as Salesforce answers above 32,768 bytes) met by splitting and resending
 * the same messages in order, a message too large on its own, and an unserializable message failing alone.
 *
 * The body limit is a named fault server: a node:http front that reads each request body and answers 413 when it
 * is over the limit (the server behind never sees it), and otherwise forwards the request to the real server.
 */
import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client, ClientError, MessageEncodingError, MessageTooLargeError, TransportTimeoutError } from '../../client-core/index.js'
import type { Logger, Message } from '../../client-core/index.js'
import { startCometd } from '../helpers/cometd-server.js'
import { collector } from '../helpers/wait.js'
import { forwardRequest } from '../helpers/forward.js'

interface Forwarded { channel: string, id?: string }

/** A body-limit front for `target` (http://127.0.0.1:port): 413 over `limit` bytes, else forwarded. */
async function startBodyLimit (target: string, limit: number): Promise<{
  url: (path: string) => string
  rejected: number[]
  /** the non-meta messages forwarded to the server, in order, and the size of every forwarded body */
  forwarded: Forwarded[]
  bodies: number[]
  /** while true, requests without /meta/ messages are held unanswered */
  stall: boolean
  close: () => Promise<void>
}> {
  const upstream = new URL(target)
  const rejected: number[] = []
  const forwarded: Forwarded[] = []
  const bodies: number[] = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      if (body.length > limit) {
        rejected.push(body.length)
        res.writeHead(413, { 'content-type': 'text/plain', connection: 'close' }).end('Request Entity Too Large')
        return
      }
      let messages: Message[] = []
      try { messages = JSON.parse(body.toString('utf8')) as Message[] } catch {}
      if (front.stall && messages.every((m) => !m.channel.startsWith('/meta/'))) return
      bodies.push(body.length)
      for (const m of messages) {
        if (!m.channel.startsWith('/meta/')) forwarded.push({ channel: m.channel, id: m.id })
      }
      forwardRequest(upstream, req, body, res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const front = {
    url: (path: string) => `http://127.0.0.1:${port}${path}`,
    rejected,
    forwarded,
    bodies,
    stall: false,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  return front
}

function capturingLogger (): { logger: Logger, warnings: string[] } {
  const warnings: string[] = []
  const noop = (): void => {}
  return { warnings, logger: { trace: noop, debug: noop, info: noop, error: noop, warn: (_obj: unknown, msg?: string) => { warnings.push(msg ?? '') } } }
}

t.test('options are checked', async (t) => {
  t.throws(() => new Client('http://127.0.0.1:1/cometd', { maxBatchMessages: 0 }), ClientError)
  t.throws(() => new Client('http://127.0.0.1:1/cometd', { maxBatchBytes: 1.5 }), ClientError)
  t.throws(() => new Client('http://127.0.0.1:1/cometd', { maxBatchBytes: -1 }), ClientError)
})

t.test('against cometd-nodejs-server', async (t) => {
  const cometd = await startCometd()
  t.teardown(cometd.close)
  const origin = new URL(cometd.url).origin

  t.test('maxBatchMessages and maxBatchBytes cut the batches, order kept', async (t) => {
    const front = await startBodyLimit(origin, 10 * 1024 * 1024)
    t.teardown(front.close)
    const sub = new Client(cometd.url, { connectionTypes: 'long-polling' })
    t.teardown(async () => await sub.close())
    await sub.open()
    const got = collector<Message>()
    await sub.subscribe('/batch/caps', got.push)
    const c = new Client(front.url('/cometd'), { connectionTypes: 'long-polling', maxBatchMessages: 7, maxBatchBytes: 2_000 })
    t.teardown(async () => await c.close())
    await c.open()
    const results = await Promise.all(Array.from({ length: 60 }, async (_, i) => await c.publish('/batch/caps', { i, pad: 'x'.repeat(i % 3 === 0 ? 150 : 20) })))
    t.ok(results.every((r) => r.successful === true), 'every publish acknowledged')
    await got.waitForCount(60, { timeoutMs: 10_000 })
    t.same(got.items.map((m) => (m.data as { i: number }).i), Array.from({ length: 60 }, (_, i) => i), 'delivered in order')
    const ids = front.forwarded.map((f) => Number(f.id))
    t.same(ids, [...ids].sort((a, b) => a - b), 'sent in order')
    t.ok(front.bodies.every((b) => b <= 2_000), `every body within 2,000 bytes (largest ${Math.max(...front.bodies)})`)
    t.ok(front.bodies.length >= 60 / 7, `${front.bodies.length} requests`)
  })

  t.test('HTTP 413: the batch is split and sent again, same ids, in order, logged once', async (t) => {
    const front = await startBodyLimit(origin, 32_768)
    t.teardown(front.close)
    const sub = new Client(cometd.url, { connectionTypes: 'long-polling' })
    t.teardown(async () => await sub.close())
    await sub.open()
    const got = collector<Message>()
    await sub.subscribe('/batch/limit', got.push)
    const { logger, warnings } = capturingLogger()
    const c = new Client(front.url('/cometd'), { connectionTypes: 'long-polling', logger })
    t.teardown(async () => await c.close())
    await c.open()
    const n = 400
    const pad = 'y'.repeat(1_000)
    const results = await Promise.all(Array.from({ length: n }, async (_, i) => await c.publish('/batch/limit', { i, pad })))
    t.ok(results.every((r) => r.successful === true), 'every publish acknowledged')
    t.ok(front.rejected.length >= 1, `the server refused ${front.rejected.length} bodies (${front.rejected.join(', ')} bytes)`)
    await got.waitForCount(n, { timeoutMs: 15_000 })
    t.same(got.items.map((m) => (m.data as { i: number }).i), Array.from({ length: n }, (_, i) => i), 'each delivered once, in order')
    const ids = front.forwarded.map((f) => f.id)
    t.equal(new Set(ids).size, n, 'each message reached the server once')
    t.same(ids.map(Number), [...ids].map(Number).sort((a, b) => a - b), 'in the order of their ids')
    t.equal(warnings.filter((w) => /413/.test(w)).length, 1, 'logged once')
    // The cap learnt holds: the next burst goes through without a refusal.
    const refusals = front.rejected.length
    await Promise.all(Array.from({ length: n }, async (_, i) => await c.publish('/batch/limit', { i: n + i, pad })))
    t.equal(front.rejected.length, refusals, 'no new 413 once the cap is learnt')
    await got.waitForCount(2 * n, { timeoutMs: 15_000 })
    t.equal(warnings.filter((w) => /413/.test(w)).length, 1, 'still logged once')
  })

  t.test('a message too large on its own fails alone with MessageTooLargeError', async (t) => {
    const front = await startBodyLimit(origin, 32_768)
    t.teardown(front.close)
    const c = new Client(front.url('/cometd'), { connectionTypes: 'long-polling' })
    t.teardown(async () => await c.close())
    await c.open()
    const [before, big, after] = await Promise.allSettled([
      c.publish('/batch/big', 'small 1'),
      c.publish('/batch/big', 'z'.repeat(40_000)),
      c.publish('/batch/big', 'small 2')
    ])
    t.equal(before.status, 'fulfilled')
    t.equal(after.status, 'fulfilled')
    t.equal(big.status, 'rejected')
    if (big.status === 'rejected') {
      t.ok(big.reason instanceof MessageTooLargeError, 'MessageTooLargeError')
      t.equal((big.reason as MessageTooLargeError).code, 'COMETD_MESSAGE_TOO_LARGE')
    }
    t.same(front.forwarded.map((f) => f.channel).length, 2, 'the large message never reached the server')
    t.equal((await c.publish('/batch/big', 'later')).successful, true, 'the client goes on')
  })

  t.test('deadlines: a shorter one set later fires first; the client recovers', async (t) => {
    const front = await startBodyLimit(origin, 1024 * 1024)
    t.teardown(front.close)
    const c = new Client(front.url('/cometd'), { connectionTypes: 'long-polling' })
    t.teardown(async () => await c.close())
    await c.open()
    front.stall = true
    const order: string[] = []
    const started = Date.now()
    const long = c.publish('/batch/deadline', 1, { timeoutMs: 3_000 }).catch((error: unknown) => { order.push('long'); throw error })
    await new Promise((resolve) => setTimeout(resolve, 100))
    const short = c.publish('/batch/deadline', 2, { timeoutMs: 400 }).catch((error: unknown) => { order.push('short'); throw error })
    await t.rejects(short, TransportTimeoutError, 'the queued message times out')
    t.ok(Date.now() - started < 2_500, `short deadline after ${Date.now() - started} ms`)
    await t.rejects(long, TransportTimeoutError, 'the stalled request times out')
    t.same(order, ['short', 'long'])
    front.stall = false
    t.equal((await c.publish('/batch/deadline', 3)).successful, true, 'the client goes on (fresh connection)')
  })

  t.test('an unserializable message in a batch fails alone; the others go', async (t) => {
    const sub = new Client(cometd.url, { connectionTypes: 'long-polling' })
    t.teardown(async () => await sub.close())
    await sub.open()
    const got = collector<Message>()
    await sub.subscribe('/batch/enc', got.push)
    const c = new Client(cometd.url, { connectionTypes: 'long-polling' })
    t.teardown(async () => await c.close())
    await c.open()
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    const settled = await Promise.allSettled([
      c.publish('/batch/enc', 1),
      c.publish('/batch/enc', cyclic),
      c.publish('/batch/enc', 10n),
      c.publish('/batch/enc', 2)
    ])
    t.same(settled.map((s) => s.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled'])
    for (const s of settled) if (s.status === 'rejected') t.ok(s.reason instanceof MessageEncodingError, 'MessageEncodingError')
    await got.waitForCount(2, { timeoutMs: 5_000 })
    t.same(got.items.map((m) => m.data), [1, 2])
  })
})
