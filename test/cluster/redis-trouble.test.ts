/**
 * Redis trouble under real replicas (Faye upstream, no replay): Redis down → /readyz 503 with the reason, callers
 * told in band, the holder stops its upstream after leaseMs (no split brain); back with its data (AOF) → one
 * holder again and resume across the outage with a `rehandshake` gap; back empty → the epoch changed: live callers
 * and callers resuming from an old id get `gap` `unknown-id`, never a silent "nothing missed".
 */
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import { startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'
import { openSse, request } from '../server/fixtures/bridge.js'
import type { SseEvent, SseStream } from '../server/fixtures/bridge.js'
import { agreedHolder, startReplica, upstreamClients } from './replicas.js'
import type { Replica } from './replicas.js'

t.setTimeout(110_000)

const LEASE_MS = 1_000
const status = (s: string) => (e: SseEvent): boolean => e.event === 'upstream' && JSON.parse(e.data).status === s
const gap = (reason: string) => (e: SseEvent): boolean => e.event === 'gap' && JSON.parse(e.data).reason === reason

t.test('redis trouble - down, back with AOF, back empty', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const faye = await startFaye({ timeoutSec: 3 })
  t.teardown(faye.close)
  const clients = upstreamClients(faye)
  const sessions = { s: { url: faye.url, connectionTypes: ['long-polling'], subscribe: ['/t'] } }
  const replicas: Replica[] = await Promise.all(['a', 'b'].map(async (id) => await startReplica(t, { redis: redis.url, id, sessions, leaseMs: LEASE_MS })))
  await agreedHolder(replicas, 's')
  // the holder is ready once its configured subscription is confirmed upstream
  const allReady = async (): Promise<void> => {
    await waitFor(async () => (await Promise.all(replicas.map(async (r) => (await request(`${r.base}/readyz`)).status))).every((s) => s === 200), { timeoutMs: 20_000, message: 'both replicas ready' })
  }
  await allReady()
  const streams: SseStream[] = await Promise.all(replicas.map(async (r) => await openSse(t, `${r.base}/sessions/s/events?channel=/t`)))
  const publishAndSee = async (n: number, count: number): Promise<void> => {
    await faye.publish('/t', { n })
    for (const s of streams) await s.waitEvent((e) => e.event === 'message', { count, timeoutMs: 15_000 })
  }
  await publishAndSee(1, 1)
  const beforeOutage = streams[0]!.messages()[0]!.id!

  // Redis down
  const down = Date.now()
  await redis.stop()
  for (const r of replicas) {
    await waitFor(async () => (await request(`${r.base}/readyz`)).status === 503, { timeoutMs: 5_000, message: `${r.id} not ready` })
  }
  const ready = await request(`${replicas[0]!.base}/readyz`)
  t.match(ready.json, { error: 'not_ready', message: /s: redis down/ })
  for (const s of streams) await s.waitEvent(status('log-down'))
  await waitFor(() => clients.size === 0, { timeoutMs: 5_000, message: () => `the holder stopped its upstream (${clients.size} clients)` })
  t.comment(`Redis down: no upstream client ${Date.now() - down} ms after the stop (leaseMs ${LEASE_MS})`)
  const refused = await request(`${replicas[0]!.base}/sessions/s/publish/t`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"n":0}' })
  t.match(refused, { status: 503, json: { error: 'upstream_unavailable', message: /No replica holds session "s"/ } })
  t.ok(refused.headers.get('retry-after'), 'with Retry-After')

  // back with its data
  await redis.start()
  await agreedHolder(replicas, 's', 20_000)
  for (const s of streams) await s.waitEvent(status('log-up'), { timeoutMs: 10_000 })
  await waitFor(() => clients.size === 1, { timeoutMs: 10_000, message: () => `one upstream client again (${clients.size})` })
  await allReady()
  await publishAndSee(2, 2)
  const resumed = await openSse(t, `${replicas[1]!.base}/sessions/s/events?channel=/t`, { 'Last-Event-ID': beforeOutage })
  const resumedGap = JSON.parse((await resumed.waitEvent((e) => e.event === 'gap')).data)
  t.match(resumedGap, { reason: 'rehandshake', lastEventId: beforeOutage }, 'the takeover without replay may have lost events: said so')
  await resumed.waitEvent((e) => e.event === 'message')
  t.same(resumed.messages().map((m) => (m.data as { n: number }).n), [2], 'what the log has after the id is replayed')

  // back empty: the epoch changed
  const lastId = streams[0]!.messages()[1]!.id!
  const holders = streams[0]!.events.filter(status('holder')).length
  await redis.restartEmpty()
  for (const s of streams) {
    const e = await s.waitEvent(gap('unknown-id'), { timeoutMs: 15_000 })
    t.match(JSON.parse(e.data), { reason: 'unknown-id' })
  }
  // the holder notices at its next renewal (or append) that its lease is gone with the data, and takes it again
  await streams[0]!.waitEvent(status('holder'), { count: holders + 1, timeoutMs: 15_000 })
  await agreedHolder(replicas, 's', 20_000)
  await waitFor(() => clients.size === 1, { timeoutMs: 10_000, message: () => `one upstream client again (${clients.size})` })
  await allReady()
  await publishAndSee(3, 3)
  const newId = streams[0]!.messages()[2]!.id!
  t.not(newId.split(':')[0], lastId.split(':')[0], 'another epoch in the ids')
  const old = await openSse(t, `${replicas[0]!.base}/sessions/s/events?channel=/t`, { 'Last-Event-ID': lastId })
  t.match(JSON.parse((await old.waitEvent((e) => e.event === 'gap')).data), { reason: 'unknown-id', lastEventId: lastId }, 'an id of the lost data is unknown, never "nothing missed"')
})
