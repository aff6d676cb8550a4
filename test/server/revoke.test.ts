/**
 * Rights taken away by a configuration reload end the open streams that depended on them, in-band
 * (`access-revoked`), against a real faye upstream: SSE and NDJSON streams whose channel is no longer allowed, a
 * WebSocket whose session is no longer allowed (last frame, then close 1008), while a stream whose rights still
 * hold stays open and keeps receiving, and a WebSocket that keeps its rights checks its later operations with
 * the new ones.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../config/index.js'
import type { Config } from '../../config/index.js'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { openNdjson, openWs } from './fixtures/callers.js'
import { localSession, openSse, request, startBridge, waitConnected } from './fixtures/bridge.js'
import { tempDir } from './delivery/fixtures.js'

t.setTimeout(60_000)

const ADMIN = 'revoke-admin-token-0123456789abcdef'
const ALICE = 'revoke-alice-token-0123456789abcdef'
const BOB = 'revoke-bob-token-0123456789abcdefgh'

interface Rights { aliceSubscribe: string[], aliceSessions: string[], bobPublish: string[] }

function configFile (url: string, r: Rights): object {
  const session = { url, connectionTypes: ['websocket', 'long-polling'], maxNetworkDelayMs: 3000, connectionTimeoutMs: 5000 }
  return {
    logLevel: 'warn',
    sessions: { s: session, other: session },
    auth: {
      tokens: [
        { name: 'admin', token: ADMIN, sessions: ['*'], subscribe: ['/**'], publish: ['/**'], admin: true },
        { name: 'alice', token: ALICE, sessions: r.aliceSessions, subscribe: r.aliceSubscribe },
        { name: 'bob', token: BOB, sessions: ['s'], subscribe: ['/**'], publish: r.bobPublish }
      ]
    }
  }
}

t.test('revoke - a reload that takes rights away ends the streams that needed them, in-band; the others stay', async (t) => {
  const faye = await startFaye({ timeoutSec: 2 })
  t.teardown(faye.close)
  const dir = tempDir(t, 'bridge-revoke-')
  const file = join(dir, 'bridge.json')
  const write = (r: Rights): void => { writeFileSync(file, JSON.stringify(configFile(faye.url, r))) }
  const load = (): { ok: true, config: Config } | { ok: false, errors: Array<{ path: string, message: string }> } => {
    const r = loadConfig({ argv: ['--config', file], env: {}, cwd: dir })
    return r.ok ? { ok: true, config: r.config } : r
  }
  write({ aliceSubscribe: ['/a/**', '/keep/**'], aliceSessions: ['s', 'other'], bobPublish: ['/b/**', '/c/**'] })
  const first = load()
  if (!first.ok) throw new Error('the first config must be valid')
  const { app, base, logs } = await startBridge(t, first.config, { deps: { reloadSource: load } })
  await waitConnected(app)
  const alice = { authorization: `Bearer ${ALICE}` }
  const bob = { authorization: `Bearer ${BOB}` }
  const wsBase = base.replace('http', 'ws')

  const losing = await openSse(t, `${base}/sessions/s/events?channel=/a/x`, alice)
  const losingNdjson = await openNdjson(t, `${base}/sessions/s/events?channel=/a/y`, alice)
  const staying = await openSse(t, `${base}/sessions/s/events?channel=/keep/x`, alice)
  const socket = await openWs(t, `${wsBase}/sessions/other/ws`, alice)
  const bobSocket = await openWs(t, `${wsBase}/sessions/s/ws`, bob)
  t.same([losing.status, losingNdjson.status, staying.status], [200, 200, 200])
  socket.ws.send(JSON.stringify({ op: 'subscribe', ref: 1, channel: '/keep/y' }))
  await socket.waitFrame((f) => f.type === 'ack' && f.ref === 1)
  bobSocket.ws.send(JSON.stringify({ op: 'publish', ref: 1, channel: '/c/1', data: { before: true } }))
  t.match(await bobSocket.waitFrame((f) => f.ref === 1), { type: 'ack' }, 'bob may publish to /c before the reload')
  await waitFor(() => localSession(app, 's').view().subscriptions.filter((s) => s.state === 'subscribed').length >= 3, { timeoutMs: 10_000 })

  // alice loses /a/** and the session "other"; bob loses publishing to /c/**
  write({ aliceSubscribe: ['/keep/**'], aliceSessions: ['s'], bobPublish: ['/b/**'] })
  const started = Date.now()
  const reload = await request(`${base}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } })
  t.equal(reload.status, 200, reload.text)

  const sse = await losing.waitEvent((e) => e.event === 'access-revoked')
  t.same(JSON.parse(sse.data), { reason: 'access-revoked', message: 'This token may not subscribe to /a/x' })
  await losing.done
  t.comment(`the SSE stream ended ${Date.now() - started} ms after the reload was asked`)
  const line = await losingNdjson.waitObject((o) => o.type === 'access-revoked')
  t.match(line, { reason: 'access-revoked', message: 'This token may not subscribe to /a/y' }, 'NDJSON: the same event as a line')
  await losingNdjson.done
  const frame = await socket.waitFrame((f) => f.type === 'access-revoked')
  t.match(frame, { reason: 'access-revoked', message: /may not use session "other"/ }, 'WebSocket: a frame naming the right that is gone')
  t.same(await socket.closed, { code: 1008, reason: 'access revoked' }, 'then close 1008')

  await faye.publish('/keep/x', { after: 1 })
  const kept = await staying.waitEvent((e) => e.event === 'message')
  t.match(JSON.parse(kept.data), { channel: '/keep/x', data: { after: 1 } }, 'a stream whose rights still hold keeps receiving')
  t.notOk(staying.ended, 'and stays open')
  t.notOk(staying.events.some((e) => e.event === 'access-revoked'))

  bobSocket.ws.send(JSON.stringify({ op: 'publish', ref: 2, channel: '/c/1', data: { after: true } }))
  t.match(await bobSocket.waitFrame((f) => f.ref === 2), { type: 'error', error: 'forbidden' }, 'a socket that kept its rights checks its next publish with the new ones')
  bobSocket.ws.send(JSON.stringify({ op: 'publish', ref: 3, channel: '/b/1', data: { after: true } }))
  t.match(await bobSocket.waitFrame((f) => f.ref === 3), { type: 'ack' }, 'and what it may still do works')

  t.equal((await request(`${base}/sessions/s/events?channel=/a/x`, { headers: alice })).status, 403, 'reconnecting for the revoked channel is refused')
  await waitFor(() => logs.lines.some((l) => String(l.msg).includes('lost their rights')), { timeoutMs: 5_000 })
  t.ok(logs.lines.some((l) => /3 of 5 open stream\(s\) lost their rights/.test(String(l.msg))), 'the reload logs how many streams it ended')
  t.notOk(logs.text().includes(ALICE) || logs.text().includes(BOB), 'no token in the log')
})
