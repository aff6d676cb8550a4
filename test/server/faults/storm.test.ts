/**
 * Reconnect storms: a real faye server behind a counting TCP proxy (test/helpers/fault-proxy.ts) refuses every
 * connection for 35 s, first with one session, then with 20 sessions to the same origin. The sessions of the
 * daemon share one connect gate per origin (server/upstream/origin-gates.ts): while the origin refuses, one probe
 * at a time, and as soon as one is answered every session follows. Targets (default backoff settings): after the
 * first 5 s of refusal ≤ 0.5 attempts/s for one session and ≤ 1 attempt/s in all for 20; ready again ≤ 2.5 s (one
 * session) and ≤ 3 s (all 20) after the server accepts again; the same for 20 sessions that start while it refuses
 * (handshakes: each websocket or long-polling try is one attempt). Attempts are TCP connections the proxy refused.
 */
import t from 'tap'
import type { Test } from 'tap'
import { startFaultProxy } from '../../helpers/fault-proxy.js'
import { startFaye } from '../../helpers/faye.js'
import { delay, waitFor } from '../../helpers/wait.js'
import { makeConfig, startBridge } from '../fixtures/bridge.js'
import type { SessionInput } from '../fixtures/bridge.js'

t.setTimeout(240_000)

const REFUSE_MS = 35_000
const SETTLE_MS = 5_000

interface StormFigures { early: number, attempts: number, rate: number, readyMs: number[] }

/** `sessions` sessions to one origin; refused for `refuseMs` once they are ready, or from the start (`fromStart`). */
async function storm (t: Test, sessions: number, refuseMs = REFUSE_MS, fromStart = false): Promise<StormFigures> {
  const faye = await startFaye()
  t.teardown(faye.close)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: faye.port })
  t.teardown(proxy.close)
  const config: Record<string, SessionInput> = {}
  for (let i = 0; i < sessions; i++) config[`s${i}`] = { url: proxy.url('/cometd'), subscribe: [`/storm/${i}`] }
  if (fromStart) await proxy.refuse(true)
  const { app } = await startBridge(t, makeConfig(config))
  const all = [...app.bridge.sessions.values()]
  if (!fromStart) {
    await waitFor(() => all.every((s) => s.readiness().ready), { timeoutMs: 30_000, message: 'every session ready' })
    await proxy.refuse(true)
    proxy.cut()
  }
  await delay(SETTLE_MS)
  const early = proxy.stats.refused
  await delay(refuseMs - SETTLE_MS)
  const attempts = proxy.stats.refused - early
  await proxy.refuse(false)
  const acceptedAt = Date.now()
  const readyMs = new Map<string, number>()
  await waitFor(() => {
    for (const s of all) if (!readyMs.has(s.name) && s.readiness().ready) readyMs.set(s.name, Date.now() - acceptedAt)
    return readyMs.size === all.length
  }, { timeoutMs: 30_000, intervalMs: 10, message: () => `ready: ${readyMs.size} of ${all.length}` })
  return { early, attempts, rate: attempts / ((refuseMs - SETTLE_MS) / 1_000), readyMs: [...readyMs.values()].sort((a, b) => a - b) }
}

/** far below a backoff's 30 s cap, so a gate that forgot to open again still fails */
const READY_BOUND_MS = 10_000

t.test('reconnect storm - one session: ≤ 0.5 attempts/s while refused, ready ≤ 2.5 s after the upstream accepts', async (t) => {
  const f = await storm(t, 1)
  t.comment(`1 session, refused ${REFUSE_MS / 1000} s: ${f.early} attempts in the first ${SETTLE_MS / 1000} s, then ${f.attempts} in ${(REFUSE_MS - SETTLE_MS) / 1000} s = ${f.rate.toFixed(3)} attempts/s; ready ${f.readyMs[0]} ms after the upstream accepted`)
  t.ok(f.rate <= 0.5, `${f.rate.toFixed(3)} attempts/s ≤ 0.5`)
  t.ok(f.readyMs[0]! <= READY_BOUND_MS, `ready after ${f.readyMs[0]} ms ≤ ${READY_BOUND_MS} ms (2.5 s measured quiet)`)
})

t.test('reconnect storm - 20 sessions to one origin: ≤ 1 attempt/s in all, all ready soon after the upstream accepts (≤ 3 s measured quiet; bounded at 10 s here)', async (t) => {
  const f = await storm(t, 20)
  const median = f.readyMs[Math.floor(f.readyMs.length / 2)]!
  const last = f.readyMs[f.readyMs.length - 1]!
  t.comment(`20 sessions, refused ${REFUSE_MS / 1000} s: ${f.early} attempts in the first ${SETTLE_MS / 1000} s, then ${f.attempts} in ${(REFUSE_MS - SETTLE_MS) / 1000} s = ${f.rate.toFixed(3)} attempts/s in all; ready: first ${f.readyMs[0]} ms, median ${median} ms, last ${last} ms after the upstream accepted`)
  t.ok(f.rate <= 1, `${f.rate.toFixed(3)} attempts/s in all ≤ 1`)
  // the target (≤ 3 s) is measured on a quiet machine (docs/reliability.md); shared CI cores get a generous bound
  t.ok(last <= READY_BOUND_MS, `all 20 ready after ${last} ms ≤ ${READY_BOUND_MS} ms`)
})

t.test('reconnect storm - 20 sessions starting while the origin refuses (handshakes over websocket, then long-polling)', async (t) => {
  const refuseMs = 20_000
  const f = await storm(t, 20, refuseMs, true)
  const last = f.readyMs[f.readyMs.length - 1]!
  t.comment(`20 sessions started against a refusing origin, ${refuseMs / 1000} s: ${f.early} attempts in the first ${SETTLE_MS / 1000} s, then ${f.attempts} in ${(refuseMs - SETTLE_MS) / 1000} s = ${f.rate.toFixed(3)} attempts/s in all (each websocket or long-polling try is one); all ready ${f.readyMs[0]}–${last} ms after the upstream accepted`)
  t.ok(f.rate <= 1, `${f.rate.toFixed(3)} attempts/s in all ≤ 1`)
  // the target (≤ 3 s) is measured on a quiet machine (docs/reliability.md); shared CI cores get a generous bound
  t.ok(last <= READY_BOUND_MS, `all 20 ready after ${last} ms ≤ ${READY_BOUND_MS} ms`)
})
