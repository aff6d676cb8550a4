/**
 * Configuration reload (POST /admin/reload; SIGHUP in reload-sighup.test.ts) against real faye upstreams, with
 * callers attached: sessions added, removed and restarted (upstream changed), tokens and limits changed, and an
 * invalid file that changes nothing. A caller of an untouched session loses nothing: numbered messages published
 * all through the reloads arrive, in order, on one stream that stays open.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../config/index.js'
import type { Config } from '../../config/index.js'
import { startFaye } from '../helpers/faye.js'
import type { FayePeer } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { localSession, openSse, request, startBridge, waitConnected } from './fixtures/bridge.js'
import type { SseStream } from './fixtures/bridge.js'
import { tempDir } from './delivery/fixtures.js'

t.setTimeout(120_000)

const ADMIN = 'reload-admin-token-0123456789abcdef'
const READER_1 = 'reload-reader-token-one-0123456789'
const READER_2 = 'reload-reader-token-two-0123456789'
const SECRET_HEADER = 'upstream-secret-value-0123456789'
/** the untouched caller's token: the same entry in every file */
const WATCHER = 'reload-watcher-token-0123456789ab'

interface FileOptions { sessions: Record<string, string>, reader: string, maxCallers: number }

function configFile (o: FileOptions): object {
  const sessions = Object.fromEntries(Object.entries(o.sessions).map(([name, url]) => [name, {
    url, connectionTypes: ['websocket', 'long-polling'], maxNetworkDelayMs: 3000, connectionTimeoutMs: 5000, unsubscribeLingerMs: 200
  }]))
  return {
    logLevel: 'warn',
    sessions,
    sse: { maxCallers: o.maxCallers, retryMs: 200 },
    auth: {
      tokens: [
        { name: 'admin', token: ADMIN, sessions: ['*'], subscribe: ['/**'], publish: ['/**'], metrics: true, admin: true },
        { name: 'reader', token: o.reader, sessions: ['keep'], subscribe: ['/**'] },
        { name: 'watcher', token: WATCHER, sessions: ['keep'], subscribe: ['/n'] }
      ]
    }
  }
}

function loaded (file: string, dir: string): { ok: true, config: Config } | { ok: false, errors: Array<{ path: string, message: string }> } {
  const r = loadConfig({ argv: ['--config', file], env: {}, cwd: dir })
  return r.ok ? { ok: true, config: r.config } : r
}

/** Publishes /n {n: 1, 2, …} on `faye` every few ms until stopped; resolves with how many it published. */
function publishNumbered (faye: FayePeer): { count: () => number, stop: () => Promise<number> } {
  let n = 0
  let running = true
  const loop = (async () => {
    while (running && n < 5_000) {
      await faye.publish('/n', { n: ++n })
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
    return n
  })()
  return { count: () => n, stop: async () => { running = false; return await loop } }
}

function numbers (sse: SseStream): number[] {
  return sse.messages().filter((m) => m.channel === '/n').map((m) => (m.data as { n: number }).n)
}

t.test('reload - sessions added, removed, restarted; tokens and limits; invalid file; nothing lost on untouched sessions', async (t) => {
  const fA = await startFaye({ timeoutSec: 2 })
  t.teardown(fA.close)
  const fB = await startFaye({ timeoutSec: 2 })
  t.teardown(fB.close)
  const dir = tempDir(t, 'bridge-reload-')
  const file = join(dir, 'bridge.json')
  const write = (o: object): void => { writeFileSync(file, JSON.stringify(o)) }
  write(configFile({ sessions: { keep: fA.url, gone: fA.url, moved: fA.url }, reader: READER_1, maxCallers: 100 }))
  const first = loaded(file, dir)
  if (!first.ok) throw new Error('the first config must be valid')
  const { app, base, logs } = await startBridge(t, first.config, { deps: { reloadSource: () => loaded(file, dir) } })
  await waitConnected(app)
  const admin = { authorization: `Bearer ${ADMIN}` }
  const reload = async (headers = admin): ReturnType<typeof request> => await request(`${base}/admin/reload`, { method: 'POST', headers })

  const keep = await openSse(t, `${base}/sessions/keep/events?channel=/n`, { authorization: `Bearer ${WATCHER}` })
  const replaced = await openSse(t, `${base}/sessions/keep/events?channel=/n`, { authorization: `Bearer ${READER_1}` })
  const gone = await openSse(t, `${base}/sessions/gone/events?channel=/n`, admin)
  const moved = await openSse(t, `${base}/sessions/moved/events?channel=/n`, admin)
  t.same([keep.status, replaced.status, gone.status, moved.status], [200, 200, 200, 200])
  await waitFor(() => localSession(app, 'keep').view().subscriptions.some((s) => s.channel === '/n' && s.state === 'subscribed'), { timeoutMs: 10_000 })
  const publisher = publishNumbered(fA)
  await keep.waitEvent((e) => e.event === 'message')
  // messages before the first reload
  await waitFor(() => publisher.count() >= 50, { timeoutMs: 20_000 })

  t.equal((await reload({ authorization: `Bearer ${READER_1}` })).status, 403, 'a token without admin: true may not reload')

  // one reload with every kind of change
  write(configFile({ sessions: { keep: fA.url, moved: fB.url, fresh: fB.url }, reader: READER_2, maxCallers: 4 }))
  const applied = await reload()
  t.equal(applied.status, 200, applied.text)
  t.match(applied.json, { outcome: 'applied', added: ['fresh'], removed: ['gone'], restarted: ['moved'], needsRestart: [], failed: [] })
  t.ok(applied.json.settings.includes('auth.tokens') && applied.json.settings.includes('sse.maxCallers'), `settings: ${applied.json.settings.join(', ')}`)

  const revoked = await replaced.waitEvent((e) => e.event === 'access-revoked')
  t.match(JSON.parse(revoked.data), { reason: 'access-revoked', message: /token/i }, 'a stream whose token was replaced ends in-band')
  await replaced.done
  const removed = await gone.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'removed')
  t.match(JSON.parse(removed.data), { session: 'gone', status: 'removed' }, 'a removed session\'s caller is told in-band')
  await gone.done
  t.equal((await request(`${base}/sessions/gone`, { headers: admin })).status, 404, 'the removed session is gone')
  const restarting = await moved.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'restarting')
  t.match(JSON.parse(restarting.data), { session: 'moved' })
  await moved.done
  t.ok(moved.events.some((e) => e.event === 'shutdown'), 'then event: shutdown (the retry hint), and the stream ends')

  await waitConnected(app)
  t.match(app.bridge.sessions.get('moved')!.view().url, `127.0.0.1:${fB.port}`, 'the restarted session follows its new upstream')
  const onB = await openSse(t, `${base}/sessions/fresh/events?channel=/b`, admin)
  t.equal(onB.status, 200, 'the added session serves callers')
  await waitFor(() => localSession(app, 'fresh').view().subscriptions.some((s) => s.state === 'subscribed'), { timeoutMs: 10_000 })
  await fB.publish('/b', { on: 'B' })
  await onB.waitEvent((e) => e.event === 'message')

  t.equal((await request(`${base}/sessions/keep`, { headers: { authorization: `Bearer ${READER_1}` } })).status, 401, 'the replaced token is refused')
  t.equal((await request(`${base}/sessions/keep`, { headers: { authorization: `Bearer ${READER_2}` } })).status, 200, 'the new token works')
  t.equal(app.bridge.config.sse.maxCallers, 4)

  // limits: 2 streams open (keep, onB; the replaced token's stream ended); allow 2 → a third is refused, the open ones stay
  write(configFile({ sessions: { keep: fA.url, moved: fB.url, fresh: fB.url }, reader: READER_2, maxCallers: 2 }))
  const limits = await reload()
  t.match(limits.json, { outcome: 'applied', added: [], removed: [], restarted: [], settings: ['sse.maxCallers'] })
  t.equal((await request(`${base}/sessions/fresh/events?channel=/c`, { headers: admin })).status, 503, 'the new caller limit applies to new streams')

  // an invalid file: 422 naming the field, no secret echoed, nothing changes
  const bad = configFile({ sessions: { keep: 'not a url', other: fA.url }, reader: 'short', maxCallers: 2 }) as { sessions: Record<string, { headers?: object }> }
  bad.sessions.other!.headers = { 'X-Api-Key': SECRET_HEADER, Host: SECRET_HEADER }
  write(bad)
  const invalid = await reload()
  t.equal(invalid.status, 422)
  t.equal(invalid.json.error, 'invalid_config')
  const paths = (invalid.json.errors as Array<{ path: string }>).map((e) => e.path)
  t.ok(paths.includes('sessions.keep.url') && paths.some((p) => p.startsWith('auth.tokens[1]')), `the errors name the fields: ${paths.join(', ')}`)
  t.notOk(invalid.text.includes('short') || invalid.text.includes(SECRET_HEADER), 'no value is echoed')
  t.notOk(logs.text().includes(SECRET_HEADER), 'nor logged')
  t.ok(logs.lines.some((l) => l.level === 50 && String(l.msg).startsWith('configuration reload refused')), 'logged at error')
  t.same([...app.bridge.sessions.keys()].sort(), ['fresh', 'keep', 'moved'], 'the sessions are unchanged')
  t.equal(app.bridge.config.sse.maxCallers, 2, 'the running configuration is kept')

  write(configFile({ sessions: { keep: fA.url, moved: fB.url, fresh: fB.url }, reader: READER_2, maxCallers: 2 }))
  t.match((await reload()).json, { outcome: 'unchanged' }, 'the same file again: unchanged')

  // publishing goes on a while after the last reload too
  const after = publisher.count() + 50
  await waitFor(() => publisher.count() >= after, { timeoutMs: 20_000 })
  const published = await publisher.stop()
  await waitFor(() => numbers(keep).length >= published, { timeoutMs: 10_000, message: () => `keep got ${numbers(keep).length} of ${published}` })
  const got = numbers(keep)
  const firstN = got[0]!
  t.same(got, Array.from({ length: published - firstN + 1 }, (_, i) => firstN + i), `the untouched session's caller got every message, in order (${got.length}, from ${firstN} to ${published})`)
  t.notOk(keep.ended, 'and its stream stayed open through four reloads')
  t.notOk(keep.events.some((e) => e.event === 'upstream' || e.event === 'shutdown'), 'without any upstream or shutdown event')
  t.comment(`published ${published} numbered messages during the reloads`)

  const metrics = (await request(`${base}/metrics`, { headers: admin })).text
  t.match(metrics, /cometd_bridge_config_reloads_total\{outcome="applied"\} 2/)
  t.match(metrics, /cometd_bridge_config_reloads_total\{outcome="invalid"\} 1/)
  t.match(metrics, /cometd_bridge_config_reloads_total\{outcome="unchanged"\} 1/)
})

t.test('reload - unavailable without a configuration source', async (t) => {
  const fA = await startFaye({ timeoutSec: 2 })
  t.teardown(fA.close)
  const dir = tempDir(t, 'bridge-reload-')
  const file = join(dir, 'bridge.json')
  writeFileSync(file, JSON.stringify(configFile({ sessions: { keep: fA.url }, reader: READER_1, maxCallers: 10 })))
  const r = loaded(file, dir)
  if (!r.ok) throw new Error('valid config expected')
  const { base } = await startBridge(t, r.config)
  const answer = await request(`${base}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } })
  t.equal(answer.status, 409)
  t.equal(answer.json.error, 'reload_unavailable')
})
