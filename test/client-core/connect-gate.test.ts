/**
 * ConnectGate (client-core/connect-gate.ts): the turns it gives — all at once while the origin answers, one probe
 * at a time while it refuses, everyone as soon as a probe is answered — and, with real clients of a real faye
 * server behind a TCP fault proxy, one probe at a time for five clients sharing the gate.
 */
import t from 'tap'
import { Client, ConnectGate, HttpStatusError, ServerError, TransportError, originOutcome } from '../../client-core/index.js'
import type { GateTurn } from '../../client-core/index.js'
import { startFaultProxy } from '../helpers/fault-proxy.js'
import { startFaye } from '../helpers/faye.js'
import { delay, waitFor } from '../helpers/wait.js'

// the gate's timers are unref()'d (they never hold a process open): this one does, while the units wait
const alive = setInterval(() => {}, 1_000)
t.teardown(() => { clearInterval(alive) })

t.test('connect gate - open: every turn at once; the first refusal closes it; one probe at a time', async (t) => {
  const gate = new ConnectGate({ initialMs: 40, maxMs: 80, jitter: 0 })
  const a = await gate.turn()
  const b = await gate.turn()
  t.same([a.probe, b.probe, gate.state], [false, false, 'open'], 'open: turns at once, no probe')
  a.refused()
  t.equal(gate.state, 'refusing', 'the first refusal closes the gate')
  b.refused() // the same burst: counted once
  t.equal(gate.stats.refusals, 1, 'a second refusal of the same burst does not count twice')
  const started = Date.now()
  const got: GateTurn[] = []
  const waiting = [gate.turn(), gate.turn(), gate.turn()].map(async (p) => { const turn = await p; got.push(turn); return turn })
  await waitFor(() => got.length === 1, { timeoutMs: 2_000 })
  t.ok(Date.now() - started >= 20, `the probe waited for the first delay (${Date.now() - started} ms)`)
  t.ok(got[0]!.probe, 'it is a probe')
  await delay(150)
  t.equal(got.length, 1, 'one probe at a time: the others wait while it runs')
  got[0]!.refused()
  await waitFor(() => got.length === 2, { timeoutMs: 2_000 })
  t.ok(got[1]!.probe, 'after a refused probe, the next waiter probes (after the next delay)')
  got[1]!.answered()
  await Promise.all(waiting)
  t.same([got.length, got[2]!.probe, gate.state], [3, false, 'open'], 'answered: the others follow at once, the gate is open')
  t.same(gate.stats, { probes: 2, refusals: 2, reopened: 1 })
})

t.test('connect gate - waits grow to maxMs within the jitter band; aborts; releases; stale outcomes', async (t) => {
  const gate = new ConnectGate({ initialMs: 20, maxMs: 100, jitter: 0.5 })
  const first = await gate.turn()
  first.refused()
  const waits: number[] = []
  for (let i = 0; i < 5; i++) {
    const before = gate.retryInMs
    waits.push(before)
    const probe = await gate.turn()
    probe.refused()
  }
  // caps 20, 40, 80, 100, 100 (doubling, at most maxMs); each wait within [cap/2, cap]
  const caps = [20, 40, 80, 100, 100]
  t.ok(waits.every((w, i) => w <= caps[i]! && w >= caps[i]! / 2 - 5), `waits ${waits.join(', ')} ms within [cap/2, cap] of ${caps.join(', ')}`)
  const controller = new AbortController()
  const aborted = gate.turn(controller.signal)
  controller.abort(new Error('closed'))
  await t.rejects(aborted, /closed/, 'an aborted wait rejects with the reason')
  const probe = await gate.turn()
  const next = gate.turn()
  probe.release()
  t.ok((await next).probe, 'a released probe passes to the next waiter')
  ;(await Promise.resolve(next)).answered()
  t.equal(gate.state, 'open')
  const stale = await gate.turn()
  const fresh = await gate.turn()
  fresh.refused()
  const reopen = await gate.turn()
  reopen.answered()
  stale.refused()
  t.equal(gate.state, 'open', 'a refusal from before the last change of state is stale: it does not close the gate again')
})

t.test('connect gate - what an error says about the origin', async (t) => {
  t.equal(originOutcome(new TransportError('ECONNREFUSED')), 'refused')
  t.equal(originOutcome(new HttpStatusError(503, '')), 'refused')
  t.equal(originOutcome(new HttpStatusError(429, '')), 'refused')
  t.equal(originOutcome(new HttpStatusError(401, '')), 'answered', 'a 401 is an answer (a token matter, not a refusal of connections)')
  t.equal(originOutcome(new ServerError('x', { channel: '/meta/handshake', successful: false, error: '403::denied' })), 'answered')
})

t.test('connect gate - five clients of a refusing faye server: one probe at a time, all back together', async (t) => {
  const faye = await startFaye({ timeoutSec: 30 })
  t.teardown(faye.close)
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: faye.port })
  t.teardown(proxy.close)
  const gate = new ConnectGate({ initialMs: 100, maxMs: 600 })
  // websocket: over long-polling Faye keeps a held connect whose socket was cut, and answers the client's next
  // connects only at its timeout (30 s here), gate or not
  const clients = Array.from({ length: 5 }, () => new Client(proxy.url('/cometd'), { connectionTypes: ['websocket'], connectGate: gate }))
  t.teardown(async () => { await Promise.all(clients.map(async (c) => { await c.close() })) })
  await Promise.all(clients.map(async (c) => { await c.open() }))
  await proxy.refuse(true)
  proxy.cut()
  const REFUSE_MS = 4_000
  await delay(1_000)
  const atOne = proxy.stats.refused
  await delay(REFUSE_MS - 1_000)
  const attempts = proxy.stats.refused - atOne
  await proxy.refuse(false)
  const backAt = Date.now()
  await waitFor(() => clients.every((c) => c.state === 'connected'), { timeoutMs: 15_000, message: () => `states ${clients.map((c) => c.state).join(', ')}; gate ${gate.state}, waiting ${gate.waiting}, ${JSON.stringify(gate.stats)}` })
  const backMs = Date.now() - backAt
  const rate = attempts / ((REFUSE_MS - 1_000) / 1_000)
  t.comment(`5 clients, gate maxMs 600: ${attempts} attempts in ${REFUSE_MS - 1_000} ms after the first second (${rate.toFixed(2)}/s); all connected ${backMs} ms after the server accepted`)
  t.ok(rate <= 1 / 0.6 / 0.85 + 0.5, `about one attempt per wait for all five (${rate.toFixed(2)}/s; without the gate each would try on its own)`)
  t.ok(backMs <= 600 + 1_500, `all back within the largest wait and a generous margin (${backMs} ms)`)
  t.equal(gate.state, 'open')
})
