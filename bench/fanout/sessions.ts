/**
 * Part 5: many upstream sessions in one process: `--n` client-core Clients (long-polling) against a faye server,
 * each subscribed to its own channel, then held idle.
 *
 *   call('open', { url, n }) → { open, failed, ms, rssBeforeMB, rssAfterMB, heapMB }
 *   call('usage', {})        → { cpuMs, rssMB }
 */
import { serveRpc } from '../lib/proc.js'
import { cpuMs, rssMB } from '../lib/clock.js'
import { Client } from '../../client-core/index.js'

const clients: Client[] = []

async function open ({ url, n }: { url: string, n: number }): Promise<Record<string, number>> {
  const gc = (globalThis as { gc?: () => void }).gc
  gc?.()
  const rssBeforeMB = rssMB()
  const start = Date.now()
  let failed = 0
  for (let i = 0; i < n && Date.now() - start < 120_000; i += 50) {
    const batch = Array.from({ length: Math.min(50, n - i) }, (_v, k) => {
      const c = new Client(url, { connectionTypes: ['long-polling'], maxNetworkDelayMs: 30_000 })
      clients.push(c)
      return c.open().then(() => c.subscribe(`/bench/session/${i + k}`, () => {})).then(() => true, () => false)
    })
    for (const ok of await Promise.all(batch)) if (!ok) failed++
  }
  const ms = Date.now() - start
  await new Promise((resolve) => setTimeout(resolve, 1_000))
  gc?.()
  return { open: clients.length - failed, failed, ms, rssBeforeMB, rssAfterMB: rssMB(), heapMB: process.memoryUsage().heapUsed / 1048576 }
}

serveRpc({
  open: open as (p: never) => unknown,
  usage: () => { (globalThis as { gc?: () => void }).gc?.(); return { cpuMs: cpuMs(), rssMB: rssMB() } }
}, async () => {
  await Promise.race([Promise.all(clients.map((c) => c.close().catch(() => {}))), new Promise((resolve) => setTimeout(resolve, 1_500))])
})
