/** server/cluster/{append,stream-log,stream-reader}.ts against a real redis-server: fenced appends, one reader loop, resume reads. */
import t from 'tap'
import { startRedis } from '../helpers/redis.js'
import { waitFor } from '../helpers/wait.js'
import { StreamWriter, storedPositions } from '../../server/cluster/append.js'
import { RedisStreamLog } from '../../server/cluster/stream-log.js'
import type { ClusterEntry } from '../../server/cluster/stream-log.js'
import { StreamReader } from '../../server/cluster/stream-reader.js'
import type { RedisLink } from '../../server/cluster/redis.js'
import { captureLog, clusterConfig, openLink } from './fixtures.js'

interface Teardown { teardown: (fn: () => unknown) => void }

/** A replica's read side for session s1: its link, reader loop and log, and what its followers got. */
async function readerReplica (t: Teardown, url: string, id: string, overrides = {}) {
  const link = await openLink(t, clusterConfig(url, { replicaId: id, ...overrides }))
  const reader = new StreamReader(link, captureLog().log)
  t.teardown(async () => { await reader.close() })
  const log = new RedisStreamLog(link, 's1', 100)
  const got: ClusterEntry[] = []
  log.follow((e) => { got.push(e) })
  await reader.add(log)
  return { link, reader, log, got }
}

async function holderWriter (link: RedisLink, lease = `${link.replicaId}|1`) {
  await link.send(['SET', link.key('session', 's1', 'lease'), lease, 'PX', '60000'])
  const fenced: string[] = []
  const writer = new StreamWriter(link, 's1', lease, (reason) => { fenced.push(reason) })
  return { writer, fenced }
}

const msg = (n: number, channel = '/a') => ({ kind: 'm' as const, channel, payload: JSON.stringify({ channel, data: { n } }) })

t.test('stream log - appends reach every replica in order with the same ids', async (t) => {
  const redis = await startRedis(t)
  const a = await readerReplica(t, redis.url, 'a')
  const b = await readerReplica(t, redis.url, 'b')
  const { writer } = await holderWriter(a.link)
  const ids = await Promise.all(Array.from({ length: 50 }, async (_, i) => writer.append(msg(i))))
  await waitFor(() => a.got.length === 50 && b.got.length === 50, { timeoutMs: 5_000 })
  t.same(a.got.map((e) => e.id), b.got.map((e) => e.id), 'identical ids on both replicas')
  t.same(a.got.map((e) => JSON.parse(e.frame.json).data.n), Array.from({ length: 50 }, (_, i) => i), 'in append order')
  t.same(ids.map((r) => 'id' in r ? `${a.link.epoch}:${r.id}` : null), a.got.map((e) => e.id))
  t.match(a.got[0]!.frame.sse().toString(), new RegExp(`^id: ${a.link.epoch}:\\d+-\\d+\\nevent: message\\ndata: \\{"channel":"/a","data":\\{"n":0\\}\\}\\n\\n$`))
  t.equal(a.got[49]!.seq, 50, 'local positions are consecutive')
})

t.test('stream log - an append with a stale lease is fenced inside Redis and writes nothing', async (t) => {
  const redis = await startRedis(t)
  const a = await readerReplica(t, redis.url, 'a')
  const { writer: stale, fenced } = await holderWriter(a.link, 'a|1')
  await stale.append(msg(1))
  // another replica took over (term 2)
  await a.link.send(['SET', a.link.key('session', 's1', 'lease'), 'b|2', 'PX', '60000'])
  await t.rejects(stale.append(msg(2)), { code: 'LEASE_FENCED' })
  await t.rejects(stale.append(msg(3)), { code: 'LEASE_FENCED' }, 'stays fenced')
  t.equal(fenced.length, 1, 'told once')
  t.match(fenced[0], /^FENCED/)
  t.equal(await a.link.send(['XLEN', a.link.key('session', 's1', 'stream')]), 1)
  // the epoch is checked too
  const { writer: other } = await holderWriter(a.link, 'a|3')
  await a.link.send(['SET', a.link.key('epoch'), 'someotherepoch'])
  await t.rejects(other.append(msg(4)), { code: 'REDIS_EPOCH_CHANGED' })
})

t.test('stream log - replay positions stored in the same step; an old position is a duplicate', async (t) => {
  const redis = await startRedis(t)
  const a = await readerReplica(t, redis.url, 'a')
  const { writer } = await holderWriter(a.link)
  t.match(await writer.append({ ...msg(1, '/event/E'), position: 1001 }), { id: /^\d+-\d+$/ })
  t.match(await writer.append({ ...msg(2, '/event/E'), position: 1005 }), { id: /^\d+-\d+$/ })
  t.same(await writer.append({ ...msg(1, '/event/E'), position: 1001 }), { duplicate: true })
  t.same(await writer.append({ ...msg(2, '/event/E'), position: 1005 }), { duplicate: true })
  t.match(await writer.append({ ...msg(3, '/event/F'), position: 1002 }), { id: /./ }, 'positions are per channel')
  t.match(await writer.append({ ...msg(4, '/event/S'), position: 'tok-1' }), { id: /./ })
  t.same(Object.fromEntries(await storedPositions(a.link, 's1')), { '/event/E': '1005', '/event/F': '1002', '/event/S': 's:tok-1' })
  await waitFor(() => a.got.length === 4)
  t.same(a.got.map((e) => e.replayId), [1001, 1005, 1002, 'tok-1'])
})

t.test('stream log - resume reads: after an id, unknown ids, trimmed ids, coverage and holder changes', async (t) => {
  const redis = await startRedis(t)
  const a = await readerReplica(t, redis.url, 'a', { streamMaxLen: 100 })
  const { writer } = await holderWriter(a.link)
  await writer.append(msg(-1, '/a/x'))
  await writer.append({ kind: 'x', payload: '{"status":"subscribed","channel":"/a/**"}', subscription: { op: 'set', pattern: '/a/**' } })
  for (let i = 0; i < 10; i++) await writer.append(msg(i, i % 2 === 0 ? '/a/x' : '/b'))
  await waitFor(() => a.got.length === 12)
  const third = a.got[4]!.id // n=2 on /a/x
  const all = () => true
  const r = await a.log.readFrom(third, all, ['/a/x', '/b'])
  t.same(r.entries.map((e) => JSON.parse(e.frame.json).data.n), [3, 4, 5, 6, 7, 8, 9])
  t.same(r.gone, null)
  t.equal(r.afterId, third)
  t.same(r.uncovered, ['/b'], '/b was never subscribed upstream; /a/x is covered by /a/**')
  t.equal(r.mayHaveMissed, false)
  const onlyA = await a.log.readFrom(third, (c) => c === '/a/x', ['/a/x'])
  t.same(onlyA.entries.map((e) => JSON.parse(e.frame.json).data.n), [4, 6, 8])
  t.same(onlyA.uncovered, [])
  // coverage starts at the marker: an id before it is not covered
  const first = await a.log.readFrom(a.got[0]!.id, all, ['/a/x'])
  t.same(first.uncovered, ['/a/x'])
  t.match(await a.log.readFrom(`${a.link.epoch}:0-1`, all, ['/a/x']), { gone: { reason: 'too-old' } }, 'older than the first entry')
  // unknown: another epoch, garbage, the future
  for (const id of [`zzz:${a.got[3]!.streamId}`, 'garbage', `${a.link.epoch}:99999999999999-0`]) {
    t.match(await a.log.readFrom(id, all, ['/a/x']), { gone: { reason: 'unknown-id' }, entries: [] }, id)
  }
  // a holder change that may have lost events
  await writer.append({ kind: 'u', payload: '{"status":"holder","mayHaveMissed":true}' })
  await writer.append(msg(10, '/a/x'))
  await waitFor(() => a.got.length === 14)
  t.match(await a.log.readFrom(third, all, ['/a/x']), { mayHaveMissed: true, gone: null })
  // trimmed: MAXLEN ~ 100 drops whole nodes of 100 entries
  const losses: number[] = []
  a.log.onLoss((missed) => { losses.push(missed) })
  await Promise.all(Array.from({ length: 400 }, async (_, i) => writer.append(msg(100 + i, '/a/x'))))
  await waitFor(() => JSON.parse(a.got[a.got.length - 1]!.frame.json).data.n === 499, { timeoutMs: 10_000 })
  const missed = losses.reduce((x, y) => x + y, 0)
  t.equal(a.got.length + missed, 414, `every entry delivered or counted as missed (${missed} trimmed before the reader got them)`)
  const old = await a.log.readFrom(third, (c) => c === '/a/x', ['/a/x'])
  t.match(old, { gone: { reason: 'too-old' }, firstAvailableId: new RegExp(`^${a.link.epoch}:`) })
  t.ok(old.entries.length >= 100 && old.entries.length < 414, `what is left is replayed (${old.entries.length})`)
  t.equal(JSON.parse(old.entries[old.entries.length - 1]!.frame.json).data.n, 499)
})

t.test('stream log - a read while appends go on, then the live tail: nothing missed, nothing twice', async (t) => {
  const redis = await startRedis(t)
  // nothing trimmed during the test (up to 2,000 appends)
  const a = await readerReplica(t, redis.url, 'a', { streamMaxLen: 10_000 })
  const { writer } = await holderWriter(a.link)
  for (let i = 0; i < 20; i++) await writer.append(msg(i))
  await waitFor(() => a.got.length === 20)
  const from = a.got[4]!.id
  let appending = true
  const appends = (async () => { for (let i = 20; appending && i < 2_000; i++) await writer.append(msg(i)) })()
  const results: number[][] = []
  for (let round = 0; round < 5; round++) {
    const seen: number[] = []
    const r = await a.log.readFrom(from, () => true, ['/a'])
    t.equal(r.gone, null)
    // routed in the same turn the read resolved: the live tail continues exactly there
    for (const e of r.entries) seen.push(JSON.parse(e.frame.json).data.n)
    const after = a.log.lastSeq
    const stop = a.log.follow((e) => { if (e.seq > after) seen.push(JSON.parse(e.frame.json).data.n) })
    await new Promise((resolve) => setTimeout(resolve, 100))
    stop()
    results.push(seen)
  }
  appending = false
  await appends
  for (const seen of results) {
    const wrong = seen.findIndex((n, i) => n !== i + 5)
    t.equal(wrong, -1, `contiguous from 5 (${seen.length} events)${wrong < 0 ? '' : `: at ${wrong} ${JSON.stringify(seen.slice(Math.max(0, wrong - 3), wrong + 3))}`}`)
  }
})

t.test('stream log - Redis restarted empty: the logs start over on the new stream, followers hear of it', async (t) => {
  const redis = await startRedis(t)
  const a = await readerReplica(t, redis.url, 'a')
  const resets: Array<string | null> = []
  a.log.onReset((previous) => { resets.push(previous) })
  const { writer } = await holderWriter(a.link)
  for (let i = 0; i < 3; i++) await writer.append(msg(i))
  await waitFor(() => a.got.length === 3)
  const before = a.got[2]!.id
  await redis.restart()
  await waitFor(() => resets.length === 1, { timeoutMs: 8_000 })
  t.same(resets, [before])
  const { writer: again } = await holderWriter(a.link)
  await again.append(msg(100))
  await waitFor(() => a.got.length === 4, { timeoutMs: 5_000 })
  t.equal(JSON.parse(a.got[3]!.frame.json).data.n, 100)
  t.notMatch(a.got[3]!.id, new RegExp(`^${before.split(':')[0]}:`), 'a new epoch in the ids')
  t.match(await a.log.readFrom(before, () => true, ['/a']), { gone: { reason: 'unknown-id' } }, 'an id of the lost data is unknown')
})
