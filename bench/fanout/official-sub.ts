/**
 * A subscriber connected directly to the upstream with the official client (cometd 9 + cometd-nodejs-client 2,
 * through bench/client/adapters.ts), recording publish → arrival latency of one tag: the reference of part 3.
 *
 *   node dist/bench/fanout/official-sub.js --url <upstream> --channel <ch> --transport websocket
 */
import { argValue, serveRpc } from '../lib/proc.js'
import { nowUs } from '../lib/clock.js'
import { summarize } from '../lib/stats.js'
import { createClient } from '../client/adapters.js'
import { isBenchData } from '../client/message.js'

async function main (): Promise<void> {
  const url = argValue('url')!
  const channel = argValue('channel')!
  const transport = argValue('transport') === 'long-polling' ? 'long-polling' : 'websocket'
  const client = await createClient('cometd', url, transport)
  await client.connect()
  let tag = ''
  const lat: number[] = []
  await client.subscribe(channel, (data) => {
    if (isBenchData(data) && data.p === tag && lat.length < 1_000_000) lat.push((nowUs() - data.t) / 1000)
  })
  serveRpc({
    reset: ({ tag: t }: { tag: string }) => { tag = t; lat.length = 0; return null },
    stats: () => ({ count: lat.length, latencyMs: summarize(lat), transport: client.transport() })
  }, async () => { await client.close() })
}

main().catch((error: unknown) => {
  console.error(error)
  process.exit(1)
})
