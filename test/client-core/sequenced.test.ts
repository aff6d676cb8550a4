/**
 * Publish order over long-polling against real faye and cometd-nodejs-server, with publishes made while batches are
 * under way: several batches, one on the wire at a time — a request carrying publishes reaches the server only once
 * the one before it was answered (concurrent requests on separate connections are processed in whatever order their
 * bodies complete: the faye client, which sends them so, gets hundreds of messages reordered in the bench) — and every
 * message delivered once, in publish order.
 *
 * A recording front (node:http, no fault: it only forwards) sits between the publisher and the server and notes, for
 * every request carrying publishes, whether the one before it had been answered when it arrived.
 */
import t from 'tap'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Client } from '../../client-core/index.js'
import type { Message } from '../../client-core/index.js'
import { startCometd } from '../helpers/cometd-server.js'
import { startFaye } from '../helpers/faye.js'
import { collector } from '../helpers/wait.js'
import { forwardRequest } from '../helpers/forward.js'

interface Front { url: string, publishBodies: number, overlapped: number, close: () => Promise<void> }

/** Forwards everything to `target`; counts publish requests that arrived before the previous one was answered. */
async function startRecordingFront (target: string): Promise<Front> {
  const upstream = new URL(target)
  let previousAnswered = true
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks)
      let messages: Message[] = []
      try { messages = JSON.parse(body.toString('utf8')) as Message[] } catch {}
      const publishes = messages.some((m) => !m.channel.startsWith('/meta/'))
      if (publishes) {
        front.publishBodies++
        if (!previousAnswered) front.overlapped++
        previousAnswered = false
      }
      forwardRequest(upstream, req, body, res, () => { if (publishes) previousAnswered = true })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  const front: Front = {
    url: `http://127.0.0.1:${port}${upstream.pathname}`,
    publishBodies: 0,
    overlapped: 0,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
  return front
}

const peers = [
  { name: 'faye', start: async () => { const p = await startFaye({ timeoutSec: 10 }); return { url: p.url, close: p.close } } },
  { name: 'cometd-nodejs-server', start: async () => { const p = await startCometd(); return { url: p.url, close: p.close } } }
]

for (const peer of peers) {
  t.test(`${peer.name}: bursts of publishes go in several batches, one on the wire at a time, delivered in order`, async (t) => {
    const server = await peer.start()
    t.teardown(server.close)
    const front = await startRecordingFront(server.url)
    t.teardown(front.close)
    const sub = new Client(server.url, { connectionTypes: 'long-polling' })
    t.teardown(async () => await sub.close())
    await sub.open()
    const got = collector<Message>()
    await sub.subscribe('/seq/data', got.push)
    const pub = new Client(front.url, { connectionTypes: 'long-polling', maxBatchMessages: 200 })
    t.teardown(async () => await pub.close())
    await pub.open()
    const n = 3_000
    // Publishes made while batches are under way: the queue refills as replies come back.
    let next = 0
    const publishOne = async (): Promise<void> => {
      while (next < n) {
        const i = next++
        const reply = await pub.publish('/seq/data', { i })
        if (reply.successful !== true) throw new Error(`publish ${i} refused`)
      }
    }
    await Promise.all(Array.from({ length: 500 }, publishOne))
    await got.waitForCount(n, { timeoutMs: 20_000 })
    const order = got.items.map((m) => (m.data as { i: number }).i)
    t.same(order, Array.from({ length: n }, (_, i) => i), `${n} publishes delivered once each, in publish order`)
    t.ok(front.publishBodies >= n / 200, `${front.publishBodies} publish requests`)
    t.equal(front.overlapped, 0, 'no publish request reached the server before the one before it was answered')
  })
}
