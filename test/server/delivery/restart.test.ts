/**
 * Durable checkpoints: the daemon (server/main.ts in a child process) is killed with SIGKILL while the
 * Salesforce-like upstream keeps publishing, then started again with the same configuration and data directory.
 * The restarted bridge subscribes from its checkpoint; an SSE caller reconnects to it with its Last-Event-ID.
 * Every event arrives downstream exactly once, in order, across two kills.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { checkpointPath } from '../../../server/event-log/checkpoint.js'
import { startSalesforceLike } from '../../helpers/salesforce.js'
import type { SalesforceLike } from '../../helpers/salesforce.js'
import { delay, waitFor } from '../../helpers/wait.js'
import { openSse, request } from '../fixtures/bridge.js'
import type { SseStream } from '../fixtures/bridge.js'
import { spawnNode } from '../fixtures/spawn.js'
import type { Child } from '../fixtures/spawn.js'
import { CHANNEL, range, sfMessages, tempDir, tokenFile } from './fixtures.js'

// three daemon starts through the TypeScript loader (a few seconds each on a busy machine)
t.setTimeout(300_000)

async function startDaemon (t: Test, configFile: string): Promise<{ child: Child, base: string, startMs: number }> {
  const started = Date.now()
  const child = spawnNode(t, 'server/main.ts', ['--config', configFile])
  const port = await child.port(60_000)
  const base = `http://127.0.0.1:${port}`
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 30_000, message: () => `readyz; stderr: ${child.stderr().slice(-1000)}` })
  return { child, base, startMs: Date.now() - started }
}

/** Publishes { n } on CHANNEL every `everyMs` until stopped (also while no bridge runs). */
function publisher (sf: SalesforceLike, everyMs: number): { stop: () => number, readonly count: number } {
  let n = 0
  const timer = setInterval(() => { sf.publish(CHANNEL, { n: ++n }) }, everyMs)
  return {
    stop: () => { clearInterval(timer); return n },
    get count () { return n }
  }
}

t.test('SIGKILL while the upstream publishes: restarted from the checkpoint, every event once, in order', async (t) => {
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 5000 }, tokens: ['tok-restart'] })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const dataDir = join(dir, 'data')
  const configFile = join(dir, 'bridge.yaml')
  writeFileSync(configFile, [
    'listen: { host: 127.0.0.1, port: 0 }',
    'logLevel: info',
    `dataDir: ${dataDir}`,
    'checkpointIntervalMs: 200',
    'sessions:',
    '  sf:',
    `    url: ${sf.url}`,
    '    connectionTypes: [long-polling]',
    `    subscribe: ["${CHANNEL}"]`,
    '    bufferSize: 1000',
    '    maxNetworkDelayMs: 2000',
    '    replay: { enabled: true, start: -2 }',
    `    auth: { tokenFile: ${tokenFile(dir, 'tok-restart')} }`,
    ''
  ].join('\n'))

  let run = await startDaemon(t, configFile)
  t.comment(`daemon 1 ready in ${run.startMs} ms`)
  const streams: SseStream[] = []
  // the first stream has no Last-Event-ID (it starts live): open it before the first event is published
  let sse = await openSse(t, `${run.base}/sessions/sf/events?channel=${CHANNEL}`)
  streams.push(sse)
  const pub = publisher(sf, 20)
  for (let kill = 1; kill <= 2; kill++) {
    // ~40 live events after the stream (re)started, so that the daemon has been writing checkpoints for a while
    const target = pub.count + 40
    await waitFor(() => sfMessages(sse).some((m) => m.n >= target), { timeoutMs: 20_000, message: () => `n=${target} on stream ${kill}` })
    const before = (await request(`${run.base}/sessions/sf`)).json.replay.checkpoint as { writes: number, lastWriteMs: number | null, pending: boolean }
    run.child.proc.kill('SIGKILL')
    const exit = await run.child.exited
    t.equal(exit.signal, 'SIGKILL', `daemon ${kill} killed`)
    await sse.done
    const got = sfMessages(sse)
    const lastId = got[got.length - 1]!.id!
    const atKill = pub.count
    const written = JSON.parse(readFileSync(checkpointPath(dataDir, 'sf'), 'utf8')) as { positions: Record<string, number> }
    const lastReplayId = got[got.length - 1]!.replayId
    t.ok(written.positions[CHANNEL]! <= lastReplayId, 'the checkpoint never runs ahead of what was delivered')
    t.comment(`kill ${kill}: caller had n=${got[got.length - 1]!.n}, checkpoint (${before.writes} writes, last took ${before.lastWriteMs} ms, ${before.pending ? 'one in progress' : 'idle'}) ${lastReplayId - written.positions[CHANNEL]!} events behind, upstream at n=${atKill}`)
    await delay(1_000) // the upstream keeps publishing while no bridge runs
    run = await startDaemon(t, configFile)
    const missed = pub.count - atKill
    t.comment(`daemon ${kill + 1} ready in ${run.startMs} ms; ${missed}+ events published while it was down`)
    sse = await openSse(t, `${run.base}/sessions/sf/events?channel=${CHANNEL}`, { 'Last-Event-ID': lastId })
    streams.push(sse)
  }
  await sse.waitEvent((e) => e.event === 'message', { count: 20, timeoutMs: 20_000 })
  const total = pub.stop()
  await waitFor(() => sfMessages(sse).some((m) => m.n === total), { timeoutMs: 20_000, message: () => `the last event (n=${total}); got up to ${sfMessages(sse).at(-1)?.n}` })
  await delay(300)
  const all = streams.flatMap((s) => sfMessages(s).map((m) => m.n))
  t.equal(streams.flatMap((s) => s.events.filter((e) => e.event === 'gap')).length, 0, 'no gap')
  t.same(all, range(1, total), `all ${total} events, once each, in order, across two SIGKILLs`)
  const view = (await request(`${run.base}/sessions/sf`)).json
  t.equal(view.replay.checkpoint.loaded, 'loaded', 'the last start loaded the checkpoint')
  t.equal(view.replay.fallbacks.count, 0)
  t.comment(`deep resumes on the last daemon: ${view.replay.deepResume.started}; handshakes on the upstream: ${sf.counters.handshakes.successes}`)
  t.notOk(existsSync(join(dataDir, 'sf.checkpoint.json.tmp')), 'no temporary file left')
  run.child.proc.kill('SIGTERM')
  t.same(await run.child.exited, { code: 0, signal: null }, 'SIGTERM still exits 0')
  const final = JSON.parse(readFileSync(checkpointPath(dataDir, 'sf'), 'utf8')) as { positions: Record<string, number> }
  t.equal(final.positions[CHANNEL], sfMessages(sse).at(-1)!.replayId, 'the shutdown wrote the last position')
})
