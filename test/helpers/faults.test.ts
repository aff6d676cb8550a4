/**
 * Proves the fault helpers: the TCP fault proxy (against a TCP echo server, faye and the official
 * client) and the scripted fakes (HTTP and websocket). Every test tears down what it started; the
 * file must exit by itself.
 */
import t, { type Test } from 'tap'
import net from 'node:net'
import { WebSocket } from 'ws'
import { happyPath, startScriptedFake, startScriptedFakeWs } from './fake-bayeux.js'
import { startFaultProxy } from './fault-proxy.js'
import { startFaye } from './faye.js'
import { createOfficialClient, OfficialClientError } from './official-client.js'
import { collector, waitFor, withDeadline } from './wait.js'

const HANDSHAKE = { channel: '/meta/handshake', id: '1', version: '1.0', supportedConnectionTypes: ['long-polling'] }

async function postJson(url: string, body: unknown): Promise<Array<Record<string, unknown>>> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(5000) })
  return (await res.json()) as Array<Record<string, unknown>>
}

t.test('official-client - a handshake to a closed port rejects and disconnect() stops the retries', async (t) => {
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: 9 })
  await proxy.refuse(true, 'close')
  t.teardown(proxy.close)
  const client = createOfficialClient(proxy.url('/cometd'), { transport: 'long-polling', timeoutMs: 2000 })
  t.teardown(client.disconnect)
  await t.rejects(client.handshake(), OfficialClientError)
  await client.disconnect()
  t.equal(client.cometd.getStatus(), 'disconnected')
})

async function startTcpEcho(t: Test): Promise<number> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((s) => {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
    s.on('error', () => undefined)
    s.pipe(s)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => {
    for (const s of sockets) s.destroy()
    server.close(() => resolve())
  }))
  return (server.address() as net.AddressInfo).port
}

function connectRaw(t: Test, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => resolve(s))
    s.once('error', reject)
    t.teardown(() => s.destroy())
  })
}

function readOnce(s: net.Socket, ms: number): Promise<string | null> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => { s.off('data', onData); resolve(null) }, ms)
    const onData = (d: Buffer): void => { clearTimeout(timer); resolve(d.toString()) }
    s.once('data', onData)
  })
}

t.test('fault-proxy - forwards, cuts, stalls, delays and refuses', async (t) => {
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: await startTcpEcho(t) })
  t.teardown(proxy.close)

  const s1 = await connectRaw(t, proxy.port)
  s1.write('ping')
  t.equal(await readOnce(s1, 2000), 'ping', 'forwards both ways')
  await waitFor(() => proxy.connections === 1)

  proxy.stall(true)
  s1.write('lost')
  t.equal(await readOnce(s1, 300), null, 'stalled: nothing comes back')
  t.equal(s1.destroyed, false, 'stalled: the link stays open')
  t.ok(proxy.stats.droppedBytes >= 4, 'stalled bytes are dropped')
  proxy.stall(false)
  s1.write('back')
  t.equal(await readOnce(s1, 2000), 'back')

  proxy.latency(150)
  const t0 = Date.now()
  s1.write('slow')
  t.equal(await readOnce(s1, 2000), 'slow')
  t.ok(Date.now() - t0 >= 290, `latency applies in both directions (${Date.now() - t0} ms)`)
  proxy.latency(0)

  const closed = new Promise<void>((resolve) => s1.once('close', () => resolve()))
  proxy.cut()
  await withDeadline(closed, 2000, 'client socket close after cut()')
  t.equal(proxy.connections, 0)

  await proxy.refuse(true)
  const s2 = net.connect(proxy.port, '127.0.0.1')
  t.teardown(() => s2.destroy())
  const err = await withDeadline(new Promise<NodeJS.ErrnoException>((resolve) => s2.once('error', resolve)), 2000, 'reset')
  t.equal(err.code, 'ECONNRESET')
  await proxy.refuse(true, 'close')
  await t.rejects(connectRaw(t, proxy.port), { code: 'ECONNREFUSED' })
  await proxy.refuse(false)
  const s3 = await connectRaw(t, proxy.port)
  s3.write('again')
  t.equal(await readOnce(s3, 2000), 'again', 'reopened on the same port')
})

t.test('fault-proxy - official client reaches faye through the proxy', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: faye.port })
  t.teardown(proxy.close)
  const client = createOfficialClient(proxy.url('/cometd'), { transport: 'websocket' })
  t.teardown(client.disconnect)
  await client.handshake()
  t.ok(proxy.stats.bytesDown > 0)
})

t.test('fake-bayeux - scripted HTTP replies, malformed JSON and cut sockets', async (t) => {
  const fake = await startScriptedFake((messages, req) => {
    if (req.index === 0) return { body: happyPath(messages, { clientId: 'c1' }) }
    if (req.index === 1) return { body: '[{"channel":', status: 200 }
    if (req.index === 2) return { status: 503, body: 'busy' }
    return { destroy: true, delayMs: 20 }
  })
  t.teardown(fake.close)
  const hs = await postJson(fake.url, [HANDSHAKE])
  t.match(hs, [{ id: '1', channel: '/meta/handshake', successful: true, clientId: 'c1' }])
  t.equal(await (await fetch(fake.url, { method: 'POST', body: '[]' })).text(), '[{"channel":')
  t.equal((await fetch(fake.url + '/connect', { method: 'POST', body: 'not json' })).status, 503)
  t.equal(fake.requests[2]?.malformed, true)
  await t.rejects(fetch(fake.url, { method: 'POST', body: '[]' }))
  t.equal(fake.requests.length, 4)
})

t.test('fake-bayeux - websocket script sends arbitrary frames and terminates', async (t) => {
  const fake = await startScriptedFakeWs((messages, ctx) => {
    if (messages[0]?.channel === '/meta/handshake') {
      ctx.send(happyPath(messages))
      ctx.send('{not json')
    } else {
      ctx.terminate()
    }
  })
  t.teardown(fake.close)
  const ws = new WebSocket(fake.wsUrl)
  t.teardown(() => ws.terminate())
  const frames = collector<string>()
  ws.on('message', (d) => frames.push(d.toString()))
  const closed = new Promise<number>((resolve) => ws.once('close', (code) => resolve(code)))
  await withDeadline(new Promise((resolve) => ws.once('open', resolve)), 2000, 'ws open')
  ws.send(JSON.stringify([HANDSHAKE]))
  const [first, second] = await frames.waitForCount(2)
  t.match(JSON.parse(first ?? ''), [{ channel: '/meta/handshake', successful: true }])
  t.equal(second, '{not json')
  ws.send(JSON.stringify([{ channel: '/meta/connect', id: '2' }]))
  t.equal(await withDeadline(closed, 2000, 'ws close'), 1006, 'terminated without a close frame')
  t.equal(fake.frames.length, 2)
})
