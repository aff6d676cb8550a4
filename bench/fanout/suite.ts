/**
 * Parts 2–4 of issue 5, one suite ('fanout') because they share the processes:
 *
 *   upstream  faye 1.4.3 server + in-process publisher at a fixed rate (fanout/upstream.ts)
 *   bridge    the compiled daemon, `node dist/server/main.js --config <tmp>/bridge.json` (one session, websocket)
 *   bare      a bare node:http SSE broadcaster with the same upstream client (client-core, websocket) (fanout/bare.ts)
 *   callers   N raw node:http SSE callers in one process (fanout/callers.ts)
 *   official  the official cometd client subscribed directly upstream (fanout/official-sub.ts), part 3's reference
 *
 * Each variant has its own channel (/bench/bridge, /bench/bare), so the variant not measured receives nothing.
 * Runs interleave the variants (order alternates run by run). Per (run, N, variant):
 *   memory   server RSS before the callers connect and after N idle callers settled (2 s) → RSS per idle caller
 *   fan-out  publish `rate` msg/s for D s, rate = min(1000, offered / N); deliveries/s from the first publish to
 *            the last arrival, p99 of publish → caller, server CPU (from /proc, all threads) per 10k deliveries
 * Part 3 (per run): 10 callers on the bridge (/bench/latency) and the official subscriber on the same channel,
 *   1,000 msg/s for D s; added = bridge − official, p50 and p99. Then the same with the 10 callers on the bare
 *   broadcaster (subscribed to /bench/latency too): what any second hop adds on this machine.
 *
 * Flags: --fanout-sizes 100,1000[,10000]  --fanout-offered 100000 (deliveries/s)  --fanout-runs R  --fanout-seconds S
 *        --memory-n N (idle callers of part 4, default the largest size)  --fanout-docs (write docs/bench-fanout.svg
 *        in quick mode too; --full always does)  --fanout-profile (the bridge under --cpu-prof, under the results dir)
 *        --fanout-alt <dist dir> (another build of the bridge, e.g. a baseline's dist/, measured side by side: A/B table)
 * Part 5 ('sessions' suite): --sessions-n 1000 --sessions-idle-s S --sessions-runs R; the daemon with n configured
 *        sessions runs in --full (or with --sessions-bridge), --sessions-no-bridge skips it, --sessions-no-core
 *        skips client-core alone.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { BENCH_DIR, Child } from '../lib/proc.js'
import { sleep } from '../lib/clock.js'
import { median, ratio, type Summary } from '../lib/stats.js'
import { fmt, fmtInt, fmtRatio } from '../lib/table.js'
import { lineChart } from '../lib/svg.js'
import { intFlag, listFlag, type Suite, type SuiteContext, type SuiteResult, type Table } from '../lib/suite.js'
import type { PublishResult } from './upstream.js'

const ROOT = path.resolve(BENCH_DIR, '..', '..')
const MAIN = path.resolve(BENCH_DIR, '..', 'server', 'main.js')
/** `alt`: another build of the bridge (`--fanout-alt <dist dir>`, e.g. the baseline), side by side in the same run */
type Variant = 'bridge' | 'bare' | 'alt'
const CHANNELS: Record<Variant, string> = { bridge: '/bench/bridge', bare: '/bench/bare', alt: '/bench/alt' }
const LATENCY_CHANNEL = '/bench/latency'

/** RSS (MB) and CPU (ms, user + system, all threads) of a process from /proc. */
export function procUsage (pid: number): { rssMB: number, cpuMs: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const rss = /VmRSS:\s+(\d+) kB/.exec(status)
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const ticks = Number(fields[11]) + Number(fields[12]) // utime, stime (fields 14, 15)
    return { rssMB: rss === null ? Number.NaN : Number(rss[1]) / 1024, cpuMs: ticks * 10 }
  } catch {
    return { rssMB: Number.NaN, cpuMs: Number.NaN }
  }
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen({ port: 0, host: '127.0.0.1' }, () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

/** The bridge daemon as a spawned process (not an IPC child): killed in `stop()` and on exit. */
export class Bridge {
  readonly cp: ChildProcess
  readonly base: string
  stderr = ''
  #exited = false
  readonly #dir: string
  readonly #kill = (): void => { if (!this.#exited) this.cp.kill('SIGKILL') }
  private constructor (cp: ChildProcess, base: string, dir: string) {
    this.cp = cp
    this.base = base
    this.#dir = dir
    cp.once('exit', () => { this.#exited = true })
    cp.stderr?.setEncoding('utf8')
    cp.stderr?.on('data', (c: string) => { this.stderr = (this.stderr + c).slice(-4000) })
    cp.stdout?.on('data', (c: Buffer) => { if (process.env.BENCH_VERBOSE === '1') process.stderr.write(`[bridge] ${c.toString('utf8')}`) })
    process.on('exit', this.#kill)
  }

  /**
   * `sessions`: the config's sessions instead of the fan-out's one session `up`; the bridge is ready when every
   * session is connected and its held subscriptions are subscribed (bounded by `readyMs`).
   */
  static async start (upstreamUrl: string, maxCallers: number, execArgv: string[], sessions?: Record<string, unknown>, readyMs = 20_000,
    main = MAIN, channel = CHANNELS.bridge): Promise<Bridge> {
    const dir = mkdtempSync(path.join(tmpdir(), 'bench-fanout-'))
    const port = await freePort()
    const config = {
      listen: { host: '127.0.0.1', port },
      logLevel: 'warn',
      demo: false,
      shutdownTimeoutMs: 1000,
      dataDir: path.join(dir, 'data'),
      sessions: sessions ?? {
        up: { url: upstreamUrl, connectionTypes: ['websocket'], subscribe: [channel, LATENCY_CHANNEL] }
      },
      sse: { maxCallers }
    }
    const file = path.join(dir, 'bridge.json')
    writeFileSync(file, JSON.stringify(config, null, 2))
    const env: NodeJS.ProcessEnv = {}
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('COMETD_BRIDGE_') && k !== 'NODE_OPTIONS') env[k] = v
    const cp = spawn(process.execPath, [...execArgv, main, '--config', file], { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: dir })
    const bridge = new Bridge(cp, `http://127.0.0.1:${port}`, dir)
    const start = Date.now()
    type View = { state?: string, subscriptions?: Array<{ state: string }> }
    const ready = (v: View): boolean => v.state === 'connected' && (v.subscriptions ?? []).every((x) => x.state === 'subscribed')
    for (let i = 0; i < 2_000 && Date.now() - start < readyMs; i++) {
      if (bridge.#exited) break
      const views = await fetch(`${bridge.base}/sessions`, { signal: AbortSignal.timeout(5_000) })
        .then(async (r) => ((await r.json()) as { sessions: View[] }).sessions, () => [] as View[])
      if (views.length > 0 && views.every(ready)) return bridge
      await sleep(views.length > 100 ? 500 : 100)
    }
    bridge.#kill()
    throw new Error(`the bridge did not connect upstream within ${readyMs} ms: ${bridge.stderr.slice(-1500)}`)
  }

  get pid (): number { return this.cp.pid ?? -1 }

  async stop (): Promise<void> {
    if (!this.#exited) {
      const exited = new Promise<void>((resolve) => this.cp.once('exit', () => resolve()))
      this.cp.kill('SIGTERM')
      await Promise.race([exited, sleep(3_000)])
      this.#kill()
    }
    process.off('exit', this.#kill)
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

interface CallerStats { deliveries: number, otherTag: number, firstUs: number, lastUs: number, latencyMs: Summary, cpuMs: number }
interface FanoutRun {
  run: number, n: number, variant: Variant, open: number, failed: number, openMs: number,
  rssBeforeMB: number, rssIdleMB: number, rssPerCallerKB: number,
  rate: number, sent: number, expected: number, deliveries: number, deliveriesPerS: number, p50: number, p99: number,
  serverCpuMs: number, serverCpuPer10k: number, serverCpuShare: number, callersCpuMs: number
}
interface MemoryRun { run: number, variant: Variant, n: number, failed: number, openMs: number, rssBeforeMB: number, rssIdleMB: number, perCallerKB: number }
interface LatencyRun { run: number, sent: number, bridge: Summary, official: Summary, officialTransport: string, bare: Summary, bareOfficial: Summary }

function url (variant: Variant, bridge: Bridge, barePort: number, alt: Bridge | null): string {
  if (variant === 'bare') return `http://127.0.0.1:${barePort}/events`
  const b = variant === 'alt' ? alt! : bridge
  return `${b.base}/sessions/up/events?channel=${encodeURIComponent(CHANNELS[variant])}`
}

async function waitDelivered (callers: Child, expected: number, maxMs: number): Promise<CallerStats> {
  const start = Date.now()
  let last = await callers.call<CallerStats>('stats', {}, 10_000)
  let stableSince = Date.now()
  while (last.deliveries < expected && Date.now() - start < maxMs) {
    await sleep(200)
    const s = await callers.call<CallerStats>('stats', {}, 10_000)
    if (s.deliveries !== last.deliveries) stableSince = Date.now()
    last = s
    if (Date.now() - stableSince > 1_500) break // nothing arrives any more
  }
  return last
}

export const fanoutSuite: Suite = {
  name: 'fanout',
  title: 'bridge SSE fan-out, added latency and memory per caller vs a bare node:http broadcaster (parts 2–4)',
  async run (ctx: SuiteContext): Promise<SuiteResult> {
    const full = ctx.mode === 'full'
    const sizes = (listFlag(ctx.flags, 'fanout-sizes') ?? (full ? ['100', '1000', '10000'] : ['100', '1000'])).map(Number)
    const offered = intFlag(ctx.flags, 'fanout-offered', full ? 200_000 : 100_000)
    const runs = intFlag(ctx.flags, 'fanout-runs', full ? 3 : 1)
    const seconds = intFlag(ctx.flags, 'fanout-seconds', full ? 5 : 2)
    const maxN = Math.max(...sizes)
    const files: string[] = []
    const profileDir = path.join(ctx.outDir, 'profiles')
    const altDir = typeof ctx.flags['fanout-alt'] === 'string' ? path.resolve(ctx.flags['fanout-alt']) : null
    const bridgeArgv = ctx.flags['fanout-profile'] === true ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []
    if (bridgeArgv.length > 0) mkdirSync(profileDir, { recursive: true })

    const upstream = await Child.fork('fanout/upstream.js', [], { name: 'upstream' })
    const upstreamUrl = (upstream.readyInfo as { url: string }).url
    let bridge: Bridge | null = null
    let alt: Bridge | null = null
    const children: Child[] = [upstream]
    const fanout: FanoutRun[] = []
    const latency: LatencyRun[] = []
    const memory: MemoryRun[] = []
    const memN = intFlag(ctx.flags, 'memory-n', maxN)
    try {
      bridge = await Bridge.start(upstreamUrl, maxN + 100, bridgeArgv)
      if (altDir !== null) alt = await Bridge.start(upstreamUrl, maxN + 100, [], undefined, 20_000, path.join(altDir, 'server', 'main.js'), CHANNELS.alt)
      // the daemon runs its start-up GCs 1, 2 and 8 s after its sessions opened (server/session/startup.ts): measure after them
      await sleep(9_000)
      const bare = await Child.fork('fanout/bare.js', ['--url', upstreamUrl, '--channel', `${CHANNELS.bare},${LATENCY_CHANNEL}`], { name: 'bare' })
      children.push(bare)
      const barePort = (bare.readyInfo as { port: number }).port
      const barePid = bare.pid!
      const callers = await Child.fork('fanout/callers.js', [], { name: 'callers' })
      children.push(callers)
      const official = await Child.fork('fanout/official-sub.js', ['--url', upstreamUrl, '--channel', LATENCY_CHANNEL, '--transport', 'websocket'], { name: 'official' })
      children.push(official)
      ctx.log(`fanout: upstream ${upstreamUrl}, bridge ${bridge.base} (pid ${bridge.pid}), bare :${barePort} (pid ${barePid}); sizes ${sizes.join(',')}, offered ${offered}/s, ${seconds} s, ${runs} run(s)`)

      for (let run = 0; run < runs; run++) {
        // part 3 first in every run, after a settle: right after a fan-out phase the servers are still collecting its
        // garbage (measured: the bridge's added p99 1.0–1.3 ms before any load, 5–7 ms right after a fan-out phase)
        await sleep(3_000)
        // part 3: added latency at 1,000 msg/s: 10 SSE callers on the bridge, then on the bare broadcaster (the
        // floor of any two-hop path on this machine), each phase next to the official client directly upstream
        const bridgeBase = bridge.base
        const phase = async (variant: 'bridge' | 'bare'): Promise<{ sent: number, via: Summary, official: Summary, transport: string }> => {
          const tag = `L${run}${variant}`
          await sleep(500)
          const target = variant === 'bridge' ? `${bridgeBase}/sessions/up/events?channel=${encodeURIComponent(LATENCY_CHANNEL)}` : `http://127.0.0.1:${barePort}/events`
          const opened = await callers.call<{ open: number }>('open', { url: target, n: 10 }, 30_000)
          await sleep(1_000)
          await callers.call('reset', { tag, expected: 1000 * seconds * 10 }, 5_000)
          await official.call('reset', { tag }, 5_000)
          const pub = await upstream.call<PublishResult>('publish', { channel: LATENCY_CHANNEL, rate: 1_000, durationMs: seconds * 1000, tag }, seconds * 1000 + 10_000)
          const stats = await waitDelivered(callers, pub.sent * opened.open, 10_000)
          const off = await official.call<{ count: number, latencyMs: Summary, transport: string }>('stats', {}, 5_000)
          ctx.log(`  run ${run + 1} latency @1000/s: ${variant} p50 ${fmt(stats.latencyMs.p50)} p99 ${fmt(stats.latencyMs.p99)} ms (${stats.deliveries}/${pub.sent * opened.open}); official p50 ${fmt(off.latencyMs.p50)} p99 ${fmt(off.latencyMs.p99)} ms (${off.count}/${pub.sent})`)
          await callers.call('close', {}, 10_000)
          return { sent: pub.sent, via: stats.latencyMs, official: off.latencyMs, transport: off.transport }
        }
        const viaBridge = await phase('bridge')
        const viaBare = await phase('bare')
        latency.push({ run, sent: viaBridge.sent, bridge: viaBridge.via, official: viaBridge.official, officialTransport: viaBridge.transport, bare: viaBare.via, bareOfficial: viaBare.official })
        // part 4: RSS per idle caller at memN (before any load in run 1), both variants, order alternating
        for (const variant of (run % 2 === 0 ? ['bridge', 'bare'] : ['bare', 'bridge']) as Variant[]) {
          const pid = variant === 'bridge' ? bridge.pid : barePid
          await sleep(1_000)
          const before = procUsage(pid)
          const opened = await callers.call<{ open: number, failed: number, ms: number }>('open', { url: url(variant, bridge, barePort, alt), n: memN }, 130_000)
          await sleep(3_000)
          const idle = procUsage(pid)
          const m: MemoryRun = { run, variant, n: opened.open, failed: opened.failed, openMs: opened.ms, rssBeforeMB: before.rssMB, rssIdleMB: idle.rssMB,
            perCallerKB: ((idle.rssMB - before.rssMB) * 1024) / Math.max(1, opened.open) }
          memory.push(m)
          ctx.log(`  run ${run + 1} memory ${variant}: ${opened.open} idle callers (${opened.failed} failed, ${opened.ms} ms), RSS ${fmt(before.rssMB, 1)} → ${fmt(idle.rssMB, 1)} MB, ${fmt(m.perCallerKB, 2)} KB/caller`)
          await callers.call('close', {}, 10_000)
        }
        for (const n of sizes) {
          const base: Variant[] = alt === null ? ['bridge', 'bare'] : ['bridge', 'alt', 'bare']
          const k = (run + sizes.indexOf(n)) % base.length
          const order: Variant[] = [...base.slice(k), ...base.slice(0, k)]
          for (const variant of order) {
            const pid = variant === 'bridge' ? bridge.pid : variant === 'alt' ? alt!.pid : barePid
            const tag = `${variant[0]}${run}n${n}`
            await sleep(500)
            const before = procUsage(pid)
            const opened = await callers.call<{ open: number, failed: number, ms: number }>('open', { url: url(variant, bridge, barePort, alt), n }, 130_000)
            await sleep(2_000)
            const idle = procUsage(pid)
            const rate = Math.min(1_000, Math.max(1, Math.round(offered / n)))
            const expected = Math.round(rate * seconds) * opened.open
            await callers.call('reset', { tag, expected }, 5_000)
            const cpu0 = procUsage(pid)
            const callersCpu0 = (await callers.call<CallerStats>('stats', {}, 5_000)).cpuMs
            const pub = await upstream.call<PublishResult>('publish', { channel: CHANNELS[variant], rate, durationMs: seconds * 1000, tag }, seconds * 1000 + 10_000)
            const stats = await waitDelivered(callers, pub.sent * opened.open, 10_000)
            const cpu1 = procUsage(pid)
            const spanS = Math.max(1e-3, (stats.lastUs - pub.firstUs) / 1e6)
            const serverCpuMs = cpu1.cpuMs - cpu0.cpuMs
            const r: FanoutRun = {
              run, n, variant, open: opened.open, failed: opened.failed, openMs: opened.ms,
              rssBeforeMB: before.rssMB, rssIdleMB: idle.rssMB, rssPerCallerKB: ((idle.rssMB - before.rssMB) * 1024) / Math.max(1, opened.open),
              rate, sent: pub.sent, expected: pub.sent * opened.open, deliveries: stats.deliveries, deliveriesPerS: stats.deliveries / spanS,
              p50: stats.latencyMs.p50, p99: stats.latencyMs.p99,
              serverCpuMs, serverCpuPer10k: (serverCpuMs * 10_000) / Math.max(1, stats.deliveries), serverCpuShare: serverCpuMs / (spanS * 1000),
              callersCpuMs: stats.cpuMs - callersCpu0
            }
            fanout.push(r)
            ctx.log(`  run ${run + 1} N=${n} ${variant}: ${opened.open} open${opened.failed > 0 ? ` (${opened.failed} failed)` : ''}, ${fmtInt(r.deliveriesPerS)} deliveries/s (${r.deliveries}/${r.expected}), p99 ${fmt(r.p99)} ms, CPU ${fmt(r.serverCpuPer10k, 1)} ms/10k (server ${fmt(r.serverCpuShare * 100, 0)} %, callers ${fmt((r.callersCpuMs / (spanS * 1000)) * 100, 0)} % of a core), RSS/caller ${fmt(r.rssPerCallerKB, 1)} KB`)
            await callers.call('close', {}, 10_000)
          }
        }
      }
    } finally {
      for (const c of children.reverse()) await c.stop().catch(() => c.kill())
      await bridge?.stop()
      await alt?.stop()
    }

    // ---- tables
    const med = (n: number, v: Variant, key: keyof FanoutRun): number =>
      median(fanout.filter((r) => r.n === n && r.variant === v).map((r) => r[key] as number))
    const fanTable: Table = {
      title: `Fan-out: one upstream channel → N SSE callers (offered ${fmtInt(offered)} deliveries/s, ${seconds} s, median of ${runs} run(s))`,
      columns: ['N', 'msg/s', 'bridge deliv/s', 'bare deliv/s', 'ratio', 'target', 'bridge p99 ms', 'bare p99 ms', 'bridge CPU ms/10k', 'bare CPU ms/10k', 'CPU ratio'],
      rows: sizes.map((n) => {
        const rb = med(n, 'bridge', 'deliveriesPerS')
        const rn = med(n, 'bare', 'deliveriesPerS')
        return [fmtInt(n), fmtInt(med(n, 'bridge', 'rate')), fmtInt(rb), fmtInt(rn), fmtRatio(ratio(rb, rn)), n >= 1000 ? '≥ 0.80×' : '–',
          fmt(med(n, 'bridge', 'p99')), fmt(med(n, 'bare', 'p99')),
          fmt(med(n, 'bridge', 'serverCpuPer10k'), 1), fmt(med(n, 'bare', 'serverCpuPer10k'), 1),
          fmtRatio(ratio(med(n, 'bridge', 'serverCpuPer10k'), med(n, 'bare', 'serverCpuPer10k')))]
      }),
      notes: ['deliveries/s = deliveries / (last arrival − first publish); p99 = publish (upstream process) → SSE caller parsed the frame',
        'CPU ms/10k = server process CPU (user+system, /proc) per 10,000 deliveries: what it costs, independent of the offered rate',
        'same upstream (faye, in-process publisher), same upstream client (client-core, websocket), same SSE frame; separate channels']
    }
    const perRun = (n: number, key: keyof FanoutRun): string => fanout.filter((r) => r.n === n && r.variant === 'bridge').map((r) => {
      const a = fanout.find((x) => x.n === n && x.run === r.run && x.variant === 'alt')
      return a === undefined ? '–' : fmtRatio(ratio(r[key] as number, a[key] as number))
    }).join(', ')
    const altTable: Table | null = altDir === null ? null : {
      title: `A/B in the same run: this bridge vs --fanout-alt ${path.relative(ROOT, altDir) || altDir} (same upstream, same callers, own channel; median of ${runs} run(s))`,
      columns: ['N', 'bridge deliv/s', 'alt deliv/s', 'ratio', 'bridge p99 ms', 'alt p99 ms', 'bridge CPU ms/10k', 'alt CPU ms/10k', 'CPU ratio', 'per-run deliv/s ratios', 'per-run CPU ratios'],
      rows: sizes.map((n) => [fmtInt(n), fmtInt(med(n, 'bridge', 'deliveriesPerS')), fmtInt(med(n, 'alt', 'deliveriesPerS')),
        fmtRatio(ratio(med(n, 'bridge', 'deliveriesPerS'), med(n, 'alt', 'deliveriesPerS'))),
        fmt(med(n, 'bridge', 'p99')), fmt(med(n, 'alt', 'p99')),
        fmt(med(n, 'bridge', 'serverCpuPer10k'), 1), fmt(med(n, 'alt', 'serverCpuPer10k'), 1),
        fmtRatio(ratio(med(n, 'bridge', 'serverCpuPer10k'), med(n, 'alt', 'serverCpuPer10k'))),
        perRun(n, 'deliveriesPerS'), perRun(n, 'serverCpuPer10k')])
    }
    // Only run 1 is read: it comes before any load. Later runs start from a heap grown by the fan-out and V8 gives it
    // back while the callers open (negative deltas were seen), so they are listed, not used.
    const mm = (v: Variant, key: keyof MemoryRun): number => median(memory.filter((r) => r.variant === v && r.run === 0).map((r) => r[key] as number))
    const laterRuns = memory.filter((r) => r.run > 0).map((r) => `run ${r.run + 1} ${r.variant} ${fmt(r.perCallerKB, 2)}`).join(', ')
    const memTable: Table = {
      title: `Memory per idle SSE caller: ${fmtInt(memN)} idle callers, server RSS after they settled (3 s) − before (run 1, before any load)`,
      columns: ['server', 'callers open', 'RSS before MB', 'RSS idle MB', 'KB/caller', 'ratio vs bare', 'target'],
      rows: (['bridge', 'bare'] as Variant[]).map((v) => [v === 'bridge' ? 'cometd-bridge' : 'bare node:http', fmtInt(mm(v, 'n')), fmt(mm(v, 'rssBeforeMB'), 1), fmt(mm(v, 'rssIdleMB'), 1),
        fmt(mm(v, 'perCallerKB'), 2), v === 'bridge' ? fmtRatio(ratio(mm('bridge', 'perCallerKB'), mm('bare', 'perCallerKB'))) : '1.00×', v === 'bridge' ? '≤ 1.50×' : '–']),
      notes: [`later runs (after fan-out load; not used: the heap grown by the load shrinks while callers open), KB/caller: ${laterRuns === '' ? 'none' : laterRuns}`]
    }
    const lm = (f: (l: LatencyRun) => number): number => median(latency.map(f))
    const latTable: Table = {
      title: `Added latency at 1,000 msg/s (${seconds} s, 10 SSE callers on the bridge, then on bare node:http, each next to the official cometd client directly upstream over websocket; median of ${runs} run(s))`,
      columns: ['', 'p50 ms', 'p99 ms'],
      rows: [
        ['bridge → SSE caller', fmt(lm((l) => l.bridge.p50)), fmt(lm((l) => l.bridge.p99))],
        ['official client, direct (same phase)', fmt(lm((l) => l.official.p50)), fmt(lm((l) => l.official.p99))],
        ['**added by the bridge** (median of per-run differences)', fmt(lm((l) => l.bridge.p50 - l.official.p50)), fmt(lm((l) => l.bridge.p99 - l.official.p99))],
        ['bare node:http → SSE caller', fmt(lm((l) => l.bare.p50)), fmt(lm((l) => l.bare.p99))],
        ['official client, direct (same phase)', fmt(lm((l) => l.bareOfficial.p50)), fmt(lm((l) => l.bareOfficial.p99))],
        ['added by bare node:http (the floor of a second hop)', fmt(lm((l) => l.bare.p50 - l.bareOfficial.p50)), fmt(lm((l) => l.bare.p99 - l.bareOfficial.p99))],
        ['target (bridge)', '–', '≤ 2.00']
      ],
      notes: [`per run, added p99 bridge / bare: ${latency.map((l) => `${fmt(l.bridge.p99 - l.official.p99)} / ${fmt(l.bare.p99 - l.bareOfficial.p99)}`).join(', ')} ms`]
    }

    // ---- plot
    const chart = lineChart({
      title: 'SSE fan-out: deliveries/s against callers (median of runs)',
      xLabel: 'SSE callers (N)', yLabel: 'deliveries/s', logX: true,
      series: (['bridge', 'bare'] as Variant[]).map((v) => ({ name: v === 'bridge' ? 'cometd-bridge' : 'bare node:http', points: sizes.map((n) => [n, med(n, v, 'deliveriesPerS')] as [number, number]) }))
    })
    if (ctx.flags['no-save'] !== true) {
      mkdirSync(ctx.outDir, { recursive: true })
      const svg = path.join(ctx.outDir, 'bench-fanout.svg')
      writeFileSync(svg, chart)
      files.push(path.relative(ROOT, svg))
    }
    if (full || ctx.flags['fanout-docs'] === true) {
      const docSvg = path.join(ROOT, 'docs', 'bench-fanout.svg')
      writeFileSync(docSvg, chart)
      files.push(path.relative(ROOT, docSvg))
    }
    return { tables: altTable === null ? [fanTable, latTable, memTable] : [fanTable, altTable, latTable, memTable], data: { sizes, offered, runs, seconds, memN, fanout, latency, memory }, files }
  }
}

// ------------------------------------------------------------------ part 5

export const sessionsSuite: Suite = {
  name: 'sessions',
  title: 'many upstream sessions: client-core Clients (long-polling) against faye, RSS per session and idle CPU (part 5)',
  async run (ctx: SuiteContext): Promise<SuiteResult> {
    const full = ctx.mode === 'full'
    const n = intFlag(ctx.flags, 'sessions-n', 1_000)
    // ≥ 10 s: the daemon's last start-up GC (the one that shrinks the young generation) runs 8 s after its sessions opened
    const idleS = intFlag(ctx.flags, 'sessions-idle-s', full ? 20 : 10)
    const runs = intFlag(ctx.flags, 'sessions-runs', full ? 2 : 1)
    const rows: Array<Record<string, number>> = []
    for (let run = 0; run < runs; run++) {
      const server = await Child.fork('client/server.js', ['--server', 'faye'], { name: 'faye' })
      let holder: Child | null = null
      try {
        const url = (server.readyInfo as { url: string }).url
        // --sessions-no-core: the daemon rows only
        const nan = { cpuMs: Number.NaN, rssMB: Number.NaN }
        let opened: Record<string, number> = { open: Number.NaN, ms: Number.NaN, rssBeforeMB: Number.NaN, heapMB: Number.NaN }
        let a = nan
        let b = nan
        let sa = { cpuMs: Number.NaN, rssMB: Number.NaN }
        let sb = sa
        if (ctx.flags['sessions-no-core'] !== true) {
          holder = await Child.fork('fanout/sessions.js', [], { name: 'sessions', execArgv: ['--expose-gc'] })
          opened = await holder.call<Record<string, number>>('open', { url, n }, 130_000)
          a = await holder.call<{ cpuMs: number, rssMB: number }>('usage', {}, 5_000)
          sa = procUsage(server.pid!)
          await sleep(idleS * 1000)
          b = await holder.call<{ cpuMs: number, rssMB: number }>('usage', {}, 5_000)
          sb = procUsage(server.pid!)
        }
        // the daemon: a bridge with 1 session, then one with n sessions (long-polling, one held subscription each)
        const sessionsOf = (k: number): Record<string, unknown> => Object.fromEntries(Array.from({ length: k }, (_v, i) =>
          [`s${i}`, { url, connectionTypes: ['long-polling'], subscribe: [`/bench/bridge-session/${i}`] }]))
        const bridgeRss: number[] = []
        let bridgeIdleCpu = Number.NaN
        let bridgeStartMs = Number.NaN
        if (ctx.flags['sessions-no-bridge'] !== true && (full || ctx.flags['sessions-bridge'] === true)) {
          for (const k of [1, n]) {
            const t0 = Date.now()
            const b = await Bridge.start(url, 100, [], sessionsOf(k), 120_000)
            try {
              if (k === n) bridgeStartMs = Date.now() - t0
              // both rows after the same wait: the daemon collects its start-up garbage 1-8 s after the sessions opened
              await sleep(3_000)
              const u0 = procUsage(b.pid)
              await sleep(idleS * 1000)
              const u1 = procUsage(b.pid)
              if (k === n) bridgeIdleCpu = (u1.cpuMs - u0.cpuMs) / (idleS * 1000)
              bridgeRss.push(u1.rssMB)
            } finally {
              await b.stop()
            }
          }
          ctx.log(`  run ${run + 1} bridge: 1 session ${fmt(bridgeRss[0]!, 1)} MB, ${n} sessions ${fmt(bridgeRss[1]!, 1)} MB (ready in ${bridgeStartMs} ms), idle CPU ${fmt(bridgeIdleCpu * 100, 2)} %`)
        }
        const row = {
          bridge1RssMB: bridgeRss[0] ?? Number.NaN, bridgeNRssMB: bridgeRss[1] ?? Number.NaN, bridgeIdleCpuShare: bridgeIdleCpu, bridgeStartMs,
          bridgePerSessionKB: (((bridgeRss[1] ?? Number.NaN) - (bridgeRss[0] ?? Number.NaN)) * 1024) / Math.max(1, n - 1),
          run, ...opened, rssIdleMB: b.rssMB, perSessionKB: ((b.rssMB - opened.rssBeforeMB!) * 1024) / Math.max(1, opened.open!),
          idleCpuShare: (b.cpuMs - a.cpuMs) / (idleS * 1000), serverIdleCpuShare: (sb.cpuMs - sa.cpuMs) / (idleS * 1000), serverRssMB: sb.rssMB
        }
        rows.push(row)
        if (holder !== null) ctx.log(`  run ${run + 1}: ${opened.open} sessions in ${opened.ms} ms, RSS ${fmt(opened.rssBeforeMB!, 1)} → ${fmt(b.rssMB, 1)} MB (${fmt(row.perSessionKB, 1)} KB/session), idle CPU ${fmt(row.idleCpuShare * 100, 2)} %`)
      } finally {
        await holder?.stop().catch(() => holder?.kill())
        await server.stop().catch(() => server.kill())
      }
    }
    const m = (k: string): number => median(rows.map((r) => r[k]!))
    const table: Table = {
      title: `${fmtInt(n)} upstream sessions held by client-core in one process (faye, long-polling, one subscription each; idle ${idleS} s; median of ${runs} run(s))`,
      columns: ['sessions', 'open ms', 'RSS before MB', 'RSS idle MB', 'KB/session', 'heap MB', 'idle CPU %', 'faye CPU %', 'target'],
      rows: [[fmtInt(m('open')), fmtInt(m('ms')), fmt(m('rssBeforeMB'), 1), fmt(m('rssIdleMB'), 1), fmt(m('perSessionKB'), 1), fmt(m('heapMB'), 1),
        fmt(m('idleCpuShare') * 100, 2), fmt(m('serverIdleCpuShare') * 100, 2), '≤ 150 MB']],
      notes: ['RSS after a forced GC (--expose-gc); the faye long-poll is held 30 s, so idle CPU includes the reconnects']
    }
    const bridgeTable: Table = {
      title: `The bridge daemon holding ${fmtInt(n)} configured sessions (faye, long-polling, one held subscription each; idle ${idleS} s; median of ${runs} run(s))`,
      columns: ['sessions', 'ready ms', 'RSS with 1 session MB', `RSS with ${fmtInt(n)} MB`, 'KB/session', 'idle CPU %', 'target'],
      rows: [[fmtInt(n), fmtInt(m('bridgeStartMs')), fmt(m('bridge1RssMB'), 1), fmt(m('bridgeNRssMB'), 1), fmt(m('bridgePerSessionKB'), 1), fmt(m('bridgeIdleCpuShare') * 100, 2), '≤ 150 MB']],
      notes: ['RSS of the daemon (/proc VmRSS, no forced GC from outside) 3 s + the idle period after every session was connected and subscribed (1 session and n alike); the daemon runs its own start-up GCs 1–8 s after its sessions opened (server/session/startup.ts): the last one 8 s after, so use an idle period ≥ 10 s; idle CPU includes them']
    }
    const tables = [...(rows.some((r) => Number.isFinite(r.rssIdleMB)) ? [table] : []), ...(rows.some((r) => Number.isFinite(r.bridgeNRssMB)) ? [bridgeTable] : [])]
    return { tables, data: { n, idleS, runs, rows } }
  }
}
