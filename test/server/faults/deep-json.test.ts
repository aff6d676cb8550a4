/**
 * Bad input found by the HTTP fuzzer: a deeply nested JSON body well within the body limit (5,000 levels = 10 kB)
 * must be refused with a 4xx (or published), and the daemon must stay up.
 *
 * It used to kill the daemon: JSON.parse accepts it, but JSON.stringify throws `RangeError: Maximum call stack size
 * exceeded` beyond ~4,000 levels, and client-core measured queued messages in a setImmediate callback without a
 * try/catch. Now the message fails alone (MessageEncodingError → 400 invalid_data). Runs the compiled daemon (`npm run build`), as a real deployment would.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startFaye } from '../../helpers/faye.js'
import { delay, waitFor } from '../../helpers/wait.js'
import { request } from '../fixtures/bridge.js'
import { ROOT, spawnNode } from '../fixtures/spawn.js'

t.setTimeout(60_000)

t.test('a 5,000-level JSON body does not kill the daemon', async (t) => {
  const entry = 'dist/server/main.js'
  if (!existsSync(join(ROOT, entry))) {
    t.fail(`${entry} is missing: run npm run build`)
    return
  }
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const dir = mkdtempSync(join(tmpdir(), 'bridge-deep-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'bridge.yaml')
  writeFileSync(file, ['listen: { host: 127.0.0.1, port: 0 }', 'logLevel: warn', 'sessions:', '  f:', `    url: ${faye.url}`, ''].join('\n'))
  const child = spawnNode(t, entry, ['--config', file, '--log-level', 'info'])
  const base = `http://127.0.0.1:${await child.port()}`
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 15_000 })

  const depth = 5_000
  const body = '['.repeat(depth) + ']'.repeat(depth)
  let answer: string
  try {
    const res = await request(`${base}/sessions/f/publish/deep/x`, { method: 'POST', headers: { 'content-type': 'application/json' }, body })
    answer = `${res.status} ${res.text.slice(0, 200)}`
    t.ok(res.status === 200 || (res.status >= 400 && res.status < 500), `answered 200 or 4xx, not ${res.status}`)
  } catch (err) {
    answer = `no answer: ${String((err as { cause?: unknown }).cause ?? err)}`
    t.fail(`the publish got no answer (${answer})`)
  }
  await delay(500)
  t.comment(`POST of a ${body.length}-byte, ${depth}-level JSON body → ${answer}; daemon exit code ${child.exitCode}; stderr: ${child.stderr().split('\n').find((l) => l.includes('Error')) ?? '(none)'}`)
  t.equal(child.exitCode, null, 'the daemon is still running')
  if (child.exitCode === null) {
    t.equal((await request(`${base}/healthz`)).status, 200, '/healthz still answers')
    const ok = await request(`${base}/sessions/f/publish/deep/x`, { method: 'POST', body: '{"n":1}' })
    t.equal(ok.status, 200, 'a normal publish still works (the bad message did not wedge the outbox)')
  }
})
