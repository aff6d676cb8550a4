/**
 * Three real bridge replicas on one real Redis in front of a real Faye: exactly one upstream client, callers on
 * any replica receive, publishes through any replica arrive, and the holder's graceful stop hands over at once.
 */
import t from 'tap'
import { startCometd } from '../helpers/cometd-server.js'
import { startFaye } from '../helpers/faye.js'
import { startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'
import { openSse, request } from '../server/fixtures/bridge.js'
import { agreedHolder, startReplica, upstreamClients } from './replicas.js'
import type { Replica } from './replicas.js'

t.setTimeout(110_000)

t.test('cluster - three replicas: one upstream client, callers everywhere, publish anywhere, SIGTERM handover', async (t) => {
  const redis = await startRedis(t)
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const clients = upstreamClients(faye)
  const cometd = await startCometd({ options: { timeout: 3_000 } })
  t.teardown(cometd.close)
  const sessions = { s: { url: faye.url, connectionTypes: ['long-polling'] }, c: { url: cometd.url, connectionTypes: ['long-polling'] } }
  const extra = { dynamicSessions: { enabled: true, allowUrls: [faye.url] } }
  const replicas: Replica[] = await Promise.all(['a', 'b', 'c'].map(async (id) => await startReplica(t, { redis: redis.url, id, sessions, extra })))
  const holderId = await agreedHolder(replicas, 's')
  const holder = replicas.find((r) => r.id === holderId)!
  const others = replicas.filter((r) => r !== holder)
  await waitFor(() => clients.size === 1, { timeoutMs: 10_000, message: () => `one upstream client (have ${clients.size})` })

  // a caller on each replica; the two on followers make the holder subscribe upstream
  const streams = await Promise.all(replicas.map(async (r) => await openSse(t, `${r.base}/sessions/s/events?channel=/chat/**`)))
  t.same(streams.map((s) => s.status), [200, 200, 200])
  await waitFor(async () => (await holder.view('s')).subscriptions.some((s: { channel: string, state: string }) => s.channel === '/chat/**' && s.state === 'subscribed'), { timeoutMs: 10_000, message: 'the holder subscribed what the callers want' })
  await faye.publish('/chat/room', { n: 1 })
  for (const s of streams) await s.waitEvent((e) => e.event === 'message')
  const ids = streams.map((s) => s.messages()[0]!.id)
  t.equal(new Set(ids).size, 1, `the same id on every replica: ${ids[0]}`)
  t.match(ids[0], /^[a-z0-9]+:\d+-\d+$/)

  // publish through a follower arrives upstream (and comes back to every caller)
  const res = await request(`${others[0]!.base}/sessions/s/publish/chat/room`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n: 2 }) })
  t.equal(res.status, 200, res.text)
  t.match(res.json, { successful: true, channel: '/chat/room' })
  for (const s of streams) await s.waitEvent((e) => e.event === 'message', { count: 2 })
  t.same(streams.map((s) => s.messages().map((m) => (m.data as { n: number }).n)), [[1, 2], [1, 2], [1, 2]])
  t.equal(clients.size, 1, 'still exactly one upstream client')

  // views: who answers, who holds
  const view = await others[1]!.view('s')
  t.match(view, { replicaId: others[1]!.id, holder: holderId, role: 'follower' })
  t.match((await request(`${others[1]!.base}/sessions`)).json, { replicaId: others[1]!.id })

  // session c on cometd-nodejs-server: a call, and the upstream's refusals, through a replica that does not hold it
  const cHolder = await agreedHolder(replicas, 'c')
  const cOther = replicas.find((r) => r.id !== cHolder)!
  await waitFor(async () => (await request(`${replicas.find((r) => r.id === cHolder)!.base}/readyz`)).status === 200, { timeoutMs: 15_000 })
  const post = async (path: string, body: unknown) => await request(`${cOther.base}/sessions/c/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const call = await post('call/service/echo', { q: [1, 2] })
  t.equal(call.status, 200, call.text)
  t.same(call.json, { q: [1, 2] }, 'a call through a follower is answered by the holder\'s upstream')
  t.match(await post('publish/forbidden/x', 1), { status: 403, json: { error: 'upstream_denied' } })
  const refused = await openSse(t, `${cOther.base}/sessions/c/events?channel=/forbidden/x`)
  t.equal(refused.status, 403)
  t.match(JSON.parse(refused.body()), { error: 'upstream_denied', bayeux: { error: '403::subscribe_denied' } }, 'the holder\'s refusal reaches the caller of another replica')

  // metrics
  const metrics = (await request(`${holder.base}/metrics`)).text
  t.match(metrics, /cometd_bridge_cluster_lease_held\{session="s"\} 1/)
  t.match(metrics, /cometd_bridge_cluster_redis_up 1/)
  t.match(metrics, /cometd_bridge_cluster_read_lag_seconds\{session="s"\}/)
  const followerMetrics = (await request(`${others[0]!.base}/metrics`)).text
  t.match(followerMetrics, /cometd_bridge_cluster_lease_held\{session="s"\} 0/)
  t.match(followerMetrics, /cometd_bridge_cluster_forward_duration_seconds_count\{session="s",op="publish",outcome="ok"\} 1/)

  // a dynamic session stays on the replica that created it (its own upstream session, its own log)
  const created = await request(`${others[0]!.base}/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: faye.url, connectionTypes: ['long-polling'] }) })
  t.equal(created.status, 201, created.text)
  const dyn = created.json.name as string
  t.equal((await request(`${others[1]!.base}/sessions/${dyn}`)).status, 404, 'unknown to the other replicas')
  const dynStream = await openSse(t, `${others[0]!.base}/sessions/${dyn}/events?channel=/dyn`)
  await waitFor(async () => (await others[0]!.view(dyn)).subscriptions?.some((x: { channel: string, state: string }) => x.channel === '/dyn' && x.state === 'subscribed'), { timeoutMs: 10_000 })
  await faye.publish('/dyn', { d: 1 })
  await dynStream.waitEvent((e) => e.event === 'message')
  t.notOk('holder' in (await others[0]!.view(dyn)), 'a local session: no holder')
  await waitFor(() => clients.size === 2, { timeoutMs: 5_000, message: () => `the dynamic session is a second upstream client (${clients.size})` })
  dynStream.close()
  t.equal((await request(`${others[0]!.base}/sessions/${dyn}`, { method: 'DELETE' })).status, 204)
  await waitFor(() => clients.size === 1, { timeoutMs: 5_000, message: () => `back to one upstream client (${clients.size})` })

  // SIGTERM: the holder hands over at once
  const term = Date.now()
  holder.child.proc.kill('SIGTERM')
  const next = await agreedHolder(others, 's')
  const handover = Date.now() - term
  await waitFor(() => clients.size === 1 && [...clients].length === 1, { timeoutMs: 10_000 })
  t.comment(`SIGTERM handover: ${handover} ms to a new agreed holder (${next}; leaseMs 1000)`)
  t.ok(handover < 3_000, 'well before the lease would have expired many times over')
  t.not(next, holderId)
  const subscribed = async (r: Replica): Promise<boolean> => (await r.view('s')).subscriptions.some((s: { channel: string, state: string }) => s.channel === '/chat/**' && s.state === 'subscribed')
  await waitFor(async () => await subscribed(others.find((r) => r.id === next)!), { timeoutMs: 10_000, message: 'the new holder subscribed what the callers want' })
  await faye.publish('/chat/room', { n: 3 })
  for (const s of streams.filter((_, i) => replicas[i] !== holder)) await s.waitEvent((e) => e.event === 'message', { count: 3 })
  t.equal(clients.size, 1, 'one upstream client after the handover')
})
