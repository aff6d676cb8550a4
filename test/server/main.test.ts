/**
 * The daemon as a process (server/main.ts in a child): SIGTERM sends `event: shutdown` to SSE callers and
 * /meta/disconnect upstream and exits 0 within shutdownTimeoutMs; with no config it runs the embedded demo;
 * an invalid config exits 78 naming the field.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { startFaye } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'
import { openSse, request } from './fixtures/bridge.js'
import { cleanEnv, spawnNode, spawnProgram } from './fixtures/spawn.js'
import { descendants, isAlive } from '../helpers/proc-tree.js'

// each case starts the TypeScript entry in a fresh node process (a few seconds each on a busy machine)
t.setTimeout(240_000)

function tempDir (t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'bridge-main-'))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

t.test('main - SIGTERM: event: shutdown to callers, /meta/disconnect upstream, exit 0 in time', async (t) => {
  const disconnects: string[] = []
  const faye = await startFaye({
    timeoutSec: 5,
    extensions: [{
      incoming: (message, _req, callback) => {
        if (message.channel === '/meta/disconnect') disconnects.push(String(message.clientId))
        callback(message)
      }
    }]
  })
  t.teardown(faye.close)
  const dir = tempDir(t)
  const file = join(dir, 'bridge.yaml')
  writeFileSync(file, [
    'listen: { host: 127.0.0.1, port: 0 }',
    'shutdownTimeoutMs: 5000',
    'sessions:',
    '  f:',
    `    url: ${faye.url}`,
    '    subscribe: ["/keep"]',
    ''
  ].join('\n'))
  const child = spawnNode(t, 'server/main.ts', ['--config', file])
  const port = await child.port()
  const base = `http://127.0.0.1:${port}`
  await waitFor(async () => (await request(`${base}/readyz`)).status === 200, { timeoutMs: 15_000 })
  const clientId = (await request(`${base}/sessions/f`)).json.clientId as string
  const sse = await openSse(t, `${base}/sessions/f/events?channel=/keep`)
  await faye.publish('/keep', { n: 1 })
  const first = await sse.waitEvent((e) => e.event === 'message')

  const started = Date.now()
  child.proc.kill('SIGTERM')
  const shutdown = await sse.waitEvent((e) => e.event === 'shutdown', { timeoutMs: 5_000 })
  await sse.done
  const exit = await child.exited
  const elapsed = Date.now() - started
  t.comment(`SIGTERM → exit ${exit.code} in ${elapsed} ms (shutdownTimeoutMs 5000)`)
  t.same(exit, { code: 0, signal: null })
  t.ok(elapsed < 5_000, 'within shutdownTimeoutMs')
  t.same(JSON.parse(shutdown.data), { lastEventId: first.id })
  t.match(sse.raw(), /retry: \d+\nevent: shutdown\n/, 'the shutdown event carries a retry hint')
  t.ok(sse.ended, 'the stream was closed')
  t.same(disconnects, [clientId], '/meta/disconnect sent upstream with the session clientId')
  const logs = child.stdoutLines.map((l) => l.msg)
  t.ok(logs.includes('shutting down') && logs.includes('shutdown complete'), 'logged')
})

t.test('main - no config: the embedded demo serves ticks and chat', async (t) => {
  const child = spawnNode(t, 'server/main.ts', [], { COMETD_BRIDGE_PORT: '0' })
  const port = await child.port()
  const base = `http://127.0.0.1:${port}`
  await waitFor(() => child.stderr().includes('/demo/ticks'), { timeoutMs: 5_000 })
  t.match(child.stderr(), new RegExp(`curl -N 'http://127\\.0\\.0\\.1:${port}/sessions/demo/events\\?channel=/demo/ticks'`))
  t.match(child.stderr(), new RegExp(`/sessions/demo/publish/demo/chat`))
  t.match(child.stderr(), `Open the console in a browser: ${base}/\n`, 'the banner names the console')
  const ticks = await openSse(t, `${base}/sessions/demo/events?channel=/demo/ticks`)
  const chat = await openSse(t, `${base}/sessions/demo/events?channel=/demo/chat`)
  const started = Date.now()
  await ticks.waitEvent((e) => e.event === 'message', { count: 2, timeoutMs: 10_000 })
  t.comment(`2 ticks within ${Date.now() - started} ms`)
  const tick = ticks.messages()[0]!
  t.equal(tick.channel, '/demo/ticks')
  t.match(tick.data, { n: Number, at: String })
  const posted = await request(`${base}/sessions/demo/publish/demo/chat`, { method: 'POST', body: '{"text":"hello"}', headers: { 'content-type': 'application/json' } })
  t.equal(posted.status, 200)
  await chat.waitEvent((e) => e.event === 'message')
  t.same(chat.messages()[0]!.data, { text: 'hello' })
  child.proc.kill('SIGINT')
  t.same(await child.exited, { code: 0, signal: null }, 'SIGINT exits 0')
})

t.test('main - invalid config exits 78 naming the field; --check-config validates only', async (t) => {
  const dir = tempDir(t)
  const file = join(dir, 'bad.yaml')
  writeFileSync(file, 'sessions:\n  sf:\n    url: http://x/cometd\n    bufferSize: -1\n')
  // three processes at once: they are independent
  const bad = spawnNode(t, 'server/main.ts', [], { COMETD_BRIDGE_PORT: 'eighty', COMETD_BRIDGE_URL: 'not a url' })
  const badFile = spawnNode(t, 'server/main.ts', ['--config', file])
  const check = spawnNode(t, 'server/main.ts', ['--check-config'], { COMETD_BRIDGE_URL: 'http://127.0.0.1:1/cometd' })

  t.same(await bad.exited, { code: 78, signal: null })
  t.match(bad.stderr(), /listen\.port/)
  t.match(bad.stderr(), /sessions\.default\.url/)
  t.equal(bad.stdoutLines.filter((l) => l.msg === 'cometd-bridge listening').length, 0, 'never started')

  t.same(await badFile.exited, { code: 78, signal: null })
  t.match(badFile.stderr(), /sessions\.sf\.bufferSize/)

  t.same(await check.exited, { code: 0, signal: null })
  t.equal(check.stdoutLines.filter((l) => l.msg === 'cometd-bridge listening').length, 0)
})

t.test('main - SIGTERM to `npm start`\'s pid stops the daemon: no process left', async (t) => {
  // npm start runs dist/server/main.js (built by npm install / npm ci), as the README says
  const env = { ...cleanEnv({ COMETD_BRIDGE_PORT: '0' }) }
  for (const k of Object.keys(env)) if (/^npm_/i.test(k)) delete env[k]
  const npm = spawnProgram(t, 'npm', ['start'], { env })
  const port = await npm.port()
  t.equal((await request(`http://127.0.0.1:${port}/healthz`)).status, 200)
  const tree = descendants(npm.proc.pid!)
  t.teardown(() => { for (const pid of tree) if (isAlive(pid)) process.kill(pid, 'SIGKILL') })
  t.ok(tree.length >= 1, `npm runs the daemon below it (${tree.length} process(es))`)
  const started = Date.now()
  npm.proc.kill('SIGTERM')
  const exit = await npm.exited
  await waitFor(() => tree.every((pid) => !isAlive(pid)), { timeoutMs: 15_000, message: () => `left running: ${tree.filter(isAlive).join(', ')}` })
  t.comment(`SIGTERM to npm (exit ${String(exit.code ?? exit.signal)}) → every process gone in ${Date.now() - started} ms`)
  t.ok(npm.stdoutLines.some((l) => l.msg === 'shutdown complete'), 'the daemon shut down cleanly (SIGTERM reached it)')
})

