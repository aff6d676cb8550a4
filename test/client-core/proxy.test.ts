/**
 * Upstream through an HTTP proxy: a CONNECT proxy from the test helpers (it counts its tunnels) in front of a real
 * faye, for both transports — an explicit `proxy` URL with credentials, `proxy: 'env'` (HTTP_PROXY / HTTPS_PROXY,
 * NO_PROXY bypass), TLS to the upstream inside the tunnel (CA check and pinning), a proxy that refuses or is not
 * there (ProxyError), and the option's validation. Nothing here lets a proxy password into a message.
 */
import { X509Certificate } from 'node:crypto'
import { inspect } from 'node:util'
import t from 'tap'
import type { Test } from 'tap'
import { Client, ClientError, ProxyError } from '../../client-core/index.js'
import type { ConnectionType, Message } from '../../client-core/index.js'
import { bypassesProxy, proxyFor } from '../../client-core/proxy.js'
import { startConnectProxy } from '../helpers/connect-proxy.js'
import { startFaye } from '../helpers/faye.js'
import { selfSignedCert } from '../helpers/tls.js'
import { collector } from '../helpers/wait.js'

const TYPES: ConnectionType[] = ['websocket', 'long-polling']

/** open, subscribe, a server-side publish received: the whole session works over whatever path it took */
async function roundTrip (t: Test, client: Client, faye: { publish: (c: string, d: unknown) => Promise<void> }): Promise<void> {
  t.teardown(async () => await client.close())
  await client.open()
  const got = collector<Message>()
  await client.subscribe('/proxy/x', got.push)
  await faye.publish('/proxy/x', { n: 1 })
  const [message] = await got.waitForCount(1, { timeoutMs: 10_000 })
  t.same(message?.data, { n: 1 }, 'a message delivered')
}

for (const type of TYPES) {
  t.test(`proxy - ${type} through an explicit proxy URL with credentials`, async (t) => {
    const faye = await startFaye({ timeoutSec: 5 })
    t.teardown(faye.close)
    const proxy = await startConnectProxy({ user: 'bridge', password: 'p@ss:word' })
    t.teardown(proxy.close)
    const client = new Client(faye.url, { connectionTypes: type, proxy: `http://bridge:${encodeURIComponent('p@ss:word')}@127.0.0.1:${proxy.port}` })
    await roundTrip(t, client, faye)
    t.equal(client.connectionType, type)
    t.ok(proxy.tunnels >= 1, `${proxy.tunnels} tunnel(s) through the proxy`)
    t.same([...new Set(proxy.targets)], [`127.0.0.1:${faye.port}`], 'every tunnel to the upstream')
    t.same([...new Set(proxy.authorizations)], [`Basic ${Buffer.from('bridge:p@ss:word').toString('base64')}`], 'the URL\'s credentials, decoded, as Basic')
  })

  t.test(`proxy - ${type}: TLS to the upstream inside the tunnel (CA, then a pin)`, async (t) => {
    const cert = await selfSignedCert()
    const faye = await startFaye({ timeoutSec: 5, tls: cert })
    t.teardown(faye.close)
    const proxy = await startConnectProxy()
    t.teardown(proxy.close)
    const url = faye.url.replace('127.0.0.1', 'localhost')
    await roundTrip(t, new Client(url, { connectionTypes: type, proxy: proxy.url, tls: { ca: cert.cert } }), faye)
    const fingerprint256 = new X509Certificate(cert.cert).fingerprint256
    await roundTrip(t, new Client(url, { connectionTypes: type, proxy: proxy.url, tls: { fingerprint256 } }), faye)
    const wrongPin = new Client(url, { connectionTypes: type, proxy: proxy.url, tls: { fingerprint256: '00'.repeat(32) } })
    t.teardown(async () => await wrongPin.close())
    await t.rejects(wrongPin.open(), /does not match the pinned one/, 'the pin is checked through the tunnel too')
    t.same([...new Set(proxy.targets)], [`localhost:${faye.port}`], 'tunnels named by host (SNI localhost)')
  })

  t.test(`proxy - ${type}: a proxy that refuses, or is not there, is a ProxyError`, async (t) => {
    const faye = await startFaye({ timeoutSec: 5 })
    t.teardown(faye.close)
    const proxy = await startConnectProxy({ user: 'bridge', password: 'right' })
    t.teardown(proxy.close)
    const wrong = new Client(faye.url, { connectionTypes: type, proxy: `http://bridge:hunter2-secret@127.0.0.1:${proxy.port}`, maxNetworkDelayMs: 2_000 })
    t.teardown(async () => await wrong.close())
    const refused = await wrong.open().then(() => null, (e: unknown) => e)
    t.type(refused, ProxyError)
    t.equal((refused as ProxyError).statusCode, 407)
    t.equal((refused as ProxyError).code, 'COMETD_PROXY')
    t.equal((refused as Error).message, `Proxy http://127.0.0.1:${proxy.port} refused the tunnel to 127.0.0.1:${faye.port}: HTTP 407`)
    t.notOk(inspect(refused, { depth: 8 }).includes('hunter2'), 'no password in the error (message, causes, properties)')

    const gone = await startConnectProxy()
    const port = gone.port
    await gone.close()
    const absent = new Client(faye.url, { connectionTypes: type, proxy: `http://127.0.0.1:${port}`, maxNetworkDelayMs: 2_000 })
    t.teardown(async () => await absent.close())
    const unreachable = await absent.open().then(() => null, (e: unknown) => e)
    t.type(unreachable, ProxyError)
    t.equal((unreachable as ProxyError).statusCode, null)
    t.match((unreachable as Error).message, /did not open a tunnel to 127\.0\.0\.1:\d+: ECONNREFUSED/)
  })
}

t.test('proxy - env: HTTP_PROXY for http upstreams, NO_PROXY bypass, nothing without proxy: "env"', async (t) => {
  const saved = { ...process.env }
  t.teardown(() => {
    for (const k of ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy']) {
      if (saved[k] === undefined) delete process.env[k]
      else process.env[k] = saved[k]
    }
  })
  for (const k of ['http_proxy', 'https_proxy', 'no_proxy', 'NO_PROXY']) delete process.env[k]
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const proxy = await startConnectProxy()
  t.teardown(proxy.close)
  process.env.HTTP_PROXY = proxy.url

  for (const type of TYPES) {
    const before = proxy.tunnels
    await roundTrip(t, new Client(faye.url, { connectionTypes: type, proxy: 'env' }), faye)
    t.ok(proxy.tunnels > before, `${type}: through HTTP_PROXY (${proxy.tunnels - before} tunnel(s))`)
  }
  let before = proxy.tunnels
  await roundTrip(t, new Client(faye.url), faye)
  t.equal(proxy.tunnels, before, 'the default is direct, whatever the environment says')

  process.env.NO_PROXY = `example.com, 127.0.0.1:${faye.port}`
  before = proxy.connects
  for (const type of TYPES) await roundTrip(t, new Client(faye.url, { connectionTypes: type, proxy: 'env' }), faye)
  t.equal(proxy.connects, before, 'NO_PROXY names the upstream: no CONNECT at all')

  process.env.NO_PROXY = ''
  process.env.HTTP_PROXY = 'ftp://u:hunter2@proxy'
  const bad = new Client(faye.url, { proxy: 'env' })
  t.teardown(async () => await bad.close())
  const err = await bad.open().then(() => null, (e: unknown) => e)
  t.type(err, ClientError)
  t.match((err as Error).message, /^HTTP_PROXY must be an http: or https: proxy URL/)
  t.notOk(inspect(err, { depth: 8 }).includes('hunter2'), 'no password in the error, its causes or properties')
})

t.test('proxy - which proxy a URL takes (undici\'s EnvHttpProxyAgent rules)', async (t) => {
  const env = { HTTP_PROXY: 'http://plain:3128', HTTPS_PROXY: 'http://secure:3128', NO_PROXY: '.internal.example, localhost:8080,10.0.0.1' }
  const via = (url: string, e: Record<string, string> = env): string | null => proxyFor('env', new URL(url), e)?.host ?? null
  t.equal(via('http://upstream.example/cometd'), 'plain:3128', 'http: HTTP_PROXY')
  t.equal(via('https://upstream.example/cometd'), 'secure:3128', 'https: HTTPS_PROXY')
  t.equal(via('https://upstream.example/', { HTTP_PROXY: 'http://plain:3128' }), 'plain:3128', 'https falls back to HTTP_PROXY')
  t.equal(via('http://upstream.example/', { HTTPS_PROXY: 'http://secure:3128' }), null, 'http never takes HTTPS_PROXY')
  t.equal(via('https://upstream.example/', { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:2' }), 'lower:1', 'lower case first')
  t.equal(via('https://a.internal.example/'), null, 'a subdomain of a .domain entry')
  t.equal(via('https://internal.example/'), null, 'the domain itself')
  t.equal(via('https://notinternal.example/'), 'secure:3128', 'not a suffix match')
  t.equal(via('http://localhost:8080/'), null, 'host:port')
  t.equal(via('http://localhost:8081/'), 'plain:3128', 'another port')
  t.equal(via('https://10.0.0.1/'), null, 'an address')
  t.ok(bypassesProxy('*', new URL('https://anything/')), '* bypasses everything')
  t.notOk(bypassesProxy('', new URL('https://anything/')))
  t.equal(proxyFor(null, new URL('https://x/'), env), null, 'no setting: direct')
  t.equal(proxyFor(new URL('http://explicit:1'), new URL('https://10.0.0.1/'), env)?.host, 'explicit:1', 'an explicit proxy ignores NO_PROXY')
})

t.test('proxy - the option is validated, without repeating the URL', async (t) => {
  for (const bad of ['socks5://user:hunter2@127.0.0.1:1080', 'not a url hunter2', 'http://', 'file:///tmp/x']) {
    const err = (() => { try { void new Client('http://127.0.0.1:1/cometd', { proxy: bad }); return null } catch (e) { return e } })()
    t.type(err, ClientError, JSON.stringify(bad.replace('hunter2', '…')))
    t.notOk(inspect(err, { depth: 8 }).includes('hunter2'), 'nor in the error\'s causes and properties')
  }
  t.doesNotThrow(() => new Client('http://127.0.0.1:1/cometd', { proxy: false }))
  t.doesNotThrow(() => new Client('http://127.0.0.1:1/cometd', { proxy: 'https://proxy.example:8443' }))
})
