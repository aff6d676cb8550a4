/**
 * Scale-out figures for docs/scale-out.md: the latency a message gains through Redis (one bridge alone vs the
 * holder and a follower of a 3-replica cluster), and deliveries/s with callers on 3 replicas vs one bridge.
 *
 *   npm run build && node dist/bench/cluster/measure.js [--messages 1000] [--callers 100] [--burst 3000]
 *
 * Needs redis-server (REDIS_SERVER, default /usr/bin/redis-server). Everything on 127.0.0.1: a Faye upstream and
 * the SSE callers in this process, redis-server and the bridges as child processes (dist/server/main.js).
 * Latency = arrival − publish stamp on the shared monotonic clock (lib/clock.ts).
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { createRequire } from 'node:module'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nowUs, sleep } from '../lib/clock.js'
import { summarize } from '../lib/stats.js'

const ROOT = fileURLToPath(new URL('../../../', import.meta.url))
const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`)
  return i > 0 ? Number(process.argv[i + 1]) : def
}
const MESSAGES = arg('messages', 1_000)
const CALLERS = arg('callers', 100)
const BURST = arg('burst', 3_000)
const children: ChildProcess[] = []
const dir = mkdtempSync(join(tmpdir(), 'bench-cluster-'))
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
})

async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port
      s.close(() => { resolve(port) })
    })
  })
}

async function waitLine (proc: ChildProcess, re: RegExp, what: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    let out = ''
    const timer = setTimeout(() => { reject(new Error(`${what}: not started within 60 s; ${out.slice(-500)}`)) }, 60_000)
    proc.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString()
      const m = re.exec(out)
      if (m !== null) { clearTimeout(timer); resolve(m[1] ?? m[0]) }
    })
  })
}

async function startRedis (): Promise<string> {
  const port = await freePort()
  const proc = spawn(process.env.REDIS_SERVER ?? '/usr/bin/redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(proc)
  await waitLine(proc, /Ready to accept connections/, 'redis-server')
  return `redis://127.0.0.1:${port}`
}

async function startBridge (name: string, config: Record<string, unknown>): Promise<string> {
  const file = join(dir, `${name}.json`)
  writeFileSync(file, JSON.stringify({ listen: { host: '127.0.0.1', port: 0 }, logLevel: 'warn', auth: { allowUnauthenticated: true }, sse: { maxQueueBytes: 64 * 1024 * 1024 }, ...config }))
  const proc = spawn(process.execPath, [join(ROOT, 'dist/server/main.js'), '--config', file, '--log-level', 'info'], { stdio: ['ignore', 'pipe', 'inherit'] })
  children.push(proc)
  const port = await waitLine(proc, /"port":(\d+),[^\n]*"msg":"cometd-bridge listening"/, name)
  return `http://127.0.0.1:${port}`
}

/** SSE callers counting frames that carry a publish stamp `"t":<µs>`. */
function callers (url: string, n: number): { deliveries: () => number, latencies: number[], firstUs: () => number, lastUs: () => number, close: () => void } {
  const reqs: http.ClientRequest[] = []
  const latencies: number[] = []
  let deliveries = 0
  let first = 0
  let last = 0
  for (let i = 0; i < n; i++) {
    const req = http.get(url, { agent: false, headers: { Accept: 'text/event-stream' } }, (res) => {
      res.setEncoding('latin1')
      res.on('data', (text: string) => {
        const at = nowUs()
        for (let j = text.indexOf('"t":'); j >= 0; j = text.indexOf('"t":', j + 4)) {
          deliveries++
          if (first === 0) first = at
          last = at
          if (i === 0) latencies.push((at - Number(/^\d+/.exec(text.slice(j + 4))?.[0] ?? at)) / 1000)
        }
      })
    })
    req.on('error', () => {})
    reqs.push(req)
  }
  return { deliveries: () => deliveries, latencies, firstUs: () => first, lastUs: () => last, close: () => { for (const r of reqs) r.destroy() } }
}

async function main (): Promise<void> {
  const require = createRequire(import.meta.url)
  const faye = require('faye') as { NodeAdapter: new (o: object) => { attach: (s: http.Server) => void, getClient: () => { publish: (c: string, d: unknown) => { then: (ok: () => void, ko: (e: unknown) => void) => void } } } }
  const bayeux = new faye.NodeAdapter({ mount: '/cometd', timeout: 10 })
  const server = http.createServer()
  bayeux.attach(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const upstream = `http://127.0.0.1:${(server.address() as { port: number }).port}/cometd`
  const client = bayeux.getClient()
  const publish = async (channel: string, data: unknown): Promise<void> => { await new Promise<void>((resolve, reject) => { client.publish(channel, data).then(resolve, reject) }) }
  const session = { url: upstream, connectionTypes: ['websocket'], subscribe: ['/bench'] }
  const redis = await startRedis()
  const single = await startBridge('single', { sessions: { s: session } })
  const replicas = await Promise.all(['a', 'b', 'c'].map(async (id) => await startBridge(id, { sessions: { s: session }, cluster: { redis, replicaId: id, keyPrefix: 'bench' } })))
  await sleep(3_000)
  const views = await Promise.all(replicas.map(async (base) => await (await fetch(`${base}/sessions/s`)).json() as { holder: string, replicaId: string }))
  const holderAt = views.findIndex((v) => v.holder === v.replicaId)
  const follower = replicas[(holderAt + 1) % 3]!
  const events = (base: string): string => `${base}/sessions/s/events?channel=/bench`

  // latency: one caller on each, a message every 10 ms
  const groups = { single: callers(events(single), 1), holder: callers(events(replicas[holderAt]!), 1), follower: callers(events(follower), 1) }
  await sleep(1_000)
  for (let i = 0; i < MESSAGES; i++) {
    await publish('/bench', { t: nowUs(), i })
    await sleep(10)
  }
  await sleep(1_000)
  const latency = Object.fromEntries(Object.entries(groups).map(([k, g]) => { g.close(); return [k, summarize(g.latencies)] }))

  // throughput: CALLERS per replica (3 × CALLERS) vs 3 × CALLERS on the single bridge; BURST messages unpaced
  const run = async (bases: string[]): Promise<{ deliveries: number, perSecond: number }> => {
    const gs = bases.map((b) => callers(events(b), bases.length === 1 ? 3 * CALLERS : CALLERS))
    await sleep(2_000)
    const pending: Array<Promise<void>> = []
    for (let i = 0; i < BURST; i++) pending.push(publish('/bench', { t: nowUs(), i }))
    await Promise.all(pending)
    const expected = BURST * 3 * CALLERS
    for (let waited = 0; waited < 60_000 && gs.reduce((n, g) => n + g.deliveries(), 0) < expected; waited += 200) await sleep(200)
    const deliveries = gs.reduce((n, g) => n + g.deliveries(), 0)
    const span = (Math.max(...gs.map((g) => g.lastUs())) - Math.min(...gs.map((g) => g.firstUs()))) / 1e6
    for (const g of gs) g.close()
    return { deliveries, perSecond: Math.round(deliveries / span) }
  }
  const throughput = { single: await run([single]), cluster: await run(replicas) }
  console.log(JSON.stringify({ messages: MESSAGES, callers: CALLERS, burst: BURST, latencyMs: latency, throughput }, null, 2))
  server.close()
  process.exit(0)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
