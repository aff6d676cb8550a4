/**
 * Fault 7: SIGTERM to the compiled daemon (dist/server/main.js, `npm run build` first; CI builds in `npm ci`) while
 * 8 publishers POST as fast as they can. Asserted: every publish answered 200 reached the upstream server; every
 * publish refused with `shutting_down` did not; every other answer is a JSON error; no request vanished (each one
 * settled: an answer, or a connection error once the listener is gone); exit 0 within shutdownTimeoutMs.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startFaye } from '../../helpers/faye.js'
import { delay, waitFor, withDeadline } from '../../helpers/wait.js'
import { request } from '../fixtures/bridge.js'
import { ROOT, spawnNode } from '../fixtures/spawn.js'

t.setTimeout(90_000)

interface Outcome { key: string, status: number | null, error: string | null, code: string | null }

t.test('SIGTERM under publish load: every 200 reached the upstream, the rest refused with an error, none vanished', async (t) => {
  const entry = 'dist/server/main.js'
  if (!existsSync(join(ROOT, entry))) {
    t.fail(`${entry} is missing: run npm run build`)
    return
  }
  const reached = new Set<string>()
  const faye = await startFaye({
    timeoutSec: 5,
    extensions: [{
      incoming: (m, _r, cb) => {
        if (m.channel === '/load/x' && typeof m.clientId === 'string') reached.add((m.data as { key: string }).key)
        cb(m)
      }
    }]
  })
  t.teardown(faye.close)
  const dir = mkdtempSync(join(tmpdir(), 'bridge-sigterm-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'bridge.yaml')
  writeFileSync(file, ['listen: { host: 127.0.0.1, port: 0 }', 'logLevel: warn', 'shutdownTimeoutMs: 5000', 'sessions:', '  f:', `    url: ${faye.url}`, ''].join('\n'))
  const child = spawnNode(t, entry, ['--config', file, '--log-level', 'info'])
  const port = await child.port()
  const base = `http://127.0.0.1:${port}`
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 15_000 })

  const outcomes: Outcome[] = []
  let stop = false
  const WORKERS = 8
  const worker = async (w: number): Promise<void> => {
    let consecutiveRefusals = 0
    for (let i = 0; i < 2_000 && !stop && consecutiveRefusals < 20; i++) {
      const key = `${w}-${i}`
      const o: Outcome = { key, status: null, error: null, code: null }
      try {
        const res = await request(`${base}/sessions/f/publish/load/x`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ key }) })
        o.status = res.status
        o.error = res.status === 200 ? null : (res.json?.error ?? `non-JSON ${res.text.slice(0, 80)}`)
        consecutiveRefusals = res.status === 200 ? 0 : consecutiveRefusals + 1
      } catch (err) {
        const cause = (err as { cause?: { code?: string } }).cause
        o.code = cause?.code ?? (err as Error).name
        consecutiveRefusals++
      }
      outcomes.push(o)
    }
  }
  const workers = Array.from({ length: WORKERS }, async (_, w) => { await worker(w) })
  await waitFor(() => outcomes.filter((o) => o.status === 200).length >= 200, { timeoutMs: 20_000, message: 'publishes flowing' })
  const termAt = Date.now()
  child.proc.kill('SIGTERM')
  const exit = await withDeadline(child.exited, 10_000, 'daemon exit')
  const exitMs = Date.now() - termAt
  await delay(200)
  stop = true
  await withDeadline(Promise.all(workers), 20_000, 'every publisher settles')

  const ok = outcomes.filter((o) => o.status === 200)
  const refused = outcomes.filter((o) => o.status !== null && o.status !== 200)
  const connErrors = outcomes.filter((o) => o.status === null)
  const byError: Record<string, number> = {}
  for (const o of refused) byError[`${o.status} ${o.error}`] = (byError[`${o.status} ${o.error}`] ?? 0) + 1
  const byCode: Record<string, number> = {}
  for (const o of connErrors) byCode[o.code ?? '?'] = (byCode[o.code ?? '?'] ?? 0) + 1
  const okMissing = ok.filter((o) => !reached.has(o.key))
  const shuttingDownButReached = refused.filter((o) => o.error === 'shutting_down' && reached.has(o.key))
  const otherReached = [...refused, ...connErrors].filter((o) => o.error !== 'shutting_down' && reached.has(o.key))
  t.comment(`SIGTERM after ${ok.length} publishes answered 200; exit ${JSON.stringify(exit)} ${exitMs} ms after the signal`)
  t.comment(`${outcomes.length} requests: ${ok.length} answered 200, refused ${JSON.stringify(byError)}, connection errors ${JSON.stringify(byCode)}; ${otherReached.length} of the non-200 reached the upstream anyway (answered with an error after sending, or cut in flight)`)

  t.same(exit, { code: 0, signal: null }, 'exit 0')
  t.ok(exitMs < 5_000, 'within shutdownTimeoutMs')
  t.equal(outcomes.length, ok.length + refused.length + connErrors.length, 'every request settled: none vanished')
  t.same(okMissing.map((o) => o.key), [], 'every publish answered 200 reached the upstream')
  t.same(shuttingDownButReached.map((o) => o.key), [], 'no publish refused with shutting_down reached the upstream')
  t.ok(refused.every((o) => o.status! >= 400 && /^[a-z_]+$/.test(o.error ?? '')), 'every other answer is a JSON error from the catalogue')
  t.ok(refused.length + connErrors.length > 0, 'publishes after the signal were refused')
})
