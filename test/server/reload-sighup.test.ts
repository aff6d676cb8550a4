/**
 * SIGHUP re-reads the config file of a running daemon (server/main.ts in a child process): a session added
 * while a caller streams from another, then an invalid file that is refused (logged at error) while the daemon
 * keeps serving on the previous configuration.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { openSse, request } from './fixtures/bridge.js'
import { spawnNode } from './fixtures/spawn.js'
import { tempDir } from './delivery/fixtures.js'

// a fresh node process through the TypeScript loader: a few seconds on a busy machine
t.setTimeout(120_000)

t.test('SIGHUP - adds a session without touching the open stream; an invalid file is refused and logged', async (t) => {
  const faye = await startFaye({ timeoutSec: 2 })
  t.teardown(faye.close)
  const dir = tempDir(t, 'bridge-sighup-')
  const file = join(dir, 'bridge.yaml')
  const sessions = (names: string[], url = faye.url): string[] => names.flatMap((n) => [`  ${n}:`, `    url: ${url}`])
  const write = (lines: string[]): void => { writeFileSync(file, ['listen: { host: 127.0.0.1, port: 0 }', 'sessions:', ...lines, ''].join('\n')) }
  write(sessions(['a']))
  const child = spawnNode(t, 'server/main.ts', ['--config', file])
  const base = `http://127.0.0.1:${await child.port()}`
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 20_000 })
  const sse = await openSse(t, `${base}/sessions/a/events?channel=/n`)
  await waitFor(async () => (await request(`${base}/sessions/a`)).json.subscriptions.some((s: { state: string }) => s.state === 'subscribed'), { timeoutMs: 10_000 })

  write(sessions(['a', 'b']))
  child.proc.kill('SIGHUP')
  await waitFor(async () => (await request(`${base}/sessions/b`)).status === 200, { timeoutMs: 10_000, message: () => child.stdout() })
  t.pass('the added session is served')
  await waitFor(() => child.stdoutLines.some((l) => String(l.msg).startsWith('configuration reloaded (applied)')), { timeoutMs: 5_000 })

  write(['  a:', '    url: not-a-url'])
  child.proc.kill('SIGHUP')
  const refused = await waitFor(() => child.stdoutLines.find((l) => String(l.msg).startsWith('configuration reload refused')), { timeoutMs: 10_000, message: () => child.stdout() })
  t.equal(refused.level, 50, 'logged at error')
  t.match(String(refused.msg), /sessions\.a\.url/, 'naming the field')
  t.equal((await request(`${base}/sessions/b`)).status, 200, 'the previous configuration keeps running')
  t.match((await request(`${base}/metrics`)).text, /cometd_bridge_config_reloads_total\{outcome="invalid"\} 1/, 'counted by outcome')

  await faye.publish('/n', { n: 1 })
  await sse.waitEvent((e) => e.event === 'message')
  t.notOk(sse.ended, 'the stream of the untouched session stayed open through both reloads')
  t.notOk(sse.events.some((e) => e.event === 'upstream' || e.event === 'shutdown'), 'without an upstream or shutdown event')
  child.proc.kill('SIGTERM')
  t.same(await child.exited, { code: 0, signal: null }, 'and the daemon still stops cleanly')
})
