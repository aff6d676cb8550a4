/**
 * Fan-out upstream (part 2–4 of issue 5): a faye 1.4.3 server (NodeAdapter at /cometd, websocket and long-polling)
 * on 127.0.0.1 and a publisher inside the same process (faye's in-process client, so no extra network hop is
 * measured) that publishes `{ p, s, t, x }` (t = publish time in µs, shared monotonic clock) at a fixed rate.
 *
 *   node dist/bench/fanout/upstream.js      → 'ready' { port, url }
 *   call('publish', { channel, rate, durationMs, tag }) → { sent, firstUs, lastUs }
 */
import http from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo, Socket } from 'node:net'
import { serveRpc } from '../lib/proc.js'
import { cpuMs, nowUs, rssMB } from '../lib/clock.js'
import { makeData } from '../client/message.js'

const require = createRequire(import.meta.url)

interface FayeDeferrable { then: (ok: (v: unknown) => void, err: (e: unknown) => void) => unknown }
interface FayeClient { publish: (channel: string, data: unknown) => FayeDeferrable }
interface FayeAdapter { attach: (server: http.Server) => void, getClient: () => FayeClient, close: () => void }
interface FayeModule { NodeAdapter: new (options: Record<string, unknown>) => FayeAdapter }

export interface PublishParams { channel: string, rate: number, durationMs: number, tag: string }
export interface PublishResult { sent: number, firstUs: number, lastUs: number }

async function main (): Promise<void> {
  const faye = require('faye') as FayeModule
  const adapter = new faye.NodeAdapter({ mount: '/cometd', timeout: 30 })
  const server = http.createServer((_req, res) => { res.statusCode = 404; res.end() })
  adapter.attach(server)
  server.requestTimeout = 0
  const sockets = new Set<Socket>()
  server.on('connection', (s: Socket) => { sockets.add(s); s.once('close', () => sockets.delete(s)) })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, () => resolve())
  })
  const port = (server.address() as AddressInfo).port
  const client = adapter.getClient()

  /** Publishes at `rate` msg/s for `durationMs` (bounded: at most rate × duration messages, ticks every 2 ms). */
  const publish = async ({ channel, rate, durationMs, tag }: PublishParams): Promise<PublishResult> => {
    const total = Math.max(1, Math.round((rate * durationMs) / 1000))
    const start = nowUs()
    let sent = 0
    let lastUs = start
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const due = Math.min(total, Math.floor(((nowUs() - start) / 1e6) * rate) + 1)
        while (sent < due) {
          lastUs = nowUs()
          client.publish(channel, makeData(tag, sent, lastUs))
          sent++
        }
        if (sent >= total || nowUs() - start > durationMs * 1000 + 5e6) {
          clearInterval(timer)
          resolve()
        }
      }
      const timer = setInterval(tick, 2)
      tick()
    })
    return { sent, firstUs: start, lastUs }
  }

  serveRpc({
    publish: publish as (p: never) => unknown,
    usage: () => ({ cpuMs: cpuMs(), rssMB: rssMB(), connections: sockets.size })
  }, async () => {
    adapter.close()
    server.close()
    for (const s of sockets) s.destroy()
  }, { port, url: `http://127.0.0.1:${port}/cometd` })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
