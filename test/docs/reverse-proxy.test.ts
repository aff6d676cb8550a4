/**
 * docs/reverse-proxy.md states the headers of the bridge's stream answers and the heartbeat and retry defaults
 * that proxy settings depend on: checked here against a live answer and the real defaults.
 */
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { defaultConfig } from '../../config/index.js'
import { startDemoUpstream, withDemoSession } from '../../server/demo/demo.js'
import { makeConfig, openSse, startBridge, waitConnected } from '../server/fixtures/bridge.js'
import { ROOT } from '../server/fixtures/spawn.js'

t.setTimeout(60_000)

const page = readFileSync(join(ROOT, 'docs/reverse-proxy.md'), 'utf8')

/** The `name: value` lines of the block after `<!-- headers: kind -->`. */
function documented (kind: string): Record<string, string> {
  const block = new RegExp(`<!-- headers: ${kind} -->\\s*\`\`\`text\\n([\\s\\S]*?)\`\`\``).exec(page)?.[1]
  if (block === undefined) throw new Error(`no headers block for ${kind} in docs/reverse-proxy.md`)
  return Object.fromEntries(block.trim().split('\n').map((line) => {
    const colon = line.indexOf(':')
    return [line.slice(0, colon).trim(), line.slice(colon + 1).trim()]
  }))
}

t.test('docs/reverse-proxy.md - the stream headers are the ones the bridge sends', async (t) => {
  const demo = await startDemoUpstream({ tickMs: 200 })
  t.teardown(demo.close)
  const { app, base } = await startBridge(t, withDemoSession(makeConfig({}), demo.url))
  await waitConnected(app)
  for (const [kind, accept] of [['sse', 'text/event-stream'], ['ndjson', 'application/x-ndjson']] as const) {
    const stream = await openSse(t, `${base}/sessions/demo/events?channel=/demo/ticks`, { accept })
    const expected = documented(kind)
    t.ok(Object.keys(expected).length >= 4, `${kind}: ${Object.keys(expected).join(', ')}`)
    for (const [name, value] of Object.entries(expected)) t.equal(stream.headers[name], value, `${kind}: ${name}`)
    t.equal(stream.headers['content-length'], undefined, `${kind}: chunked, as the page says`)
    stream.close()
  }
})

t.test('docs/reverse-proxy.md and troubleshooting.md - the heartbeat and retry defaults they rely on', async (t) => {
  const { sse } = defaultConfig()
  t.match(page, `every \`sse.heartbeatMs\` (${sse.heartbeatMs / 1000} s by default)`)
  const troubleshooting = readFileSync(join(ROOT, 'docs/troubleshooting.md'), 'utf8')
  t.match(troubleshooting, `(\`sse.retryMs\`, ${sse.retryMs / 1000} s by default;`)
  t.match(troubleshooting, `(\`sse.heartbeatMs\`, ${sse.heartbeatMs / 1000} s by default)`)
})
