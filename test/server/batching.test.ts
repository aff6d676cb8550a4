/**
 * sessions.<name>.maxBatchBytes reaches the upstream client: concurrent POST /publish calls are batched into
 * long-polling bodies no larger than the configured cap (real Faye; the request sizes are read off its http server).
 */
import type http from 'node:http'
import t from 'tap'
import type { Test } from 'tap'
import { startFaye } from '../helpers/faye.js'
import { makeConfig, startBridge, waitConnected } from './fixtures/bridge.js'

async function burst (t: Test, maxBatchBytes: number | undefined): Promise<{ bodies: number[], published: number }> {
  const faye = await startFaye({ timeoutSec: 5 })
  t.teardown(faye.close)
  const bodies: number[] = []
  faye.server.prependListener('request', (req: http.IncomingMessage) => {
    if (req.method === 'POST') bodies.push(Number(req.headers['content-length'] ?? 0))
  })
  let published = 0
  faye.bayeux.on('publish', (_clientId: string | null, channel: string) => { if (channel === '/batch') published++ })
  const session = { url: faye.url, connectionTypes: ['long-polling' as const], ...(maxBatchBytes !== undefined ? { maxBatchBytes } : {}) }
  const { app } = await startBridge(t, makeConfig({ b: session }))
  await waitConnected(app)
  bodies.length = 0
  const text = 'x'.repeat(1_000)
  const replies = await Promise.all(Array.from({ length: 20 }, async (_, i) => await app.inject({
    method: 'POST', url: '/sessions/b/publish/batch', payload: { i, text }
  })))
  t.same(replies.map((r) => r.statusCode), Array(20).fill(200), 'every publish answered 200')
  return { bodies: bodies.filter((n) => n > 1_000), published }
}

t.test('maxBatchBytes caps the upstream request bodies of publishes', async (t) => {
  const capped = await burst(t, 4_096)
  t.equal(capped.published, 20, 'all 20 reached the upstream')
  t.ok(capped.bodies.length >= 5, `split into several requests (${capped.bodies.length}: ${capped.bodies.join(', ')} bytes)`)
  t.ok(capped.bodies.every((n) => n <= 4_096), 'none over the cap')
})

t.test('without it, the same burst goes in fewer, larger bodies (client-core default 512 KiB)', async (t) => {
  const free = await burst(t, undefined)
  t.equal(free.published, 20)
  t.ok(free.bodies.some((n) => n > 4_096), `at least one body over 4 KiB (${free.bodies.join(', ')} bytes)`)
})
