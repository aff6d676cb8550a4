/**
 * The publisher of the streaming suite: one client-core session (websocket) to the upstream (client/server.ts's
 * faye) publishing large messages — `{ p, s, t, x }` padded so that the JSON of the data is `bytes` long — at a
 * fixed rate.
 *
 *   node dist/bench/stream/publisher.js --url <upstream>      → 'ready'
 *   call('publish', { channel, rate, count, bytes, tag }) → { sent, acked, firstUs, lastUs }
 */
import { argValue, serveRpc } from '../lib/proc.js'
import { nowUs } from '../lib/clock.js'
import { makeData } from '../client/message.js'
import { Client } from '../../client-core/index.js'

export interface StreamParams { channel: string, rate: number, count: number, bytes: number, tag: string }
export interface StreamResult { sent: number, acked: number, firstUs: number, lastUs: number }

/** The padding that makes the data's JSON `bytes` long for a 5-digit sequence number. */
function padFor (bytes: number): string {
  const base = JSON.stringify(makeData('t', 10_000, 1_000_000_000_000)).length - makeData('t', 0, 0).x.length
  return 'x'.repeat(Math.max(0, bytes - base))
}

async function main (): Promise<void> {
  const url = argValue('url')
  if (url === undefined) throw new Error('--url')
  const client = new Client(url, { connectionTypes: ['websocket'], maxNetworkDelayMs: 30_000 })
  await client.open()

  /** `count` messages at `rate` msg/s (ticks every 2 ms), then their acknowledgements; bounded by count / rate + 30 s. */
  const publish = async ({ channel, rate, count, bytes, tag }: StreamParams): Promise<StreamResult> => {
    const pad = padFor(bytes)
    const start = nowUs()
    const limitUs = (count / rate) * 1e6 + 30e6
    let sent = 0
    let acked = 0
    let lastUs = start
    const acks: Array<Promise<unknown>> = []
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const due = Math.min(count, Math.floor(((nowUs() - start) / 1e6) * rate) + 1)
        while (sent < due) {
          lastUs = nowUs()
          acks.push(client.publish(channel, { ...makeData(tag, sent, lastUs), x: pad }).then(() => { acked++ }, () => {}))
          sent++
        }
        if (sent >= count || nowUs() - start > limitUs) {
          clearInterval(timer)
          resolve()
        }
      }
      const timer = setInterval(tick, 2)
      tick()
    })
    await Promise.race([Promise.all(acks), new Promise((resolve) => setTimeout(resolve, 30_000).unref())])
    return { sent, acked, firstUs: start, lastUs }
  }

  serveRpc({ publish: publish as (p: never) => unknown }, async () => {
    await Promise.race([client.close(), new Promise((resolve) => setTimeout(resolve, 500))])
  })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
