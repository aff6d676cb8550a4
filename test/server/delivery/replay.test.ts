/**
 * Replay through the bridge, against the Salesforce-like fixture (test/helpers/salesforce.ts): a stored position
 * the upstream refuses falls back and is reported (`event: upstream`, GET /sessions/:name); a caller whose
 * Last-Event-ID is older than the ring is served from the upstream's retention (deep resume) and then joins the
 * live stream — every event once, in order; a position the upstream no longer retains gives `replay-expired`;
 * the checkpoint file follows the ring.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import t from 'tap'
import { checkpointPath } from '../../../server/event-log/checkpoint.js'
import { checkpointUrl } from '../../../server/upstream/reliability.js'
import { startSalesforceLike } from '../../helpers/salesforce.js'
import { waitFor } from '../../helpers/wait.js'
import { localSession, openSse, request, startBridge, waitConnected } from '../fixtures/bridge.js'
import { CHANNEL, range, sfConfig, sfMessages, startReadyBridge, tempDir, tokenFile } from './fixtures.js'

t.setTimeout(120_000)

t.test('invalid stored position: the fallback happens and is reported', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 3 }, tokens: ['tok-1'] })
  t.teardown(sf.close)
  const events = range(1, 5).map((n) => sf.publish(CHANNEL, { n }))
  const dir = tempDir(t)
  // a checkpoint from an earlier run, pointing at an event the upstream no longer retains
  const refused = events[0]!.data.event.replayId
  writeFileSync(checkpointPath(dir, 'sf'), JSON.stringify({
    version: 1, session: 'sf', url: checkpointUrl(sf.url), updatedAt: new Date().toISOString(), positions: { [CHANNEL]: refused }
  }))
  const config = sfConfig(sf.url, dir, { auth: { tokenFile: tokenFile(dir, 'tok-1') } })
  const { app, base, logs } = await startBridge(t, config)
  await waitConnected(app)
  // the stream subscribes (no permanent subscription): it sees the fallback happen
  const sse = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
  const upstream = await sse.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'replay-fallback')
  const report = JSON.parse(upstream.data)
  t.match(report, { session: 'sf', status: 'replay-fallback', channel: CHANNEL, refused, fallback: -2, mayHaveMissed: true })
  t.match(report.error, /^400::The replayId \{\d+\} you provided was invalid/)
  await sse.waitEvent((e) => e.event === 'message', { count: 3 })
  t.same(sfMessages(sse).map((m) => m.n), [3, 4, 5], 'everything the upstream still retains (fallback -2)')

  const view = (await request(`${base}/sessions/sf`)).json
  t.equal(view.replay.fallbacks.count, 1)
  t.match(view.replay.fallbacks.last[0], { channel: CHANNEL, refused, fallback: -2 })
  t.equal(view.replay.checkpoint.loaded, 'loaded')
  await waitFor(() => JSON.parse(readFileSync(checkpointPath(dir, 'sf'), 'utf8')).positions[CHANNEL] === events[4]!.data.event.replayId,
    { timeoutMs: 5_000, message: 'the checkpoint moved to the last event in the ring' })
  t.equal(view.replay.positions[CHANNEL], events[4]!.data.event.replayId)
  t.notMatch(logs.text(), /tok-1/, 'the token is never logged')
})

t.test('a checkpoint written for another upstream URL is ignored, not sent', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, tokens: ['tok-1'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  writeFileSync(checkpointPath(dir, 'sf'), JSON.stringify({
    version: 1, session: 'sf', url: 'https://other.my.salesforce.com/cometd/59.0', updatedAt: new Date().toISOString(), positions: { [CHANNEL]: 12345 }
  }))
  const config = sfConfig(sf.url, dir, { auth: { tokenFile: tokenFile(dir, 'tok-1') }, subscribe: [CHANNEL] })
  const { app, base } = await startReadyBridge(t, config)
  const view = (await request(`${base}/sessions/sf`)).json
  t.equal(view.replay.checkpoint.loaded, 'ignored')
  t.match(view.replay.checkpoint.loadReason, /another upstream/)
  t.equal(view.replay.fallbacks.count, 0, 'the foreign position was never sent')
})

t.test('deep resume: a Last-Event-ID older than the ring is served from the upstream, then live', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 100 }, tokens: ['tok-1'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const config = sfConfig(sf.url, dir, { auth: { tokenFile: tokenFile(dir, 'tok-1') }, subscribe: [CHANNEL], bufferSize: 5 })
  const { app, base, logs } = await startReadyBridge(t, config)
  const first = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
  for (const n of range(1, 20)) sf.publish(CHANNEL, { n })
  await first.waitEvent((e) => e.event === 'message', { count: 20 })
  const ids = sfMessages(first).map((m) => m.id!)
  t.match(ids[2], /^[a-z0-9]+-3\.\d+\.[a-z0-9]+$/, 'ids carry the upstream position')
  first.close()

  const handshakesBefore = sf.counters.handshakes.successes
  const started = Date.now()
  const resumed = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`, { 'Last-Event-ID': ids[2]! })
  await resumed.waitEvent((e) => e.event === 'message', { count: 17 })
  const replayed = (await request(`${base}/sessions/sf`)).json.replay.deepResume.replayedEvents as number
  t.comment(`deep resume: 17 events (${replayed} from the upstream, ${17 - replayed} from the ring) in ${Date.now() - started} ms`)
  t.equal(resumed.events.filter((e) => e.event === 'gap').length, 0, 'no gap')
  sf.publish(CHANNEL, { n: 21 })
  sf.publish(CHANNEL, { n: 22 })
  await resumed.waitEvent((e) => e.event === 'message', { count: 19 })
  t.same(sfMessages(resumed).map((m) => m.n), range(4, 22), 'every event once, in order, then live')
  t.equal(sf.counters.handshakes.successes - handshakesBefore, 1, 'one extra upstream client')
  await waitFor(() => sf.sessions() === 1, { timeoutMs: 5_000, message: () => `upstream sessions: ${sf.sessions()}` })
  t.pass('the extra client disconnected after the join')
  const view = (await request(`${base}/sessions/sf`)).json
  t.match(view.replay.deepResume, { started: 1, joined: 1, failed: 0, active: 0 })
  t.ok(view.replay.deepResume.replayedEvents >= 12 && view.replay.deepResume.replayedEvents <= 15, `replayed ${view.replay.deepResume.replayedEvents} from the upstream`)

  // resuming from an id of the deep resume itself works the same way
  const again = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`, { 'Last-Event-ID': resumed.messages()[4]!.id! })
  await again.waitEvent((e) => e.event === 'message', { count: 14 })
  t.same(sfMessages(again).map((m) => m.n), range(9, 22))
  t.notMatch(logs.text(), /tok-1/, 'the token is never logged')
})

t.test('deep resume: a position the upstream no longer retains gives replay-expired, then what is retained', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 10 }, tokens: ['tok-1'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const config = sfConfig(sf.url, dir, { auth: { tokenFile: tokenFile(dir, 'tok-1') }, subscribe: [CHANNEL], bufferSize: 5 })
  const { app, base } = await startReadyBridge(t, config)
  const first = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
  for (const n of range(1, 20)) sf.publish(CHANNEL, { n })
  await first.waitEvent((e) => e.event === 'message', { count: 20 })
  const ids = sfMessages(first).map((m) => m.id!)
  first.close()
  const resumed = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`, { 'Last-Event-ID': ids[2]! })
  await resumed.waitEvent((e) => e.event === 'message', { count: 10 })
  const gap = resumed.events.find((e) => e.event === 'gap')
  t.ok(gap, 'a gap')
  t.match(JSON.parse(gap!.data), { reason: 'replay-expired', lastEventId: ids[2], channels: [CHANNEL] })
  t.ok(resumed.events.indexOf(gap!) < resumed.events.findIndex((e) => e.event === 'message'), 'the gap comes first')
  t.same(sfMessages(resumed).map((m) => m.n), range(11, 20), 'everything the upstream retains, once, in order')
})

t.test('deep resume: with every slot taken, the caller gets the ring and a gap saying so', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 100 }, tokens: ['tok-1'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const config = sfConfig(sf.url, dir, {
    auth: { tokenFile: tokenFile(dir, 'tok-1') },
    subscribe: [CHANNEL],
    bufferSize: 5,
    replay: { enabled: true, start: -1, fallback: -2, deepResume: true, deepResumeMaxClients: 0 }
  })
  const { app, base } = await startReadyBridge(t, config)
  const first = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
  for (const n of range(1, 10)) sf.publish(CHANNEL, { n })
  await first.waitEvent((e) => e.event === 'message', { count: 10 })
  const ids = sfMessages(first).map((m) => m.id!)
  first.close()
  const before = sf.counters.handshakes.attempts
  const resumed = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`, { 'Last-Event-ID': ids[1]! })
  await resumed.waitEvent((e) => e.event === 'message', { count: 5 })
  t.match(JSON.parse(resumed.events[0]!.data), { reason: 'too-old', deepResume: 'busy' })
  t.same(sfMessages(resumed).map((m) => m.n), range(6, 10))
  t.equal(sf.counters.handshakes.attempts, before, 'no extra upstream client')
})

t.test('across a restart: a caller behind the checkpoint is replayed from the upstream up to where the new run started', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 100 }, tokens: ['tok-1'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const config = sfConfig(sf.url, dir, { auth: { tokenFile: tokenFile(dir, 'tok-1') }, subscribe: [CHANNEL] })
  const one = await startReadyBridge(t, config)
  const first = await openSse(t, `${one.base}/sessions/sf/events?channel=${CHANNEL}`)
  for (const n of range(1, 10)) sf.publish(CHANNEL, { n })
  await first.waitEvent((e) => e.event === 'message', { count: 10 })
  const behind = sfMessages(first)[4]!.id! // the caller processed only 5 of them
  await one.app.close() // writes the final checkpoint: position of n=10
  for (const n of range(11, 15)) sf.publish(CHANNEL, { n })

  const two = await startReadyBridge(t, config)
  t.equal(localSession(two.app, 'sf').seq, 5, 'the new run took in 11..15 from its checkpoint')
  const resumed = await openSse(t, `${two.base}/sessions/sf/events?channel=${CHANNEL}`, { 'Last-Event-ID': behind })
  await resumed.waitEvent((e) => e.event === 'message', { count: 10 })
  sf.publish(CHANNEL, { n: 16 })
  await resumed.waitEvent((e) => e.event === 'message', { count: 11 })
  t.equal(resumed.events.filter((e) => e.event === 'gap').length, 0, 'no gap')
  t.same(sfMessages(resumed).map((m) => m.n), range(6, 16), '6..10 from the upstream, 11..15 from the ring, then live')
  t.match((await request(`${two.base}/sessions/sf`)).json.replay.deepResume, { started: 1, joined: 1 })

  // a caller that had everything before the restart resumes from the ring of the new run, no extra client
  const ahead = await openSse(t, `${two.base}/sessions/sf/events?channel=${CHANNEL}`, { 'Last-Event-ID': sfMessages(first)[9]!.id! })
  await ahead.waitEvent((e) => e.event === 'message', { count: 6 })
  t.same(sfMessages(ahead).map((m) => m.n), range(11, 16))
  t.match((await request(`${two.base}/sessions/sf`)).json.replay.deepResume, { started: 1 })
  // several channels: positions per channel cannot be recovered from one id
  const multi = await openSse(t, `${two.base}/sessions/sf/events?channel=${CHANNEL}&channel=/event/Other__e`, { 'Last-Event-ID': behind })
  await multi.waitEvent((e) => e.event === 'gap')
  t.match(JSON.parse(multi.events[0]!.data), { reason: 'unknown-id' })
})

t.test('a restart past the retention window: the session reports replay-fallback, a caller resuming gets replay-expired', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 5 }, tokens: ['tok-1'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const config = sfConfig(sf.url, dir, { auth: { tokenFile: tokenFile(dir, 'tok-1') }, subscribe: [CHANNEL] })
  const one = await startReadyBridge(t, config)
  const first = await openSse(t, `${one.base}/sessions/sf/events?channel=${CHANNEL}`)
  for (const n of range(1, 3)) sf.publish(CHANNEL, { n })
  await first.waitEvent((e) => e.event === 'message', { count: 3 })
  const lastId = sfMessages(first)[2]!.id!
  await one.app.close() // the checkpoint holds the position of n=3
  for (const n of range(4, 12)) sf.publish(CHANNEL, { n }) // the upstream now retains 8..12 only

  // the bridge's own stored position is refused: replay-fallback (the session's report: log, GET /sessions)
  const two = await startReadyBridge(t, config)
  const view = (await request(`${two.base}/sessions/sf`)).json
  t.equal(view.replay.fallbacks.count, 1, 'the stored position fell back: replay-fallback')
  t.ok(two.logs.lines.some((l) => /fell back/.test(String(l.msg))), 'and a warning says so')
  // a caller's own position is older than the retention: replay-expired, then everything retained
  const resumed = await openSse(t, `${two.base}/sessions/sf/events?channel=${CHANNEL}`, { 'Last-Event-ID': lastId })
  await resumed.waitEvent((e) => e.event === 'message', { count: 5 })
  const gaps = resumed.events.filter((e) => e.event === 'gap').map((e) => JSON.parse(e.data) as { reason: string })
  t.same(gaps.map((g) => g.reason), ['replay-expired'], 'the caller is told replay-expired (its position), once')
  t.same(sfMessages(resumed).map((m) => m.n), range(8, 12), 'then what the upstream retains, once, in order')
})

t.test('deep resume that never meets the ring (a new run without checkpoint): joins when the upstream goes quiet', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 100 }, tokens: ['tok-1'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const one = await startBridge(t, sfConfig(sf.url, tempDir(t), { auth: { tokenFile: tokenFile(dir, 'tok-1') }, subscribe: [CHANNEL] }))
  await waitFor(async () => (await request(`${one.base}/readyz`)).status === 200, { timeoutMs: 10_000 })
  const first = await openSse(t, `${one.base}/sessions/sf/events?channel=${CHANNEL}`)
  for (const n of range(1, 10)) sf.publish(CHANNEL, { n })
  await first.waitEvent((e) => e.event === 'message', { count: 10 })
  await one.app.close()
  // another data directory: the new run starts with -1 (new events only) and knows nothing of 1..10
  const two = await startBridge(t, sfConfig(sf.url, tempDir(t), { auth: { tokenFile: tokenFile(dir, 'tok-1') }, subscribe: [CHANNEL] }))
  await waitFor(async () => (await request(`${two.base}/readyz`)).status === 200, { timeoutMs: 10_000 })
  const started = Date.now()
  const resumed = await openSse(t, `${two.base}/sessions/sf/events?channel=${CHANNEL}`, { 'Last-Event-ID': sfMessages(first)[4]!.id! })
  await resumed.waitEvent((e) => e.event === 'message', { count: 5 })
  await waitFor(async () => (await request(`${two.base}/sessions/sf`)).json.replay.deepResume.active === 0, { timeoutMs: 10_000 })
  t.comment(`joined after the upstream was quiet: ${Date.now() - started} ms`)
  sf.publish(CHANNEL, { n: 11 })
  await resumed.waitEvent((e) => e.event === 'message', { count: 6 })
  t.same(sfMessages(resumed).map((m) => m.n), range(6, 11), 'the upstream backlog, then live, none twice')
  t.match((await request(`${two.base}/sessions/sf`)).json.replay.deepResume, { started: 1, joined: 1, failed: 0 })
})

t.test('an event delivered twice by the upstream (same replayId) is taken once', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, tokens: ['tok-1'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const { app, base } = await startBridge(t, sfConfig(sf.url, dir, { auth: { tokenFile: tokenFile(dir, 'tok-1') }, subscribe: [CHANNEL] }))
  await waitConnected(app)
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 10_000 })
  const sse = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
  const ev = sf.publish(CHANNEL, { n: 1 })
  await sse.waitEvent((e) => e.event === 'message')
  sf.cometd.createServerChannel(CHANNEL).publish(null, ev.data, () => {}) // the same event again
  sf.publish(CHANNEL, { n: 2 })
  await sse.waitEvent((e) => e.event === 'message', { count: 2 })
  await waitFor(async () => (await request(`${base}/sessions/sf`)).json.replay.duplicatesDropped === 1, { timeoutMs: 5_000 })
  t.same(sfMessages(sse).map((m) => m.n), [1, 2])
  t.equal(localSession(app, 'sf').seq, 2)
})
