#!/usr/bin/env node
/**
 * Soak run (not in CI): the compiled bridge daemon (dist/server/main.js, a child process) in front of a demo-like
 * Faye upstream that is restarted at random intervals, a steady publisher on the upstream side and a pool of SSE
 * callers joining and leaving (half of the re-joins resume with Last-Event-ID), plus one observer that stays for the
 * whole run and resumes after every stream end.
 *
 *   npm run build && node dist/bench/soak.js --minutes 30
 *
 * Flags: --minutes N (default 10), --rate msgs/s (50), --callers K (20), --up-min-s / --up-max-s (15 / 60: how long
 * the upstream stays up between restarts), --down-max-ms (5000: how long it stays down), --json FILE (summary).
 *
 * Prints published, delivered, lost (split: after a restart before the bridge had resubscribed / in flight at a
 * stop / anything else), duplicated, out of order, reconnects and re-handshakes, the time from each upstream start
 * to the first message delivered, and the bridge's RSS at start, middle and end. Every loop and wait is bounded.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { SoakUpstream } from './soak/upstream.js'
import { openStream } from './soak/sse-caller.js'
import type { OpenStream } from './soak/sse-caller.js'

const HERE = path.dirname(fileURLToPath(import.meta.url)) // dist/bench
const MAIN = path.resolve(HERE, '../server/main.js')
const CHANNEL = '/soak/ticks'
const PATTERNS = ['/soak/ticks', '/soak/*', '/soak/**']

function flag (name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  const raw = i >= 0 ? process.argv[i + 1] : process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1]
  if (raw === undefined) return fallback
  const v = Number(raw)
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${name}: a positive number, got ${raw}`)
  return v
}
function strFlag (name: string): string | null {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] ?? null : null
}

const MINUTES = flag('minutes', 10)
const RATE = flag('rate', 50)
const CALLERS = Math.round(flag('callers', 20))
const UP_MIN_S = flag('up-min-s', 15)
const UP_MAX_S = flag('up-max-s', 60)
const DOWN_MAX_MS = flag('down-max-ms', 5000)
const JSON_OUT = strFlag('json')

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))
const rand = (a: number, b: number): number => a + Math.random() * (b - a)
const mb = (bytes: number): string => (bytes / 1048576).toFixed(1)

function rssOf (pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m === null ? NaN : Number(m[1]) * 1024
  } catch { return NaN }
}

async function getJson (url: string): Promise<any> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5_000) })
  return await res.json()
}

interface Restart { stoppedAt: number, startedAt: number, downMs: number, firstDeliveryMs: number | null }

async function main (): Promise<void> {
  const runMs = MINUTES * 60_000
  const upstream = new SoakUpstream()
  await upstream.start()

  // ---- the bridge daemon, compiled
  const dir = mkdtempSync(path.join(tmpdir(), 'bridge-soak-'))
  const cfg = path.join(dir, 'bridge.yaml')
  writeFileSync(cfg, [
    'listen: { host: 127.0.0.1, port: 0 }',
    'logLevel: info',
    'demo: false',
    'shutdownTimeoutMs: 5000',
    'sessions:',
    '  soak:',
    `    url: ${upstream.url}`,
    '    bufferSize: 2000',
    ''
  ].join('\n'))
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('COMETD_BRIDGE_') && k !== 'NODE_OPTIONS') env[k] = v
  const child = spawn(process.execPath, [MAIN, '--config', cfg], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  let logLines = 0
  let warnLines = 0
  let errorLines = 0
  let port = 0
  let partial = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    partial += chunk
    const lines = partial.split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) {
      if (line.trim() === '') continue
      logLines++
      try {
        const j = JSON.parse(line) as { level?: number, msg?: string, port?: number }
        if (j.msg === 'cometd-bridge listening' && typeof j.port === 'number') port = j.port
        if ((j.level ?? 0) >= 50) { errorLines++; process.stderr.write(`bridge error log: ${line.slice(0, 500)}\n`) } else if ((j.level ?? 0) >= 40) warnLines++
      } catch {}
    }
  })
  let stderr = ''
  child.stderr.setEncoding('utf8')
  child.stderr.on('data', (c: string) => { stderr += c })
  let childExit: { code: number | null, signal: string | null } | null = null
  const exited = new Promise<void>((resolve) => { child.on('exit', (code, signal) => { childExit = { code, signal }; resolve() }) })
  const killChild = (): void => { if (childExit === null) child.kill('SIGKILL') }
  process.on('exit', killChild)
  process.on('SIGINT', () => { killChild(); process.exit(130) })

  for (let i = 0; i < 300 && port === 0; i++) await sleep(100)
  if (port === 0) throw new Error(`the bridge did not start: ${stderr.slice(-2000)}`)
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; i < 300; i++) {
    const s = await getJson(`${base}/sessions/soak`).catch(() => null)
    if (s?.state === 'connected') break
    await sleep(100)
  }
  const eventsUrl = (pattern: string): string => `${base}/sessions/soak/events?channel=${encodeURIComponent(pattern)}`
  console.log(`soak: ${MINUTES} min, ${RATE} msg/s, ${CALLERS} callers + 1 observer; upstream ${upstream.url}; bridge ${base} (pid ${child.pid})`)

  // ---- publisher
  const publishedAt = new Map<number, number>() // confirmed by Faye
  const sentAt = new Map<number, number>()
  let n = 0
  let publishFailures = 0
  let publishing = true
  const publisher = (async () => {
    const period = 1000 / RATE
    let next = Date.now()
    while (publishing) {
      next += period
      if (upstream.running) {
        const k = ++n
        const at = Date.now()
        sentAt.set(k, at)
        upstream.publish(CHANNEL, { n: k, at }).then(() => { publishedAt.set(k, at) }, () => { publishFailures++ })
      }
      const wait = next - Date.now()
      if (wait > 0) await sleep(wait)
      else if (wait < -1000) next = Date.now() // fell far behind (machine busy): do not burst
    }
  })()

  // ---- upstream restarts
  const restarts: Restart[] = []
  let running = true
  const restarter = (async () => {
    const end = Date.now() + runMs - 20_000 // the last 20 s are quiet, so that the final counts settle
    while (running) {
      const upFor = rand(UP_MIN_S, UP_MAX_S) * 1000
      const until = Date.now() + upFor
      while (running && Date.now() < until) await sleep(Math.min(500, until - Date.now()))
      if (!running || Date.now() + DOWN_MAX_MS > end) break
      const downMs = Math.round(rand(200, DOWN_MAX_MS))
      const stoppedAt = Date.now()
      await upstream.stop()
      await sleep(downMs)
      await upstream.start()
      restarts.push({ stoppedAt, startedAt: Date.now(), downMs, firstDeliveryMs: null })
    }
  })()

  // ---- the observer: stays for the whole run, resumes after every end
  const observerNs: number[] = []
  const observerOther: Record<string, number> = {}
  let observerStreams = 0
  let observerStop = false
  let observerCurrent: OpenStream | null = null
  const observer = (async () => {
    let lastId: string | null = null
    while (!observerStop) {
      observerStreams++
      const s = openStream(eventsUrl(CHANNEL), lastId, (k, at) => {
        observerNs.push(k)
        const r = restarts.at(-1)
        const pub = sentAt.get(k)
        if (r !== undefined && r.firstDeliveryMs === null && pub !== undefined && pub >= r.startedAt) r.firstDeliveryMs = at - r.startedAt
      })
      observerCurrent = s
      await s.done
      lastId = s.record.lastId
      for (const [k, v] of Object.entries(s.record.other)) observerOther[k] = (observerOther[k] ?? 0) + v
      if (!observerStop) await sleep(200)
    }
  })()

  // ---- the pool: join, stay 5-60 s, leave, wait 0-3 s, join again (fresh or resuming)
  let poolStop = false
  const poolStats = { connections: 0, resumes: 0, expected: 0, received: 0, lost: 0, duplicated: 0, outOfOrder: 0, gaps: 0, refused: 0, lostNs: [] as number[] }
  const poolStreams = new Set<OpenStream>()
  const slot = async (): Promise<void> => {
    let lastId: string | null = null
    let lastN: number | null = null
    await sleep(rand(0, 5000))
    while (!poolStop) {
      const resume = lastId !== null && Math.random() < 0.5
      if (!resume) { lastId = null; lastN = null }
      const pattern = PATTERNS[Math.floor(Math.random() * PATTERNS.length)]!
      const s = openStream(eventsUrl(pattern), resume ? lastId : null)
      poolStreams.add(s)
      poolStats.connections++
      if (resume) poolStats.resumes++
      const stay = rand(5_000, 60_000)
      await Promise.race([s.done, sleep(stay)])
      s.close()
      await s.done
      poolStreams.delete(s)
      const r = s.record
      if (r.status !== 200) { poolStats.refused++; await sleep(1000); continue }
      poolStats.gaps += r.other.gap ?? 0
      if (r.ns.length > 0) {
        const start = resume && lastN !== null ? lastN + 1 : r.ns[0]!
        const end = r.ns.at(-1)!
        const got = new Set(r.ns)
        poolStats.received += r.ns.length
        poolStats.duplicated += r.ns.length - got.size
        for (let i = 1; i < r.ns.length; i++) if (r.ns[i]! < r.ns[i - 1]!) poolStats.outOfOrder++
        for (let k = start; k <= end; k++) {
          if (!publishedAt.has(k)) continue
          poolStats.expected++
          if (!got.has(k)) { poolStats.lost++; poolStats.lostNs.push(k) }
        }
        lastN = end
      }
      lastId = r.lastId
      await sleep(rand(0, 3000))
    }
  }
  const slots = Array.from({ length: CALLERS }, () => slot())

  // ---- RSS samples
  const rss: Array<{ atS: number, rss: number }> = []
  const started = Date.now()
  let rssStart = NaN
  let rssMiddle = NaN
  const sampler = setInterval(() => { rss.push({ atS: Math.round((Date.now() - started) / 1000), rss: rssOf(child.pid!) }) }, 10_000)
  const progress = setInterval(() => {
    const elapsedS = Math.round((Date.now() - started) / 1000)
    console.log(`  ${elapsedS} s: published ${n}, observer ${observerNs.length}, pool connections ${poolStats.connections}, restarts ${restarts.length}, rss ${mb(rssOf(child.pid!))} MB`)
  }, 60_000)
  await sleep(Math.min(30_000, runMs / 4))
  rssStart = rssOf(child.pid!)
  await sleep(Math.max(0, started + runMs / 2 - Date.now()))
  rssMiddle = rssOf(child.pid!)
  await sleep(Math.max(0, started + runMs - Date.now()))

  // ---- wind down: stop restarts and publishing, let the last messages arrive, then close every caller
  running = false
  await restarter
  publishing = false
  await publisher
  await sleep(3_000)
  const rssEnd = rssOf(child.pid!)
  poolStop = true
  for (const s of poolStreams) s.close()
  await Promise.all(slots)
  observerStop = true
  const lastObserverStream = observerCurrent as OpenStream | null
  lastObserverStream?.close()
  await observer
  clearInterval(sampler)
  clearInterval(progress)

  // ---- leak check: callers and upstream subscriptions back to zero (after the unsubscribe linger, 5 s by default)
  let view: any = null
  for (let i = 0; i < 100; i++) {
    view = await getJson(`${base}/sessions/soak`).catch(() => null)
    if (view !== null && view.callers === 0 && view.subscriptions.length === 0) break
    await sleep(200)
  }
  const metricsText = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(5_000) }).then(async (r) => await r.text()).catch(() => '')
  const gauge = (name: string): number => Number(new RegExp(`^${name}\\{session="soak"\\} (\\S+)$`, 'm').exec(metricsText)?.[1] ?? NaN)

  // ---- the observer's accounting
  const firstN = observerNs[0] ?? 0
  const lastN = observerNs.at(-1) ?? 0
  const obsSet = new Set(observerNs)
  let obsOutOfOrder = 0
  for (let i = 1; i < observerNs.length; i++) if (observerNs[i]! < observerNs[i - 1]!) obsOutOfOrder++
  const lostNs: number[] = []
  let expected = 0
  for (let k = firstN; k <= lastN; k++) {
    if (!publishedAt.has(k)) continue
    expected++
    if (!obsSet.has(k)) lostNs.push(k)
  }
  // classify each lost message by when it was published
  const classify = (k: number): 'after-restart' | 'in-flight-at-stop' | 'other' => {
    const at = publishedAt.get(k)!
    for (const r of restarts) {
      const recovered = r.startedAt + (r.firstDeliveryMs ?? 10_000)
      if (at >= r.startedAt && at <= recovered) return 'after-restart'
      if (at <= r.stoppedAt && at >= r.stoppedAt - 1_000) return 'in-flight-at-stop'
    }
    return 'other'
  }
  const lostBy = { 'after-restart': 0, 'in-flight-at-stop': 0, other: 0 }
  for (const k of lostNs) lostBy[classify(k)]++
  const poolLostBy = { 'after-restart': 0, 'in-flight-at-stop': 0, other: 0 }
  for (const k of poolStats.lostNs) poolLostBy[classify(k)]++
  const otherLost = lostNs.filter((k) => classify(k) === 'other').slice(0, 20)
  const recoveries = restarts.map((r) => r.firstDeliveryMs).filter((v): v is number => v !== null).sort((a, b) => a - b)
  const pct = (p: number): number | null => recoveries.length === 0 ? null : recoveries[Math.min(recoveries.length - 1, Math.floor(p * recoveries.length))]!
  const rssMax = Math.max(...rss.map((r) => r.rss).filter((v) => Number.isFinite(v)))

  // ---- SIGTERM the bridge
  const termAt = Date.now()
  child.kill('SIGTERM')
  await Promise.race([exited, sleep(10_000)])
  const termMs = Date.now() - termAt
  killChild()
  await upstream.stop()
  rmSync(dir, { recursive: true, force: true })

  const summary = {
    minutes: MINUTES,
    rate: RATE,
    callers: CALLERS,
    published: publishedAt.size,
    publishFailures,
    restarts: restarts.length,
    downMs: { min: Math.min(...restarts.map((r) => r.downMs)), max: Math.max(...restarts.map((r) => r.downMs)) },
    firstDeliveryAfterStartMs: { median: pct(0.5), p90: pct(0.9), max: recoveries.at(-1) ?? null, missing: restarts.length - recoveries.length },
    observer: {
      streams: observerStreams,
      expected,
      delivered: observerNs.length,
      distinct: obsSet.size,
      lost: lostNs.length,
      lostBy,
      duplicated: observerNs.length - obsSet.size,
      outOfOrder: obsOutOfOrder,
      events: observerOther,
      otherLostSample: otherLost
    },
    pool: { ...poolStats, lostNs: undefined, lostBy: poolLostBy },
    bridge: {
      handshakes: view?.counters?.handshakes,
      rehandshakes: view?.counters?.rehandshakes,
      reconnects: view?.counters?.reconnects,
      messagesIn: view?.counters?.messagesIn,
      messagesOut: view?.counters?.messagesOut,
      slowCallerDrops: view?.counters?.slowCallerDrops,
      resumeGaps: view?.counters?.resumeGaps,
      callersAtEnd: view?.callers,
      subscriptionsAtEnd: view?.subscriptions?.length,
      metricsCallers: gauge('cometd_bridge_callers'),
      metricsUpstreamSubscriptions: gauge('cometd_bridge_upstream_subscriptions'),
      logLines,
      warnLines,
      errorLines,
      sigtermExit: childExit,
      sigtermMs: termMs
    },
    rssMB: { start: Number(mb(rssStart)), middle: Number(mb(rssMiddle)), end: Number(mb(rssEnd)), max: Number(mb(rssMax)) }
  }
  console.log(JSON.stringify(summary, null, 2))
  console.log([
    '',
    `published ${summary.published} (${publishFailures} publish failures), ${restarts.length} upstream restarts (down ${summary.downMs.min}-${summary.downMs.max} ms)`,
    `observer: delivered ${observerNs.length}, lost ${lostNs.length} (after a restart before resubscribe ${lostBy['after-restart']}, in flight at a stop ${lostBy['in-flight-at-stop']}, other ${lostBy.other}), duplicated ${summary.observer.duplicated}, out of order ${obsOutOfOrder}`,
    `pool: ${poolStats.connections} connections (${poolStats.resumes} resumes), expected ${poolStats.expected}, lost ${poolStats.lost} (after-restart ${poolLostBy['after-restart']}, in-flight ${poolLostBy['in-flight-at-stop']}, other ${poolLostBy.other}), duplicated ${poolStats.duplicated}, out of order ${poolStats.outOfOrder}, gaps ${poolStats.gaps}`,
    `first delivery after an upstream start: median ${summary.firstDeliveryAfterStartMs.median} ms, p90 ${summary.firstDeliveryAfterStartMs.p90} ms, max ${summary.firstDeliveryAfterStartMs.max} ms`,
    `bridge: handshakes ${summary.bridge.handshakes}, rehandshakes ${summary.bridge.rehandshakes}, reconnects ${summary.bridge.reconnects}; at the end callers ${summary.bridge.callersAtEnd}, upstream subscriptions ${summary.bridge.subscriptionsAtEnd}`,
    `RSS: start ${summary.rssMB.start} MB, middle ${summary.rssMB.middle} MB, end ${summary.rssMB.end} MB, max ${summary.rssMB.max} MB`,
    `SIGTERM → ${JSON.stringify(childExit)} in ${termMs} ms`
  ].join('\n'))
  if (JSON_OUT !== null) writeFileSync(JSON_OUT, JSON.stringify({ ...summary, rssSamples: rss, restartsDetail: restarts }, null, 2))
  process.exit(0)
}

main().catch((err: unknown) => {
  process.stderr.write(`soak: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
