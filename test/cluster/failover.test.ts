/**
 * Failover of real bridge replicas on a real Redis in front of the Salesforce-like fixture (replay on):
 * kill -9 of the holder under a steady 50 msg/s, then SIGSTOP of the next holder for 2 × leaseMs. Every caller —
 * those that stayed, and the one that reconnected to another replica with Last-Event-ID — gets every message
 * exactly once and in order; the paused holder writes nothing once it lost the lease.
 */
import t from 'tap'
import { SF_DEFAULT_TOKEN, startSalesforceLike } from '../helpers/salesforce.js'
import { startRedis } from '../helpers/redis.js'
import { delay, waitFor } from '../helpers/wait.js'
import { openSse, request } from '../server/fixtures/bridge.js'
import type { SseStream } from '../server/fixtures/bridge.js'
import { agreedHolder, startReplica } from './replicas.js'
import type { Replica } from './replicas.js'

t.setTimeout(110_000)

const CHANNEL = '/event/Order__e'
const LEASE_MS = 1_000

interface Received { n: number, id: string | undefined, at: number }

/** What a stream received: payload n, id and arrival time, in order. */
function track (sse: SseStream): Received[] {
  const got: Received[] = []
  let seen = 0
  const timer = setInterval(() => {
    const messages = sse.messages()
    for (; seen < messages.length; seen++) got.push({ n: (messages[seen]!.data as { payload: { n: number } }).payload.n, id: messages[seen]!.id, at: Date.now() })
  }, 5)
  timer.unref()
  sse.done.finally(() => { clearInterval(timer) }).catch(() => {})
  return got
}

/** The ns from the first received one to `last`, each exactly once and in order? A description of what is wrong, or ''. */
function exactlyOnce (ns: number[], last: number): string {
  if (ns.length === 0) return 'nothing received'
  const first = ns[0]!
  const expected = Array.from({ length: last - first + 1 }, (_, i) => first + i)
  if (ns.length === expected.length && ns.every((n, i) => n === expected[i])) return ''
  const dup = ns.filter((n, i) => ns.indexOf(n) !== i)
  const missing = expected.filter((n) => !ns.includes(n))
  return `got ${ns.length} of ${expected.length}; duplicates ${JSON.stringify(dup.slice(0, 10))}; missing ${JSON.stringify(missing.slice(0, 10))}`
}

t.test('failover - kill -9 and SIGSTOP of the holder under 50 msg/s: every message once, in order, everywhere', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const sf = await startSalesforceLike({ timeoutMs: 2_000, retention: { count: 10_000 } })
  t.teardown(sf.close)
  const sessions = {
    sf: {
      url: sf.url,
      connectionTypes: ['long-polling'],
      headers: { Authorization: `Bearer ${SF_DEFAULT_TOKEN}` },
      maxNetworkDelayMs: 2_000,
      connectionTimeoutMs: 5_000,
      subscribe: [CHANNEL],
      replay: { enabled: true, start: -1, fallback: -2 }
    }
  }
  const replicas: Replica[] = await Promise.all(['a', 'b', 'c'].map(async (id) => await startReplica(t, { redis: redis.url, id, sessions, leaseMs: LEASE_MS })))
  const firstId = await agreedHolder(replicas, 'sf')
  const first = replicas.find((r) => r.id === firstId)!
  await waitFor(async () => (await request(`${first.base}/readyz`)).status === 200, { timeoutMs: 20_000, message: 'the holder is ready' })
  const url = (r: Replica): string => `${r.base}/sessions/sf/events?channel=${CHANNEL}`
  const stay = replicas.filter((r) => r !== first)
  const staying = await Promise.all(stay.map(async (r) => track(await openSse(t, url(r)))))
  const movingSse = await openSse(t, url(first))
  const moving = track(movingSse)

  let n = 0
  let publishing = true
  const publisher = (async () => {
    while (publishing && n < 2_000) {
      sf.publish(CHANNEL, { n: ++n })
      await delay(20)
    }
  })()
  await waitFor(() => staying.every((g) => g.length >= 20) && moving.length >= 20, { timeoutMs: 20_000, message: 'messages flowing everywhere' })

  // kill -9 the holder
  const killedAt = Date.now()
  first.child.proc.kill('SIGKILL')
  await movingSse.done
  const lastId = moving[moving.length - 1]!.id!
  const second = stay[0]!
  const resumed = await openSse(t, url(second), { 'Last-Event-ID': lastId })
  t.equal(resumed.status, 200)
  const movedOn = track(resumed)
  const next = await agreedHolder(stay, 'sf', 20_000)
  await waitFor(() => staying.every((g) => g.some((r) => r.at > killedAt)), { timeoutMs: 15_000, message: 'messages after the kill' })
  const firstAfter = Math.min(...staying.map((g) => g.find((r) => r.at > killedAt)!.at)) - killedAt
  t.comment(`kill -9: first message after ${firstAfter} ms (leaseMs ${LEASE_MS}); new holder ${next}`)
  t.ok(firstAfter <= 5_000, 'first message after the kill within 5 s')

  // SIGSTOP the new holder for 2 × leaseMs, then SIGCONT: it must give up, and write nothing
  const paused = stay.find((r) => r.id === next)!
  const survivor = stay.find((r) => r !== paused)!
  await delay(500)
  paused.child.proc.kill('SIGSTOP')
  await delay(2 * LEASE_MS)
  paused.child.proc.kill('SIGCONT')
  const third = await agreedHolder(stay, 'sf', 20_000)
  t.equal(third, survivor.id, 'the replica that stayed awake holds the session now')
  await delay(1_000)
  publishing = false
  await publisher
  const last = n
  const all = [...staying, moving.concat(movedOn)]
  await waitFor(() => all.every((g) => g.some((r) => r.n === last)), { timeoutMs: 20_000, message: () => `every caller got ${last}: ${all.map((g) => g[g.length - 1]?.n).join(', ')}` })
  for (const [i, g] of staying.entries()) t.equal(exactlyOnce(g.map((r) => r.n), last), '', `caller that stayed on ${stay[i]!.id}`)
  t.equal(exactlyOnce(moving.concat(movedOn).map((r) => r.n), last), '', `caller that moved from ${first.id} to ${second.id} with Last-Event-ID`)
  t.comment(`${last} messages published at 50/s across a kill -9 and a SIGSTOP`)

  t.match(await paused.view('sf'), { role: 'follower', holder: survivor.id })
  const lost = paused.child.stdoutLines.filter((l) => l.msg === 'lease lost: stopping the upstream session')
  t.match(lost, [{ reason: 'not renewed within leaseMs' }], 'on waking it gave the session up by its own clock, before any append')
})
