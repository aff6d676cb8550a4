/**
 * Flat memory while streaming (suite 'stream'): the daemon's RSS while it streams large messages to a few fast SSE
 * callers, next to a bare node:http broadcaster doing the same job in the same run.
 *
 *   upstream  faye 1.4.3 (client/server.ts) and a publisher of `--stream-kb` KB messages at `--stream-rate` msg/s over
 *             websocket (stream/publisher.ts)
 *   bridge    the compiled daemon (fanout/suite.ts's Bridge) with the node flags of `npm start`, one websocket session
 *             subscribed to its own channel
 *   alt       --stream-alt <dist dir>: another build of the daemon (e.g. the baseline), its own channel, same callers
 *   bare      fanout/bare.ts as is (client-core upstream, frames of a tick joined into one Buffer per write)
 *   callers   stream/callers.ts: `--stream-callers` raw SSE streams reading as fast as they can (Buffers, only each
 *             frame's head parsed), each checking order
 *
 * Every run starts fresh servers; the variants stream one after the other (order rotating run by run), each:
 * callers open, 1.5 s idle (the idle figure: median RSS of its last second), `--stream-mb` MB published, then
 * `--stream-quiet-s` s of quiet with the callers still connected (the "after" figure: median RSS of the last second
 * of the quiet). RSS from /proc every 250 ms; the bridges' heap used/total and external memory from their /metrics.
 * A variant's quiet overlaps the next variant's stream (it receives nothing then). The daemons run their start-up
 * GCs 1, 2 and 8 s after their sessions opened (server/session/startup.ts): no bridge streams before 9 s.
 *
 * Diagnostics: --stream-node-flags "--trace-gc" (node flags added to this build's daemon; its
 * stdout goes to <results>/<stamp>/stream-bridge-run<k>.log) and --stream-snapshots (heap snapshots of this build's
 * daemon at idle and at the middle of the quiet (a snapshot runs a full GC first; one during the stream stalls the
 * daemon for seconds and the callers with it), under <results>/<stamp>/),
 * --stream-retries K (a run is run again, up to K times, when a caller was dropped; default 1), --stream-buffer-size N (the sessions' replay ring, default the daemon's), --stream-alt-flags "--max-semi-space-size=2"
 * (node flags of the alt daemon; without --stream-alt, alt is this build: A/B of a V8 setting in one run).
 */
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import path from 'node:path'
import { BENCH_DIR, Child } from '../lib/proc.js'
import { sleep } from '../lib/clock.js'
import { median } from '../lib/stats.js'
import { fmt, fmtInt } from '../lib/table.js'
import { intFlag, listFlag, type Suite, type SuiteContext, type SuiteResult, type Table } from '../lib/suite.js'
import { judge, type TargetResult } from '../lib/targets.js'
import { Bridge, procUsage } from '../fanout/procs.js'
import type { StreamResult } from './publisher.js'
import { peak, Sampler, type Sample } from './sampler.js'

type Variant = 'bridge' | 'alt' | 'bare'
const CHANNEL: Record<Variant, string> = { bridge: '/bench/stream', alt: '/bench/stream-alt', bare: '/bench/stream-bare' }
/** what the daemons need before their idle figure means anything: their start-up GCs run 1, 2 and 8 s after start */
const SETTLE_MS = 9_000
const IDLE_MS = 1_500
/** the daemon's per-caller queue bound here (its default, 1 MiB, is 64 ms of this stream; see queueBoundEntry) */
const QUEUE_BYTES = 16 * 1024 * 1024

/**
 * The daemon's entry with `sse.maxQueueBytes` raised to 16 MiB (1 s of the stream): on this shared machine the callers
 * process stalls for longer than the default 1 MiB (64 ms at 16 MB/s) lets a caller fall behind, and the daemon
 * drops it as slow. The bare broadcaster has no bound at all; the frames a lagging caller has queued are the ring's
 * own (shared), so the bound adds little memory. Fanout/suite.ts's Bridge writes the config and strips
 * COMETD_BRIDGE_* from the environment, so a small module sets the variable and imports the real entry.
 */
function queueBoundEntry (dir: string, variant: Variant, main: string): string {
  const file = path.join(dir, `daemon-${variant}.mjs`)
  writeFileSync(file, `process.env.COMETD_BRIDGE_SSE_MAX_QUEUE_BYTES = '${QUEUE_BYTES}'\nawait import(${JSON.stringify(pathToFileURL(main).href)})\n`)
  return file
}

/** The node flags of the shipped start command (package.json `start`, as the Dockerfile's CMD): the daemon runs with them. */
export function shippedNodeFlags (): string[] {
  const pkg = JSON.parse(readFileSync(path.resolve(BENCH_DIR, '..', '..', 'package.json'), 'utf8')) as { scripts?: Record<string, string> }
  const words = (pkg.scripts?.start ?? '').split(/\s+/)
  return words.slice(words.indexOf('node') + 1).filter((w) => w.startsWith('--'))
}

interface Params { bytes: number, count: number, rate: number, callers: number, quietMs: number }
interface Server { variant: Variant, pid: number, events: string, metrics: string | null, readyAt: number, stop: () => Promise<void> }
interface CallerStats { deliveries: number, otherTag: number, duplicates: number, firstUs: number, lastUs: number, latencyMs: { p99: number } }
export interface StreamRun {
  run: number, variant: Variant, open: number, sent: number, expected: number, deliveries: number, duplicates: number, streamS: number, p99Ms: number,
  /** server CPU (user + system, /proc) from the first publish to the last delivery, per MB delivered to callers */
  cpuMsPerMB: number,
  idleMB: number, peakMB: number, growthMB: number, afterMB: number, afterGrowthMB: number,
  heapUsedIdleMB: number, heapUsedPeakMB: number, heapTotalPeakMB: number, externalPeakMB: number, heapTotalAfterMB: number, externalAfterMB: number,
  /** [s since the stream started, RSS, heap total, external] every 250 ms, MB */
  series: number[][]
}

async function startServers (upstreamUrl: string, ctx: SuiteContext, run: number, nodeFlags: string[]): Promise<Server[]> {
  const bridgeOf = async (variant: 'bridge' | 'alt', main?: string): Promise<Server> => {
    const bufferSize = ctx.flags['stream-buffer-size']
    const sessions = { up: { url: upstreamUrl, connectionTypes: ['websocket'], subscribe: [CHANNEL[variant]], ...(typeof bufferSize === 'string' ? { bufferSize: Number(bufferSize) } : {}) } }
    const entry = queueBoundEntry(ctx.outDir, variant, main ?? path.resolve(BENCH_DIR, '..', 'server', 'main.js'))
    const b = await Bridge.start(upstreamUrl, 100, variant === 'bridge' ? nodeFlags : (listFlag(ctx.flags, 'stream-alt-flags') ?? []), sessions, 20_000, entry)
    if (variant === 'bridge' && ctx.flags['stream-node-flags'] !== undefined) b.cp.stdout?.pipe(createWriteStream(path.join(ctx.outDir, `stream-bridge-run${run + 1}.log`)))
    return { variant, pid: b.pid, events: `${b.base}/sessions/up/events?channel=${encodeURIComponent(CHANNEL[variant])}`, metrics: `${b.base}/metrics`, readyAt: Date.now(), stop: async () => { await b.stop() } }
  }
  const bareOf = async (): Promise<Server> => {
    const bare = await Child.fork('fanout/bare.js', ['--url', upstreamUrl, '--channel', CHANNEL.bare], { name: 'bare' })
    const port = (bare.readyInfo as { port: number }).port
    return { variant: 'bare', pid: bare.pid!, events: `http://127.0.0.1:${port}/events`, metrics: null, readyAt: 0, stop: async () => { await bare.stop().catch(() => bare.kill()) } }
  }
  const alt = ctx.flags['stream-alt']
  const withAlt = typeof alt === 'string' || listFlag(ctx.flags, 'stream-alt-flags') !== undefined
  // started side by side (the daemons' start-up settle is the longest wait of a quick run)
  const started = await Promise.allSettled([bridgeOf('bridge'), ...(withAlt ? [bridgeOf('alt', typeof alt === 'string' ? path.join(path.resolve(alt), 'server', 'main.js') : undefined)] : []), bareOf()])
  const servers = started.flatMap((r) => r.status === 'fulfilled' ? [r.value] : [])
  const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected')
  if (failed !== undefined) {
    await Promise.all(servers.map(async (s) => { await s.stop() }))
    throw failed.reason
  }
  return servers
}

/** Waits until `expected` deliveries arrived, or nothing arrived for 2 s, or `maxMs`. */
async function delivered (callers: Child, expected: number, maxMs: number): Promise<CallerStats> {
  const start = Date.now()
  let last = await callers.call<CallerStats>('stats', {}, 10_000)
  let progressAt = Date.now()
  while (last.deliveries < expected && Date.now() - start < maxMs && Date.now() - progressAt < 2_000) {
    await sleep(100)
    const s = await callers.call<CallerStats>('stats', {}, 10_000)
    if (s.deliveries !== last.deliveries) progressAt = Date.now()
    last = s
  }
  return last
}

function median1 (samples: readonly Sample[], key: keyof Sample): number {
  return median(samples.map((s) => s[key] ?? Number.NaN))
}

/**
 * One variant: callers open, idle, stream, then (returned, so that the next variant can stream meanwhile) the
 * quiet period and the figures.
 */
async function streamPhase (ctx: SuiteContext, run: number, server: Server, publisher: Child, callers: Child, p: Params, snapshots: boolean): Promise<{ quiet: Promise<StreamRun> }> {
  const sampler = new Sampler(server.pid, server.metrics)
  const snap = (): void => { if (snapshots && server.variant === 'bridge') process.kill(server.pid, 'SIGUSR2') }
  try {
    const opened = await callers.call<{ open: number }>('open', { url: server.events, n: p.callers }, 30_000)
    await sleep(IDLE_MS)
    const idleTo = Date.now()
    snap()
    const tag = `S${run}${server.variant}`
    await callers.call('reset', { tag, expected: p.count * opened.open, count: p.count }, 5_000)
    const streamFrom = Date.now()
    const cpu0 = procUsage(server.pid).cpuMs
    const durationS = p.count / p.rate
    const pub = await publisher.call<StreamResult>('publish', { channel: CHANNEL[server.variant], rate: p.rate, count: p.count, bytes: p.bytes, tag }, durationS * 1000 + 40_000)
    const stats = await delivered(callers, pub.sent * opened.open, 30_000)
    const streamTo = Date.now()
    const cpuMs = procUsage(server.pid).cpuMs - cpu0
    ctx.log(`  run ${run + 1} ${server.variant}: ${stats.deliveries}/${pub.sent * opened.open} delivered${stats.duplicates > 0 ? ` (${stats.duplicates} duplicates)` : ''} in ${fmt((streamTo - streamFrom) / 1000, 1)} s, p99 ${fmt(stats.latencyMs.p99)} ms, server CPU ${fmtInt(cpuMs)} ms`)
    const quiet = (async () => {
      try {
        if (snapshots) {
          await sleep(p.quietMs / 2)
          snap()
        }
        await sleep(snapshots ? p.quietMs / 2 : p.quietMs)
        return figures(run, server.variant, sampler, { idleTo, streamFrom, streamTo, afterTo: Date.now() },
          { open: opened.open, sent: pub.sent, deliveries: stats.deliveries, duplicates: stats.duplicates, p99Ms: stats.latencyMs.p99, cpuMs, bytes: p.bytes })
      } finally {
        sampler.stop()
      }
    })()
    return { quiet }
  } catch (error) {
    sampler.stop()
    throw error
  }
}

interface Times { idleTo: number, streamFrom: number, streamTo: number, afterTo: number }

function figures (run: number, variant: Variant, sampler: Sampler, t: Times, d: { open: number, sent: number, deliveries: number, duplicates: number, p99Ms: number, cpuMs: number, bytes: number }): StreamRun {
  const idle = sampler.between(t.idleTo - 1_000, t.idleTo)
  const during = sampler.between(t.streamFrom, t.streamTo + 500)
  const after = sampler.between(t.afterTo - 1_000, t.afterTo)
  const idleMB = median1(idle, 'rssMB')
  const afterMB = median1(after, 'rssMB')
  const peakMB = peak(during, 'rssMB')
  return {
    run, variant, open: d.open, sent: d.sent, expected: d.sent * d.open, deliveries: d.deliveries, duplicates: d.duplicates, streamS: (t.streamTo - t.streamFrom) / 1000, p99Ms: d.p99Ms,
    cpuMsPerMB: d.cpuMs / Math.max(1e-9, (d.deliveries * d.bytes) / (1024 * 1024)),
    idleMB, peakMB, growthMB: peakMB - idleMB, afterMB, afterGrowthMB: afterMB - idleMB,
    heapUsedIdleMB: median1(idle, 'heapUsedMB'), heapUsedPeakMB: peak(during, 'heapUsedMB'), heapTotalPeakMB: peak(during, 'heapTotalMB'),
    externalPeakMB: peak(during, 'externalMB'), heapTotalAfterMB: median1(after, 'heapTotalMB'), externalAfterMB: median1(after, 'externalMB'),
    series: sampler.samples.map((x) => [x.at - t.streamFrom, x.rssMB, x.heapTotalMB ?? Number.NaN, x.externalMB ?? Number.NaN].map((v) => Math.round(v * 10) / 10))
  }
}

function params (ctx: SuiteContext): Params {
  const full = ctx.mode === 'full'
  const kb = intFlag(ctx.flags, 'stream-kb', 16)
  const mb = intFlag(ctx.flags, 'stream-mb', full ? 256 : 64)
  return {
    bytes: kb * 1024,
    count: Math.max(1, Math.round((mb * 1024) / kb)),
    rate: intFlag(ctx.flags, 'stream-rate', 1_000),
    callers: intFlag(ctx.flags, 'stream-callers', 10),
    quietMs: intFlag(ctx.flags, 'stream-quiet-s', 10) * 1000
  }
}

/** One run: fresh servers, the variants streaming one after the other (rotated by run), every quiet awaited. */
async function oneRun (ctx: SuiteContext, run: number, upstream: Child, publisher: Child, callers: Child, p: Params, out: StreamRun[]): Promise<void> {
  const nodeFlags = [...shippedNodeFlags(), ...listFlag(ctx.flags, 'stream-node-flags') ?? []]
  const snapshots = ctx.flags['stream-snapshots'] === true
  if (snapshots) nodeFlags.push('--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${ctx.outDir}`)
  const servers = await startServers((upstream.readyInfo as { url: string }).url, ctx, run, nodeFlags)
  try {
    const order = servers.map((_s, i) => servers[(i + run + servers.length - 1) % servers.length]!)
    const quiets: Array<Promise<StreamRun>> = []
    for (const server of order) {
      if (server.variant !== 'bare') await sleep(server.readyAt + SETTLE_MS - Date.now())
      quiets.push((await streamPhase(ctx, run, server, publisher, callers, p, snapshots)).quiet)
    }
    for (const r of await Promise.all(quiets)) {
      out.push(r)
      ctx.log(`  run ${run + 1} ${r.variant}: RSS idle ${fmt(r.idleMB, 1)} MB, peak +${fmt(r.growthMB, 1)} MB, after ${p.quietMs / 1000} s +${fmt(r.afterGrowthMB, 1)} MB` +
        (Number.isFinite(r.heapTotalPeakMB) ? ` (heap used ≤ ${fmt(r.heapUsedPeakMB, 1)}, heap total ≤ ${fmt(r.heapTotalPeakMB, 1)} → ${fmt(r.heapTotalAfterMB, 1)}, external ≤ ${fmt(r.externalPeakMB, 1)} → ${fmt(r.externalAfterMB, 1)} MB)` : ''))
    }
  } finally {
    await callers.call('close', {}, 10_000).catch(() => {})
    await Promise.all(servers.map(async (s) => { await s.stop() }))
  }
}

export const streamSuite: Suite = {
  name: 'stream',
  title: 'flat memory while streaming large messages to fast SSE callers, bridge vs bare node:http',
  async run (ctx: SuiteContext): Promise<SuiteResult> {
    const p = params(ctx)
    const runs = intFlag(ctx.flags, 'stream-runs', ctx.mode === 'full' ? 3 : 1)
    mkdirSync(ctx.outDir, { recursive: true })
    const out: StreamRun[] = []
    const discarded: StreamRun[] = []
    const children: Child[] = []
    try {
      const upstream = await Child.fork('client/server.js', ['--server', 'faye'], { name: 'faye' })
      children.push(upstream)
      const url = (upstream.readyInfo as { url: string }).url
      const [publisher, callers] = await Promise.all([Child.fork('stream/publisher.js', ['--url', url], { name: 'publisher' }), Child.fork('stream/callers.js', [], { name: 'callers' })])
      children.push(publisher, callers)
      ctx.log(`stream: ${fmtInt(p.count)} × ${p.bytes / 1024} KB at ${p.rate}/s to ${p.callers} callers, quiet ${p.quietMs / 1000} s, ${runs} run(s)`)
      const retries = intFlag(ctx.flags, 'stream-retries', 1)
      for (let run = 0; run < runs; run++) {
        for (let attempt = 0; attempt <= retries; attempt++) {
          const got: StreamRun[] = []
          await oneRun(ctx, run, upstream, publisher, callers, p, got)
          // on a busy machine the callers process can stall long enough for the daemon to drop a caller as slow
          // (its 1 MiB queue bound): such a run did not stream what it should have, so it is run again, afresh
          if (got.some(incomplete) && attempt < retries) {
            discarded.push(...got)
            ctx.log(`  run ${run + 1}: not every message delivered once (callers fell behind), run again`)
            continue
          }
          out.push(...got)
          break
        }
      }
    } finally {
      for (const c of children.reverse()) await c.stop().catch(() => c.kill())
    }
    return report(ctx, p, runs, out, discarded)
  }
}

function incomplete (r: StreamRun): boolean {
  return r.deliveries !== r.expected || r.duplicates !== 0
}

function report (ctx: SuiteContext, p: Params, runs: number, out: StreamRun[], discarded: StreamRun[]): SuiteResult {
  const mb = (p.count * p.bytes) / (1024 * 1024)
  const variants = (['bridge', 'alt', 'bare'] as Variant[]).filter((v) => out.some((r) => r.variant === v))
  // a run in which a caller was dropped streamed less than it should have: listed, not counted
  const complete = (v: Variant): StreamRun[] => out.filter((r) => r.variant === v && !incomplete(r))
  const m = (v: Variant, key: keyof StreamRun): number => median(complete(v).map((r) => r[key] as number))
  const per = (v: Variant, key: keyof StreamRun): string => out.filter((r) => r.variant === v).map((r) => `${fmt(r[key] as number, 1)}${incomplete(r) ? '*' : ''}`).join(', ')
  const name: Record<Variant, string> = { bridge: 'cometd-bridge', alt: `alt: ${String(ctx.flags['stream-alt'] ?? 'this build')} ${String(ctx.flags['stream-alt-flags'] ?? '')}`.trim(), bare: 'bare node:http' }
  const lost = out.some(incomplete)
  const counted = (v: Variant): string => `${complete(v).length}/${out.filter((r) => r.variant === v).length}`
  const table: Table = {
    title: `Streaming ${fmtInt(mb)} MB (${fmtInt(p.count)} × ${p.bytes / 1024} KB at ${p.rate} msg/s) to ${p.callers} fast SSE callers: server RSS (median of ${runs} run(s))`,
    columns: ['server', 'complete runs', 'RSS idle MB', 'peak growth MB', `growth ${p.quietMs / 1000} s after MB`, 'heap used peak MB', 'heap total peak MB', 'external peak MB', 'p99 ms', 'CPU ms/MB', 'per-run growth / after'],
    rows: variants.map((v) => [name[v], counted(v), fmt(m(v, 'idleMB'), 1), fmt(m(v, 'growthMB'), 1),
      fmt(m(v, 'afterGrowthMB'), 1), fmt(m(v, 'heapUsedPeakMB'), 1), fmt(m(v, 'heapTotalPeakMB'), 1), fmt(m(v, 'externalPeakMB'), 1), fmt(m(v, 'p99Ms'), 1), fmt(m(v, 'cpuMsPerMB'), 2),
      `${per(v, 'growthMB')} / ${per(v, 'afterGrowthMB')}`]),
    notes: ['growth = RSS (/proc VmRSS, every 250 ms) − the idle RSS just before the stream (callers connected); peak = largest sample from the first publish to 0.5 s after the last delivery',
      `the daemons with sse.maxQueueBytes = ${QUEUE_BYTES / (1024 * 1024)} MiB (the default 1 MiB is 64 ms of this stream: callers stalled by other work on the machine were dropped as slow)`,
      `after = median RSS of the last second of ${p.quietMs / 1000} s of quiet (callers still connected) − idle; heap figures from the daemon's /metrics (prom-client default metrics), sampled alongside`,
      `the daemon runs with the node flags of \`npm start\` (${shippedNodeFlags().join(' ') || 'none'})${ctx.flags['stream-node-flags'] !== undefined ? ` + ${String(ctx.flags['stream-node-flags'])}` : ''}; a run counts when every caller got every message once (0 lost, 0 duplicated)${lost ? '; the runs marked * did not (the daemon dropped a caller that fell behind) and are left out of the medians' : ''}${discarded.length > 0 ? ` (runs run again after callers fell behind: ${new Set(discarded.map((r) => r.run)).size})` : ''}`,
      ...(ctx.mode === 'quick' && mb < 256 ? [`quick mode: ${fmtInt(mb)} MB instead of 256 MB, same goals (the documented figure is from --full)`] : [])]
  }
  const note = `runs: ${per('bridge', 'growthMB')} MB (complete ${counted('bridge')}); bare ${fmt(m('bare', 'growthMB'), 1)} MB`
  const targets: TargetResult[] = [
    judge({ id: 'stream-rss-growth', what: `daemon RSS growth streaming ${fmtInt(mb)} MB of ${p.bytes / 1024} KB messages to ${p.callers} fast callers`, unit: 'MB', goal: { atMost: 64 } },
      m('bridge', 'growthMB')),
    judge({ id: 'stream-rss-after', what: `daemon RSS growth left ${p.quietMs / 1000} s after that stream`, unit: 'MB', goal: { atMost: 32 } },
      m('bridge', 'afterGrowthMB'))
  ].map((t) => ({ ...t, note: t.note ?? (t.id === 'stream-rss-growth' ? note : `runs: ${per('bridge', 'afterGrowthMB')} MB; bare ${fmt(m('bare', 'afterGrowthMB'), 1)} MB`) }))
  return { tables: [table], data: { params: p, runs, out, discarded }, targets }
}
