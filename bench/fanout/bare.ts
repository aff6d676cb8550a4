/**
 * The floor: a bare node:http SSE broadcaster (no framework). It holds one client-core session to the upstream
 * (websocket, as the bridge's default), subscribes to `--channel` when started and writes every message to every
 * caller as the same SSE frame the bridge sends (`id`, `event: message`, `data: {"channel","data"}`), serialized
 * once per message, the frames of one tick written once per caller as one shared Buffer. The bridge does the same job with the same upstream client library, so the comparison is the
 * bridge's HTTP/SSE path (Fastify, queues, ids, ring buffer, limits) against the minimum Node needs.
 *
 *   node dist/bench/fanout/bare.js --url <upstream> --channel /bench/bare[,/bench/latency]   → 'ready' { port }
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { argValue, serveRpc } from '../lib/proc.js'
import { cpuMs, rssMB } from '../lib/clock.js'
import { Client } from '../../client-core/index.js'

async function main (): Promise<void> {
  const url = argValue('url')
  const channel = argValue('channel')
  if (url === undefined || channel === undefined) throw new Error('--url and --channel')
  const callers = new Set<http.ServerResponse>()
  let seq = 0
  const server = http.createServer((req, res) => {
    if (!(req.url ?? '').startsWith('/events')) { res.statusCode = 404; res.end(); return }
    res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache', Connection: 'keep-alive' })
    res.write(': ok\n\n')
    callers.add(res)
    res.once('close', () => callers.delete(res))
  })
  server.requestTimeout = 0
  server.keepAliveTimeout = 0
  server.maxConnections = 100_000
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve())
  })
  const client = new Client(url, { connectionTypes: ['websocket'], maxNetworkDelayMs: 30_000 })
  await client.open()
  // Frames of one tick are coalesced and written once per caller as one shared Buffer (`--naive`: one write per
  // message per caller, as a first attempt would do).
  const naive = process.argv.includes('--naive')
  let pending = ''
  let scheduled = false
  const flush = (): void => {
    scheduled = false
    const buf = Buffer.from(pending, 'utf8')
    pending = ''
    for (const res of callers) res.write(buf)
  }
  // several channels (comma-separated): the fan-out channel, and the latency channel of part 3
  for (const one of channel.split(',')) await client.subscribe(one, (message) => {
    seq++
    const frame = `id: ${seq}\nevent: message\ndata: ${JSON.stringify({ channel: message.channel, data: message.data ?? null })}\n\n`
    if (naive) {
      for (const res of callers) res.write(frame)
      return
    }
    pending += frame
    if (!scheduled) {
      scheduled = true
      setImmediate(flush)
    }
  })
  const heartbeat = setInterval(() => { for (const res of callers) res.write(':\n\n') }, 15_000)
  serveRpc({
    usage: () => ({ cpuMs: cpuMs(), rssMB: rssMB(), callers: callers.size })
  }, async () => {
    clearInterval(heartbeat)
    for (const res of callers) res.destroy()
    server.close()
    await Promise.race([client.close(), new Promise((resolve) => setTimeout(resolve, 500))])
  }, { port: (server.address() as AddressInfo).port })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
