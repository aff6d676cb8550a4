/**
 * Token rotation against the Salesforce-like fixture (a real cometd-nodejs-server checking Bearer tokens):
 *  - the secret is revoked first and the new token file written a moment later (the order a rotation by an
 *    operator or a secret manager often has): the refusal re-reads the file at once, a file that still holds the
 *    refused token is read again after a wait instead of sending it again — at most 3 refused handshakes per
 *    revocation, and nothing lost (replay);
 *  - the token is revoked and no new one comes: `token-failed` (event, GET /sessions/:name, metric) after
 *    `auth.maxRefusals` refusals, retries slow down, and the session recovers once a new token is written.
 */
import t from 'tap'
import type { Test } from 'tap'
import { startSalesforceLike } from '../../helpers/salesforce.js'
import type { SalesforceLike } from '../../helpers/salesforce.js'
import { delay, waitFor } from '../../helpers/wait.js'
import { openSse, request } from '../fixtures/bridge.js'
import { CHANNEL, range, sfConfig, sfMessages, startReadyBridge, tempDir, tokenFile, writeToken } from './fixtures.js'

t.setTimeout(120_000)

/** The fixture accepting one token (`accepted.token`, changed by the test), a bridge with its token in a file, ready. */
async function rotatingBridge (t: Test, first: string, auth: Record<string, unknown> = {}) {
  const accepted = { token: first }
  const sf = await startSalesforceLike({ timeoutMs: 1500, retention: { count: 2000 }, tokens: (tok) => tok === accepted.token })
  t.teardown(sf.close)
  const dir = tempDir(t)
  const file = tokenFile(dir, first)
  const running = await startReadyBridge(t, sfConfig(sf.url, dir, { auth: { tokenFile: file, ...auth }, subscribe: [CHANNEL] }))
  return { sf, file, accepted, ...running, session: running.app.bridge.sessions.get('sf')! }
}

/** Handshakes the fixture refused (403::Handshake denied) so far. */
function refusedHandshakes (sf: SalesforceLike): number {
  return sf.counters.handshakes.attempts - sf.counters.handshakes.successes
}

t.test('rotation - revoked, then the new token file written: ≤ 3 refused handshakes per revocation, nothing lost', async (t) => {
  const { sf, file, accepted, base, logs, session } = await rotatingBridge(t, 'rotating-token-0')
  const sse = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
  let n = 0
  const timer = setInterval(() => { sf.publish(CHANNEL, { n: ++n }) }, 25)
  t.teardown(() => { clearInterval(timer) })
  await sse.waitEvent((e) => e.event === 'message', { count: 10 })

  const REVOCATIONS = 3
  const GAP_MS = 600 // between the revocation and the new file
  const perRevocation: Array<{ refused: number, authFailures: number, backMs: number }> = []
  for (let i = 1; i <= REVOCATIONS; i++) {
    const before = { refused: refusedHandshakes(sf), authFailures: sf.counters.authFailures, rehandshakes: session.stats.rehandshakes }
    const revokedAt = Date.now()
    sf.revoke(accepted.token)
    await delay(GAP_MS)
    accepted.token = `rotating-token-${i}`
    writeToken(file, accepted.token)
    await waitFor(() => session.stats.rehandshakes > before.rehandshakes && session.readiness().ready, { timeoutMs: 30_000, message: `ready again after revocation ${i}` })
    perRevocation.push({ refused: refusedHandshakes(sf) - before.refused, authFailures: sf.counters.authFailures - before.authFailures, backMs: Date.now() - revokedAt })
    await delay(300)
  }
  clearInterval(timer)
  const total = n
  await waitFor(() => sfMessages(sse).some((m) => m.n === total), { timeoutMs: 15_000, message: () => `n=${total}; got up to ${sfMessages(sse).at(-1)?.n}` })

  t.comment(`revoked, new file ${GAP_MS} ms later, ${REVOCATIONS} times: ${perRevocation.map((r, i) => `#${i + 1}: ${r.refused} refused handshakes, ${r.authFailures} refusals in all, ready ${r.backMs} ms after the revocation`).join('; ')}`)
  for (const [i, r] of perRevocation.entries()) t.ok(r.refused <= 3, `revocation ${i + 1}: ${r.refused} refused handshakes (≤ 3)`)
  t.same(sfMessages(sse).map((m) => m.n), range(1, total), `all ${total} events once, in order`)
  const view = (await request(`${base}/sessions/sf`)).json
  t.match(view.auth, { source: 'tokenFile', status: 'ok', refusals: 0, refreshes: REVOCATIONS })
  t.notOk(sse.events.some((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'token-failed'), 'no token-failed: each rotation came in time')
  t.notMatch(logs.text(), /rotating-token-/, 'no token in the logs')
})

t.test('rotation - revoked with no new token: token-failed within auth.maxRefusals, slower retries, then recovery', async (t) => {
  const MAX_REFUSALS = 3
  const { sf, file, accepted, base, session } = await rotatingBridge(t, 'stuck-token-aaaaaaaa', { maxRefusals: MAX_REFUSALS })
  const sse = await openSse(t, `${base}/sessions/sf/events?channel=${CHANNEL}`)
  sf.publish(CHANNEL, { n: 1 })
  await sse.waitEvent((e) => e.event === 'message')

  const before = sf.counters.authFailures
  const revokedAt = Date.now()
  sf.revoke(accepted.token)
  const failed = await sse.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'token-failed', { timeoutMs: 30_000 })
  const failedMs = Date.now() - revokedAt
  const refusalsAtFailure = sf.counters.authFailures - before
  t.match(JSON.parse(failed.data), { session: 'sf', status: 'token-failed', refusals: MAX_REFUSALS, source: 'tokenFile' })
  t.ok(refusalsAtFailure <= MAX_REFUSALS, `token-failed after ${refusalsAtFailure} refusals (maxRefusals ${MAX_REFUSALS})`)
  const view = (await request(`${base}/sessions/sf`)).json
  t.match(view.auth, { status: 'token-failed', refusals: MAX_REFUSALS, lastError: /refused the token 3 times in a row/ })
  const metrics = (await request(`${base}/metrics`)).text
  t.match(metrics, /cometd_bridge_upstream_token_failed\{session="sf"\} 1/)
  t.match(metrics, /cometd_bridge_upstream_token_refusals_total\{session="sf"\} [3-9]/)

  // the token stays refused: retries go on, slowly
  const WATCH_MS = 6_000
  const atWatch = sf.counters.authFailures
  await delay(WATCH_MS)
  const during = sf.counters.authFailures - atWatch
  t.ok(during <= 3, `${during} refusals in the ${WATCH_MS} ms after token-failed (waits of 4–8 s, then 8–16 s)`)

  accepted.token = 'fresh-token-bbbbbbbb'
  const writtenAt = Date.now()
  writeToken(file, accepted.token)
  await sse.waitEvent((e) => e.event === 'upstream' && JSON.parse(e.data).status === 'token-refreshed', { timeoutMs: 40_000 })
  await waitFor(() => session.readiness().ready, { timeoutMs: 20_000 })
  const recoveredMs = Date.now() - writtenAt
  sf.publish(CHANNEL, { n: 2 })
  await sse.waitEvent((e) => e.event === 'message', { count: 2, timeoutMs: 10_000 })
  t.same(sfMessages(sse).map((m) => m.n), [1, 2], 'nothing lost')
  const after = (await request(`${base}/sessions/sf`)).json
  t.match(after.auth, { status: 'ok', refusals: 0 })
  t.match((await request(`${base}/metrics`)).text, /cometd_bridge_upstream_token_failed\{session="sf"\} 0/)
  t.comment(`token-failed ${failedMs} ms after the revocation, after ${refusalsAtFailure} refusals; ${during} refusals in the next ${WATCH_MS} ms; ready ${recoveredMs} ms after the new token was written`)
})
