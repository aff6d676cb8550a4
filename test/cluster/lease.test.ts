/** server/cluster/lease.ts against a real redis-server: one holder, takeover, release, self-expiry, terms. */
import t from 'tap'
import { startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'
import { Leases, parseLease } from '../../server/cluster/lease.js'
import type { Lease } from '../../server/cluster/lease.js'
import type { RedisLink } from '../../server/cluster/redis.js'
import { captureLog, clusterConfig, openLink } from './fixtures.js'

interface Replica { id: string, link: RedisLink, leases: Leases, lease: Lease, events: string[] }

interface Teardown { teardown: (fn: () => unknown) => void }

async function replica (t: Teardown, url: string, id: string, leaseMs = 600): Promise<Replica> {
  const log = captureLog().log
  const link = await openLink(t, clusterConfig(url, { replicaId: id, leaseMs }), log)
  const leases = new Leases(link, log)
  t.teardown(async () => { await leases.close() })
  const events: string[] = []
  const lease = await leases.add('s1', { acquired: (term) => { events.push(`acquired ${term}`) }, lost: (reason) => { events.push(`lost ${reason}`) } })
  return { id, link, leases, lease, events }
}

const holders = (rs: Replica[]): Replica[] => rs.filter((r) => r.lease.state === 'holder')

t.test('lease - three replicas: exactly one holds, the others know which', async (t) => {
  const redis = await startRedis(t)
  const rs = await Promise.all(['a', 'b', 'c'].map(async (id) => replica(t, redis.url, id)))
  await waitFor(() => holders(rs).length === 1 && rs.every((r) => r.lease.holder !== null), { timeoutMs: 3_000 })
  const holder = holders(rs)[0]!
  t.same(rs.map((r) => r.lease.holder), [holder.id, holder.id, holder.id])
  t.same(holder.events, ['acquired 1'])
  t.equal(holder.lease.value, `${holder.id}|1`)
  t.equal(await holder.link.send(['GET', 'test:session:s1:lease']), `${holder.id}|1`)
  // renewals keep it: still one holder, the same, after several lease periods
  await new Promise((resolve) => setTimeout(resolve, 1_500))
  t.same(holders(rs).map((r) => r.id), [holder.id])
  t.same(holder.events, ['acquired 1'], 'never lost while renewing')
})

t.test('lease - a graceful release hands over at once, with a higher term', async (t) => {
  const redis = await startRedis(t)
  const rs = await Promise.all(['a', 'b'].map(async (id) => replica(t, redis.url, id, 3_000)))
  await waitFor(() => holders(rs).length === 1, { timeoutMs: 3_000 })
  const [holder, other] = rs[0]!.lease.state === 'holder' ? [rs[0]!, rs[1]!] : [rs[1]!, rs[0]!]
  const started = Date.now()
  await holder.leases.close()
  await waitFor(() => other.lease.state === 'holder', { timeoutMs: 2_000 })
  const ms = Date.now() - started
  t.comment(`handover after a release: ${ms} ms (leaseMs 3000)`)
  t.ok(ms < 1_000, 'well under the lease time')
  t.equal(other.lease.term, 2)
  t.equal(holder.lease.state, 'closed')
})

t.test('lease - a holder that cannot renew gives up by itself within leaseMs; another takes over after expiry', async (t) => {
  const redis = await startRedis(t)
  const rs = await Promise.all(['a', 'b'].map(async (id) => replica(t, redis.url, id)))
  await waitFor(() => holders(rs).length === 1, { timeoutMs: 3_000 })
  const [holder, other] = rs[0]!.lease.state === 'holder' ? [rs[0]!, rs[1]!] : [rs[1]!, rs[0]!]
  // the holder's connection goes away without a release (as if its process were gone, seen from Redis)
  const cut = Date.now()
  await holder.link.close()
  await waitFor(() => holder.events.some((e) => e.startsWith('lost')), { timeoutMs: 2_000 })
  const gaveUp = Date.now() - cut
  await waitFor(() => other.lease.state === 'holder', { timeoutMs: 3_000 })
  const takeover = Date.now() - cut
  t.comment(`gave up after ${gaveUp} ms, taken over after ${takeover} ms (leaseMs 600)`)
  t.ok(gaveUp < takeover, 'the old holder stops before another can take over')
  t.ok(takeover >= 300, 'no takeover before the lease expired')
  t.match(holder.events, ['acquired 1', /^lost not renewed within leaseMs/])
  t.equal(other.lease.term, 2)
})

t.test('lease - a paused holder (blocked event loop for 2 × leaseMs) gives up on waking; the term grows', async (t) => {
  const redis = await startRedis(t)
  const rs = await Promise.all(['a', 'b'].map(async (id) => replica(t, redis.url, id)))
  await waitFor(() => holders(rs).length === 1, { timeoutMs: 3_000 })
  const holder = holders(rs)[0]!
  const end = Date.now() + 1_200
  while (Date.now() < end) { /* the whole process is paused: no timer, no socket */ }
  await waitFor(() => holder.events.some((e) => e.startsWith('lost')), { timeoutMs: 2_000 })
  t.match(holder.events, ['acquired 1', /^lost not renewed within leaseMs/], 'gives up at its first timer, before any renewal')
  await waitFor(() => holders(rs).length === 1, { timeoutMs: 3_000 })
  t.equal(holders(rs)[0]!.lease.term, 2)
})

t.test('lease - Redis down: the holder gives up; back (AOF): one holder again with a higher term', async (t) => {
  const redis = await startRedis(t, { appendonly: true })
  const rs = await Promise.all(['a', 'b'].map(async (id) => replica(t, redis.url, id)))
  await waitFor(() => holders(rs).length === 1, { timeoutMs: 3_000 })
  const holder = holders(rs)[0]!
  await redis.kill()
  await waitFor(() => holders(rs).length === 0, { timeoutMs: 2_000 })
  t.match(holder.events, ['acquired 1', /^lost /])
  await redis.start()
  await waitFor(() => holders(rs).length === 1, { timeoutMs: 6_000 })
  t.equal(holders(rs)[0]!.lease.term, 2)
})

t.test('lease - a holder that gives up (its takeover failed) lets another take over at once; adding twice is one lease', async (t) => {
  const redis = await startRedis(t)
  // a long lease, so that "at once" is told apart from "when the lease expired" on a loaded machine too
  const LEASE_MS = 10_000
  const rs = await Promise.all(['a', 'b'].map(async (id) => replica(t, redis.url, id, LEASE_MS)))
  await waitFor(() => holders(rs).length === 1, { timeoutMs: 3_000 })
  const [holder, other] = rs[0]!.lease.state === 'holder' ? [rs[0]!, rs[1]!] : [rs[1]!, rs[0]!]
  t.equal(await holder.leases.add('s1', { acquired: () => {}, lost: () => {} }), holder.lease, 'the same lease')
  const started = Date.now()
  holder.lease.giveUp('the takeover failed')
  t.match(holder.events, ['acquired 1', 'lost the takeover failed'])
  await waitFor(() => other.lease.state === 'holder', { timeoutMs: LEASE_MS / 2 })
  const took = Date.now() - started
  t.comment(`taken over after ${took} ms (leaseMs ${LEASE_MS})`)
  t.ok(took < LEASE_MS / 2, 'taken over long before the lease would have expired')
  t.equal(holder.lease.state, 'follower', 'the replica that gave up did not win it straight back')
})

t.test('lease - parseLease', async (t) => {
  t.same(parseLease('host-1|42'), { replicaId: 'host-1', term: 42 })
  t.equal(parseLease(null), null)
  t.equal(parseLease('nobar'), null)
})
