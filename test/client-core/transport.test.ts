/**
 * Transport-level behaviour against real peers: negotiation and fallback, TLS with a self-signed certificate,
 * cookies (cometd-nodejs-server binds sessions to BAYEUX_BROWSER), interop with the official CometD client,
 * and that the process exits by itself after close().
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { Client, ClientError, TransportError } from '../../client-core/index.js'
import type { ConnectionType, Message } from '../../client-core/index.js'
import { startFaye } from '../helpers/faye.js'
import { startCometd } from '../helpers/cometd-server.js'
import { selfSignedCert } from '../helpers/tls.js'
import { createOfficialClient } from '../helpers/official-client.js'
import { collector, withDeadline } from '../helpers/wait.js'
import { X509Certificate } from 'node:crypto'

t.test('negotiation: websocket first, long-polling when the upgrade fails', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const cometd = await startCometd({ options: { timeout: 5000 } })
  t.teardown(cometd.close)

  const a = new Client(faye.url)
  t.teardown(async () => await a.close())
  await a.open()
  t.equal(a.connectionType, 'websocket', 'faye: websocket by default')

  const b = new Client(cometd.url)
  t.teardown(async () => await b.close())
  await b.open()
  t.equal(b.connectionType, 'long-polling', 'cometd-nodejs-server refuses the upgrade: long-polling')
  await b.subscribe('/n/x')
  await b.publish('/n/x', 1)
  t.same((await withDeadline(b.receive(), 5000, 'receive')).data, 1)

  const c = new Client(cometd.url, { connectionTypes: 'websocket' })
  t.teardown(async () => await c.close())
  await t.rejects(c.open(), ClientError, 'a single type means that type or ClientError')
  t.ok(c.closed)
  t.equal(c.state, 'disconnected', 'a failed open() cleans up')

  const d = new Client(faye.url, { connectionTypes: ['long-polling', 'websocket'] })
  t.teardown(async () => await d.close())
  await d.open()
  t.equal(d.connectionType, 'long-polling', 'the caller\'s order is the preference order')
})

t.test('cookies: a per-client jar keeps cometd-nodejs-server sessions apart', async (t) => {
  const cometd = await startCometd({ options: { timeout: 3000 } })
  t.teardown(cometd.close)
  const clients = [new Client(cometd.url), new Client(cometd.url)]
  for (const c of clients) t.teardown(async () => await c.close())
  await Promise.all(clients.map(async (c) => await c.open()))
  const got = collector<Message>()
  await clients[0]!.subscribe('/cookie/x', got.push)
  const started = Date.now()
  await clients[1]!.publish('/cookie/x', 'hi')
  await got.waitForCount(1, { timeoutMs: 5000 })
  const ms = Date.now() - started
  t.comment(`delivery with two held connects from one process: ${ms} ms`)
  t.ok(ms < 1500, 'no multiple-clients penalty (it would add up to 2 s)')
  t.equal(clients[0]!.advice.interval, 0, 'no multiple-clients interval advised')
})

for (const type of ['websocket', 'long-polling'] as ConnectionType[]) {
  t.test(`TLS with a self-signed certificate (${type})`, async (t) => {
    const cert = await selfSignedCert()
    const faye = await startFaye({ timeoutSec: 5, tls: cert })
    t.teardown(faye.close)
    t.match(faye.url, /^https:/)

    const untrusted = new Client(faye.url, { connectionTypes: type })
    t.teardown(async () => await untrusted.close())
    const err = await untrusted.open().then(() => null, (e: unknown) => e)
    t.type(err, TransportError, 'an unknown CA is refused')

    const trusted = new Client(faye.url, { connectionTypes: type, tls: { ca: cert.cert } })
    t.teardown(async () => await trusted.close())
    await trusted.open()
    await trusted.subscribe('/tls/x')
    await trusted.publish('/tls/x', 'secure')
    t.same((await withDeadline(trusted.receive(), 5000, 'receive')).data, 'secure')

    const fingerprint = new X509Certificate(cert.cert).fingerprint256
    const pinned = new Client(faye.url, { connectionTypes: type, tls: { fingerprint256: fingerprint } })
    t.teardown(async () => await pinned.close())
    await pinned.open()
    t.equal(pinned.state, 'connected', 'a pinned fingerprint is enough')

    const wrong = new Client(faye.url, { connectionTypes: type, tls: { fingerprint256: 'AA:'.repeat(31) + 'AA' } })
    t.teardown(async () => await wrong.close())
    await t.rejects(wrong.open(), TransportError, 'a wrong pin is refused')
  })
}

t.test('interop with the official CometD client, both directions', async (t) => {
  const peers = [
    { name: 'faye websocket', peer: await startFaye({ timeoutSec: 5 }), type: 'websocket' as const },
    { name: 'cometd-nodejs-server long-polling', peer: await startCometd({ options: { timeout: 5000 } }), type: 'long-polling' as const }
  ]
  for (const { name, peer, type } of peers) {
    t.teardown(peer.close)
    t.test(name, async (t) => {
      const official = createOfficialClient(peer.url, { transport: type })
      t.teardown(official.disconnect)
      await official.handshake()
      const ours = new Client(peer.url, { connectionTypes: type })
      t.teardown(async () => await ours.close())
      await ours.open()

      const toOfficial = collector<{ data?: unknown }>()
      await official.subscribe('/interop/to-official', (m) => toOfficial.push(m))
      await ours.publish('/interop/to-official', { from: 'ours' })
      await toOfficial.waitForCount(1, { timeoutMs: 5000 })
      t.same(toOfficial.items[0]?.data, { from: 'ours' })

      const toOurs = collector<Message>()
      await ours.subscribe('/interop/to-ours', toOurs.push)
      const reply = await official.publish('/interop/to-ours', { from: 'official' })
      t.equal(reply.successful, true)
      await toOurs.waitForCount(1, { timeoutMs: 5000 })
      t.same(toOurs.items[0]?.data, { from: 'official' })
    })
  }
})

t.test('after close() the process exits by itself (no leaked handles)', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const script = fileURLToPath(new URL('./fixtures/open-close.ts', import.meta.url))
  const loader = fileURLToPath(new URL('../../node_modules/@tapjs/typescript/dist/esm/import.mjs', import.meta.url))
  for (const type of ['websocket', 'long-polling']) {
    const started = Date.now()
    const child = spawn(process.execPath, ['--import', loader, script, faye.url, type], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { output += d.toString() })
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000)
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve))
    clearTimeout(timer)
    t.equal(code, 0, `${type}: exited with 0 (${output.trim()})`)
    t.match(output, /closed/)
    t.comment(`${type}: child ran and exited in ${Date.now() - started} ms`)
  }
})
