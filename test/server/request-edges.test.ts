/**
 * Two request edges: a `DELETE` that says `Content-Type: application/json` but carries no body is accepted (no
 * data to parse), and a refused request costs a constant: it is answered from its headers alone (authentication
 * runs before any body is read) and its connection is closed rather than drained of the body it announced.
 */
import net from 'node:net'
import t from 'tap'
import { defaultConfig } from '../../config/index.js'
import { startFaye } from '../helpers/faye.js'
import { makeConfig, startBridge, waitConnected } from './fixtures/bridge.js'
import { statusOf, tokenEntry } from './fixtures/callers.js'

const AUTH_DEFAULTS = defaultConfig().auth

t.setTimeout(60_000)

const TOKEN = 'edge-token-0123456789abcdef'
const bearer = { Authorization: `Bearer ${TOKEN}` }

interface RawAnswer { head: string, closedByServer: boolean, waitedMs: number }

/** Sends only the request head (announcing `length` body bytes), then reads until the server closes or `waitMs` passes. */
async function headOnly (port: number, head: string, waitMs: number): Promise<RawAnswer> {
  const socket = net.connect(port, '127.0.0.1')
  const started = Date.now()
  return await new Promise<RawAnswer>((resolve, reject) => {
    let text = ''
    const timer = setTimeout(() => { socket.destroy(); resolve({ head: text, closedByServer: false, waitedMs: Date.now() - started }) }, waitMs)
    timer.unref()
    socket.setEncoding('utf8')
    socket.on('data', (chunk: string) => { text += chunk })
    socket.on('end', () => { clearTimeout(timer); socket.destroy(); resolve({ head: text, closedByServer: true, waitedMs: Date.now() - started }) })
    socket.on('error', (err) => { clearTimeout(timer); reject(err) })
    socket.write(head)
  })
}

t.test('DELETE with Content-Type: application/json and no body is accepted', async (t) => {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const config = makeConfig({ fixed: { url: faye.url } })
  config.auth = { ...AUTH_DEFAULTS, tokens: [tokenEntry({ name: 'owner', token: TOKEN, sessions: ['*'], subscribe: ['/**'], publish: ['/**'], createSessions: true })] }
  config.dynamicSessions = { enabled: true, allowUrls: [faye.url], idleTimeoutMs: 60_000, maxPerToken: 5, maxTotal: 5 }
  const { app, base } = await startBridge(t, config)
  await waitConnected(app)
  const json = { ...bearer, 'Content-Type': 'application/json' }
  for (const extra of [{}, { 'Content-Length': '0' }] as Array<Record<string, string>>) {
    const created = await statusOf(`${base}/sessions`, { method: 'POST', headers: json, body: JSON.stringify({ url: faye.url }) })
    t.equal(created.status, 201)
    const name = (JSON.parse(created.body) as { name: string }).name
    const deleted = await statusOf(`${base}/sessions/${name}`, { method: 'DELETE', headers: { ...json, ...extra } })
    t.equal(deleted.status, 204, `DELETE ${JSON.stringify(extra)} → 204: ${deleted.body}`)
  }
  const fixed = await statusOf(`${base}/sessions/fixed`, { method: 'DELETE', headers: json })
  t.equal(fixed.status, 409, 'a configured session: 409 not_deletable (not 400 bad_json)')
  t.equal(JSON.parse(fixed.body).error, 'not_deletable')
  const publish = await statusOf(`${base}/sessions/fixed/publish/a`, { method: 'POST', headers: json })
  t.equal(publish.status, 400, 'a publish still needs its data')
  t.equal(JSON.parse(publish.body).error, 'bad_json')
})

t.test('a refused request is answered from its headers and its body is never read', async (t) => {
  const config = makeConfig({})
  config.auth = { ...AUTH_DEFAULTS, tokens: [tokenEntry({ name: 'owner', token: TOKEN, sessions: ['*'], publish: ['/**'] })] }
  const { base } = await startBridge(t, config)
  const port = Number(new URL(base).port)
  const announce = (auth: string): string =>
    `POST /sessions/x/publish/a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${auth}Content-Length: 1000000\r\n\r\n`
  const refused = await headOnly(port, announce(''), 5_000)
  t.match(refused.head, /^HTTP\/1\.1 401 /, 'answered 401 without a byte of the body')
  t.match(refused.head, /\r\nconnection: close\r\n/i, 'with Connection: close')
  t.ok(refused.closedByServer, `and the server closed the connection (${refused.waitedMs} ms) instead of reading 1 MB to keep it alive`)
  const wrong = await headOnly(port, announce('Authorization: Bearer wrong-token-0123456789ab\r\n'), 5_000)
  t.match(wrong.head, /^HTTP\/1\.1 401 /, 'a wrong token too')
  t.ok(wrong.closedByServer, 'closed as well')
  const allowed = await headOnly(port, announce(`Authorization: Bearer ${TOKEN}\r\n`), 500)
  t.equal(allowed.head, '', 'an authorized request waits for its body (it is parsed only after authentication)')
  t.notOk(allowed.closedByServer)
})
