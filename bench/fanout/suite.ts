/**
 * Parts 2–4 of the bridge benchmarks, one suite ('fanout') because they share the processes:
 *
 *   upstream  faye 1.4.3 server + in-process publisher at a fixed rate (fanout/upstream.ts)
 *   bridge    the compiled daemon, `node dist/server/main.js --config <tmp>/bridge.json` (one session, websocket)
 *   bare      a bare node:http SSE broadcaster with the same upstream client (client-core, websocket) that joins the
 *             frames of one event-loop turn into one shared write per caller (fanout/bare.ts): the floor
 *   naive     the same broadcaster writing one frame per message per caller (`bare.js --naive`)
 *   callers   N raw node:http SSE callers spread over K processes (fanout/caller-pool.ts, fanout/callers.ts)
 *   official  the official cometd client subscribed directly upstream (fanout/official-sub.ts), part 3's reference
 *
 * Each variant has its own channel (/bench/bridge, /bench/bare, /bench/naive, /bench/alt), so the variants not
 * measured receive nothing. Runs interleave the variants (order rotating run by run). Per (run, N, variant):
 *   fan-out  publish `rate` msg/s for D s, rate = min(1000, offered / N); deliveries/s from the first publish to
 *            the last arrival, p99 of publish → caller, server CPU (from /proc, all threads) per 10k deliveries
 * Part 3 (per run, first): 10 callers on the bridge (/bench/latency) next to the official subscriber on the same
 *   channel, 1,000 msg/s for D s; added = bridge − official, p50 and p99. Then the same on the bare broadcaster.
 * Part 4 (per run): server RSS before and after `memory-n` idle callers settled → RSS per idle caller.
 *
 * Flags: --fanout-sizes 1000,10000  --fanout-offered 1000000 (deliveries/s)  --fanout-runs R  --fanout-seconds S (quick 0.5, full 2)
 *        --fanout-caller-procs K (default 2)  --fanout-no-naive (quick: naive at the smallest size only)  --fanout-variants bridge,bare (a subset)  --memory-n N (default 1,000, --full the largest size; 0 skips part 4)
 *        --fanout-docs (write docs/bench-fanout.svg in quick mode too; --full always does)
 *        --fanout-profile (CPU profiles of bridge, bare and naive over each measured phase, through their inspectors:
 *        <results dir>/profiles/<variant>-n<N>-run<R>.cpuprofile; the inspector costs CPU: profile runs are not figures)
 *        --fanout-alloc-profile (with the CPU profiles, sampled allocations: <variant>-n<N>-run<R>.heapprofile)
 *        --fanout-bridge-node-args, --fanout-bare-node-args, --fanout-alt-node-args "--trace-gc ..." (Node flags of those processes; BENCH_VERBOSE=1 shows their output)
 *        --fanout-alt <dist dir> (another build of the bridge, e.g. a baseline's dist/, measured side by side: A/B table)
 * Part 5 is the 'sessions' suite (fanout/sessions-suite.ts).
 */
import { mkdirSync } from 'node:fs'
import { loadavg as osLoadavg } from 'node:os'
import path from 'node:path'
import { Child } from '../lib/proc.js'
import { sleep } from '../lib/clock.js'
import { fmt, fmtInt } from '../lib/table.js'
import { intFlag, listFlag, type Suite, type SuiteContext, type SuiteResult } from '../lib/suite.js'
import type { PublishResult } from './upstream.js'
import type { Summary } from '../lib/stats.js'
import { Bridge, BRIDGE_CHANNEL, LATENCY_CHANNEL, procUsage } from './procs.js'
import { CallerPool } from './caller-pool.js'
import { INSPECT_FLAG, RemoteProfiler } from '../lib/remote-profiler.js'
import { report, type FanoutRun, type LatencyRun, type MemoryRun, type Variant } from './report.js'

export { sessionsSuite } from './sessions-suite.js'

const CHANNELS: Record<Variant, string> = { bridge: BRIDGE_CHANNEL, bare: '/bench/bare', naive: '/bench/naive', alt: '/bench/alt' }

interface Servers {
  bridge: Bridge, alt: Bridge | null, bare: Child, naive: Child | null
  /** --fanout-profile: the servers' inspectors, profiling each measured phase (not the set-up) */
  profilers: Map<Variant, RemoteProfiler>, profileDir: string
  /** --fanout-alloc-profile: sampled allocations of each measured fan-out phase too (.heapprofile) */
  allocations: boolean
}

function urlOf (variant: Variant, s: Servers): string {
  if (variant === 'bare' || variant === 'naive') return `http://127.0.0.1:${(s[variant]!.readyInfo as { port: number }).port}/events`
  const b = variant === 'alt' ? s.alt! : s.bridge
  return `${b.base}/sessions/up/events?channel=${encodeURIComponent(CHANNELS[variant])}`
}

function pidOf (variant: Variant, s: Servers): number {
  return variant === 'bridge' ? s.bridge.pid : variant === 'alt' ? s.alt!.pid : s[variant]!.pid!
}

interface Options {
  full: boolean, sizes: number[], offered: number, runs: number, seconds: number, latencyS: number, callerProcs: number, memN: number,
  altDir: string | null, variants: Variant[], profiling: boolean, profileDir: string
  /** Node flags of a process: --fanout-<name>-node-args "--trace-gc ..." (BENCH_VERBOSE=1 shows what it prints) */
  nodeArgs: (name: 'bridge' | 'bare' | 'alt') => string[]
}

function options (ctx: SuiteContext): Options {
  const full = ctx.mode === 'full'
  // --fanout-sizes 0: parts 3 and 4 only
  const sizes = (listFlag(ctx.flags, 'fanout-sizes') ?? (full ? ['100', '1000', '10000'] : ['1000', '10000'])).map(Number).filter((n) => n > 0)
  const altDir = typeof ctx.flags['fanout-alt'] === 'string' ? path.resolve(ctx.flags['fanout-alt']) : null
  const all: Variant[] = ['bridge', ...(altDir !== null ? ['alt' as const] : []), 'bare', ...(ctx.flags['fanout-no-naive'] === true ? [] : ['naive' as const])]
  const only = listFlag(ctx.flags, 'fanout-variants')
  return {
    full,
    sizes,
    offered: intFlag(ctx.flags, 'fanout-offered', 1_000_000),
    runs: intFlag(ctx.flags, 'fanout-runs', full ? 3 : 1),
    seconds: intFlag(ctx.flags, 'fanout-seconds', full ? 2 : 0.5),
    latencyS: intFlag(ctx.flags, 'latency-seconds', full ? 5 : 2),
    callerProcs: intFlag(ctx.flags, 'fanout-caller-procs', 2),
    // quick mode (its 45 s budget): part 4 is read from the first fan-out phase's idle callers instead
    memN: intFlag(ctx.flags, 'memory-n', full ? Math.max(...sizes) : 0),
    altDir,
    variants: only === undefined ? all : all.filter((v) => only.includes(v)),
    profiling: ctx.flags['fanout-profile'] === true || ctx.flags['fanout-alloc-profile'] === true,
    profileDir: path.join(ctx.outDir, 'profiles'),
    nodeArgs: (name) => {
      const raw = ctx.flags[`fanout-${name}-node-args`]
      return typeof raw === 'string' ? raw.split(' ').filter((a) => a !== '') : []
    }
  }
}

/** Starts every server and helper process; `into` collects what must be stopped, as soon as it is started. */
async function startServers (o: Options, upstreamUrl: string, into: { children: Child[], bridges: Bridge[], pool: CallerPool | null }, allocations: boolean): Promise<Servers & { official: Child }> {
  const prof = o.profiling ? [INSPECT_FLAG] : []
  if (o.profiling) mkdirSync(o.profileDir, { recursive: true })
  const maxCallers = Math.max(100, ...o.sizes, o.memN) + 100
  const bridge = await Bridge.start(upstreamUrl, maxCallers, [...prof, ...o.nodeArgs('bridge')])
  into.bridges.push(bridge)
  const alt = o.altDir === null ? null : await Bridge.start(upstreamUrl, maxCallers, o.nodeArgs('alt'), undefined, 20_000, path.join(o.altDir, 'server', 'main.js'), CHANNELS.alt)
  if (alt !== null) into.bridges.push(alt)
  const bare = await Child.fork('fanout/bare.js', ['--url', upstreamUrl, '--channel', `${CHANNELS.bare},${LATENCY_CHANNEL}`], { name: 'bare', execArgv: [...prof, ...o.nodeArgs('bare')] })
  into.children.push(bare)
  const naive = o.variants.includes('naive') ? await Child.fork('fanout/bare.js', ['--url', upstreamUrl, '--channel', CHANNELS.naive, '--naive'], { name: 'naive', execArgv: prof }) : null
  if (naive !== null) into.children.push(naive)
  into.pool = await CallerPool.start(o.callerProcs)
  const official = await Child.fork('fanout/official-sub.js', ['--url', upstreamUrl, '--channel', LATENCY_CHANNEL, '--transport', 'websocket'], { name: 'official' })
  into.children.push(official)
  const s: Servers = { bridge, alt, bare, naive, profilers: new Map(), profileDir: o.profileDir, allocations }
  if (o.profiling) {
    s.profilers.set('bridge', await RemoteProfiler.attach(() => bridge.stderr))
    s.profilers.set('bare', await RemoteProfiler.attach(() => bare.stderr))
    if (naive !== null) s.profilers.set('naive', await RemoteProfiler.attach(() => naive.stderr))
  }
  return { ...s, official }
}

export const fanoutSuite: Suite = {
  name: 'fanout',
  title: 'bridge SSE fan-out vs a batching and a naive bare node:http broadcaster, added latency, memory per caller (parts 2–4)',
  async run (ctx: SuiteContext): Promise<SuiteResult> {
    const o = options(ctx)
    const upstream = await Child.fork('fanout/upstream.js', [], { name: 'upstream' })
    const started = { children: [upstream], bridges: [] as Bridge[], pool: null as CallerPool | null }
    const out = { fanout: [] as FanoutRun[], latency: [] as LatencyRun[], memory: [] as MemoryRun[] }
    let s: (Servers & { official: Child }) | null = null
    try {
      const t0 = Date.now()
      s = await startServers(o, (upstream.readyInfo as { url: string }).url, started, ctx.flags['fanout-alloc-profile'] === true)
      ctx.log(`fanout: bridge ${s.bridge.base} (pid ${s.bridge.pid}), bare pid ${s.bare.pid}${s.naive !== null ? `, naive pid ${s.naive.pid}` : ''}, callers in ${o.callerProcs} process(es); sizes ${o.sizes.join(',')}, offered ${fmtInt(o.offered)}/s, ${o.seconds} s, ${o.runs} run(s)`)
      await measure(o, s, upstream, started.pool!, out, t0, ctx)
    } finally {
      for (const p of s?.profilers.values() ?? []) p.close()
      await started.pool?.stop()
      for (const c of started.children.reverse()) await c.stop().catch(() => c.kill())
      for (const b of started.bridges) await b.stop()
    }
    return report({ ctx, ...o, ...out })
  }
}

/**
 * Every run: part 3, part 4, then the fan-out sizes with the variants in a rotating order. The daemon runs its
 * start-up GCs 1, 2 and 8 s after its sessions opened (server/session/startup.ts): nothing of the bridge is measured
 * before `t0` + 9 s. Quick mode spends that wait on the first size's bare and naive phases of run 1.
 */
async function measure (o: Options, s: Servers & { official: Child }, upstream: Child, pool: CallerPool,
  out: { fanout: FanoutRun[], latency: LatencyRun[], memory: MemoryRun[] }, t0: number, ctx: SuiteContext): Promise<void> {
  const settleMs = o.full ? 2_000 : 500
  // quick mode (the 45 s budget): the naive broadcaster at the smallest size only
  const at = (n: number): Variant[] => o.variants.filter((v) => v !== 'naive' || o.full || n === o.sizes[0])
  const early: Variant[] = o.full || o.sizes.length === 0 ? [] : at(o.sizes[0]!).filter((v) => v === 'bare' || v === 'naive')
  for (const variant of early) out.fanout.push(await fanoutRun({ run: 0, n: o.sizes[0]!, variant, offered: o.offered, seconds: o.seconds, settleMs }, s, upstream, pool, ctx))
  await sleep(Math.max(0, 9_000 - (Date.now() - t0)))
  for (let run = 0; run < o.runs; run++) {
    await sleep(o.full ? 3_000 : 1_000)
    out.latency.push(await latencyRun(run, o.latencyS, s, upstream, s.official, pool, ctx))
    if (o.memN > 0) out.memory.push(...await memoryRun(run, o.memN, o.full ? 3_000 : 2_000, s, pool, ctx))
    for (const n of o.sizes) {
      const here = at(n).filter((v) => v !== 'naive' && (run > 0 || n !== o.sizes[0] || !early.includes(v)))
      const k = (run + o.sizes.indexOf(n)) % Math.max(1, here.length)
      // naive last: at 10,000 callers it can spend seconds in GC after its phase, which must not fall into another's
      const last: Variant[] = at(n).includes('naive') && (run > 0 || n !== o.sizes[0] || !early.includes('naive')) ? ['naive'] : []
      for (const variant of [...here.slice(k), ...here.slice(0, k), ...last]) {
        out.fanout.push(await fanoutRun({ run, n, variant, offered: o.offered, seconds: o.seconds, settleMs }, s, upstream, pool, ctx))
      }
    }
  }
}

interface FanoutParams { run: number, n: number, variant: Variant, offered: number, seconds: number, settleMs: number }

async function fanoutRun (p: FanoutParams, s: Servers, upstream: Child, pool: CallerPool, ctx: SuiteContext): Promise<FanoutRun> {
  const { run, n, variant, seconds } = p
  const pid = pidOf(variant, s)
  const tag = `${variant[0]}${run}n${n}`
  await sleep(300)
  const before = procUsage(pid)
  const opened = await pool.open(urlOf(variant, s), n)
  await sleep(p.settleMs)
  const idle = procUsage(pid)
  const rate = Math.min(1_000, Math.max(1, Math.round(p.offered / n)))
  await pool.reset(tag, Math.round(rate * seconds) * opened.open) // an upper bound for naive: only sets the sampling step
  const cpu0 = procUsage(pid)
  const callersCpu0 = (await pool.stats()).cpuMs
  const profiler = s.profilers.get(variant)
  await profiler?.start()
  if (s.allocations) await profiler?.startAllocations()
  // the naive broadcaster delivers a tenth of the others' rate: a tenth of the messages at the same rate keep its
  // backlog (and the time it takes) bounded; deliveries/s and CPU per delivery do not depend on the count. It
  // blocks its event loop (one write per message per caller) and collects garbage for seconds: a longer quiet wait
  const naive = variant === 'naive'
  const ms = naive ? Math.max(100, seconds * 100) : seconds * 1000
  const pub = await upstream.call<PublishResult>('publish', { channel: CHANNELS[variant], rate, durationMs: ms, tag }, ms + 10_000)
  const stats = await pool.waitDelivered(pub.sent * opened.open, 30_000, naive ? 10_000 : 3_000)
  const cpu1 = procUsage(pid)
  await profiler?.stop(path.join(s.profileDir, `${variant}-n${n}-run${run + 1}.cpuprofile`))
  if (s.allocations) await profiler?.stopAllocations(path.join(s.profileDir, `${variant}-n${n}-run${run + 1}.heapprofile`))
  const spanS = Math.max(1e-3, (stats.lastUs - pub.firstUs) / 1e6)
  const serverCpuMs = cpu1.cpuMs - cpu0.cpuMs
  const r: FanoutRun = {
    run, n, variant, open: opened.open, failed: opened.failed, openMs: opened.ms,
    rssBeforeMB: before.rssMB, rssIdleMB: idle.rssMB, rssPerCallerKB: ((idle.rssMB - before.rssMB) * 1024) / Math.max(1, opened.open),
    rate, sent: pub.sent, expected: pub.sent * opened.open, deliveries: stats.deliveries, otherTag: stats.otherTag, deliveriesPerS: stats.deliveries / spanS,
    p50: stats.latencyMs.p50, p99: stats.latencyMs.p99,
    serverCpuMs, serverCpuPer10k: (serverCpuMs * 10_000) / Math.max(1, stats.deliveries), serverCpuShare: serverCpuMs / (spanS * 1000),
    serverOtherThreadsShare: 1 - (cpu1.mainCpuMs - cpu0.mainCpuMs) / Math.max(1, serverCpuMs),
    callersCpuMs: stats.cpuMs - callersCpu0, load1: loadavg()
  }
  ctx.log(`  run ${run + 1} N=${n} ${variant}: ${opened.open} open${opened.failed > 0 ? ` (${opened.failed} failed)` : ''}, ${fmtInt(r.deliveriesPerS)} deliveries/s (${r.deliveries}/${r.expected}), p99 ${fmt(r.p99)} ms, CPU ${fmt(r.serverCpuPer10k, 2)} ms/10k (${fmt(r.serverOtherThreadsShare * 100, 0)} % off the main thread; server ${fmt(r.serverCpuShare * 100, 0)} %, callers ${fmt((r.callersCpuMs / (spanS * 1000)) * 100, 0)} % of a core), load ${fmt(r.load1, 1)}`)
  await pool.close()
  return r
}

/** Part 3: 10 SSE callers on the bridge, then on the bare broadcaster, each phase next to the official client directly upstream. */
async function latencyRun (run: number, seconds: number, s: Servers, upstream: Child, official: Child, pool: CallerPool, ctx: SuiteContext): Promise<LatencyRun> {
  const phase = async (variant: 'bridge' | 'bare'): Promise<{ sent: number, via: Summary, official: Summary, transport: string, cpuMs: number }> => {
    const tag = `L${run}${variant}`
    await sleep(300)
    const target = variant === 'bridge' ? `${s.bridge.base}/sessions/up/events?channel=${encodeURIComponent(LATENCY_CHANNEL)}` : urlOf('bare', s)
    const opened = await pool.open(target, 10, 30_000)
    await sleep(500)
    await pool.reset(tag, 1000 * seconds * 10)
    await official.call('reset', { tag }, 5_000)
    const profiler = s.profilers.get(variant)
    await profiler?.start()
    if (s.allocations) await profiler?.startAllocations()
    const cpu0 = procUsage(pidOf(variant, s)).cpuMs
    const pub = await upstream.call<PublishResult>('publish', { channel: LATENCY_CHANNEL, rate: 1_000, durationMs: seconds * 1000, tag }, seconds * 1000 + 10_000)
    const stats = await pool.waitDelivered(pub.sent * opened.open, 10_000)
    const off = await official.call<{ count: number, latencyMs: Summary, transport: string }>('stats', {}, 5_000)
    const cpuMs = procUsage(pidOf(variant, s)).cpuMs - cpu0
    await profiler?.stop(path.join(s.profileDir, `${variant}-latency-run${run + 1}.cpuprofile`))
    if (s.allocations) await profiler?.stopAllocations(path.join(s.profileDir, `${variant}-latency-run${run + 1}.heapprofile`))
    ctx.log(`  run ${run + 1} latency @1000/s: ${variant} p50 ${fmt(stats.latencyMs.p50)} p99 ${fmt(stats.latencyMs.p99)} ms (${stats.deliveries}/${pub.sent * opened.open}); official p50 ${fmt(off.latencyMs.p50)} p99 ${fmt(off.latencyMs.p99)} ms (${off.count}/${pub.sent}), server CPU ${fmt(cpuMs / Math.max(1, pub.sent) * 1000, 0)} ms per 1,000 messages, load ${fmt(loadavg(), 1)}`)
    await pool.close()
    return { sent: pub.sent, via: stats.latencyMs, official: off.latencyMs, transport: off.transport, cpuMs }
  }
  const viaBridge = await phase('bridge')
  const viaBare = await phase('bare')
  return { run, sent: viaBridge.sent, bridge: viaBridge.via, official: viaBridge.official, officialTransport: viaBridge.transport, bare: viaBare.via, bareOfficial: viaBare.official,
    bridgeCpuMs: viaBridge.cpuMs, bareCpuMs: viaBare.cpuMs, load1: loadavg() }
}

/** Part 4: RSS per idle caller at `memN`, bridge and bare (order alternating run by run). */
async function memoryRun (run: number, memN: number, settleMs: number, s: Servers, pool: CallerPool, ctx: SuiteContext): Promise<MemoryRun[]> {
  const out: MemoryRun[] = []
  for (const variant of (run % 2 === 0 ? ['bridge', 'bare'] : ['bare', 'bridge']) as Variant[]) {
    const pid = pidOf(variant, s)
    await sleep(500)
    const before = procUsage(pid)
    const opened = await pool.open(urlOf(variant, s), memN)
    await sleep(settleMs)
    const idle = procUsage(pid)
    const m: MemoryRun = { run, variant, n: opened.open, failed: opened.failed, openMs: opened.ms, rssBeforeMB: before.rssMB, rssIdleMB: idle.rssMB,
      perCallerKB: ((idle.rssMB - before.rssMB) * 1024) / Math.max(1, opened.open) }
    out.push(m)
    ctx.log(`  run ${run + 1} memory ${variant}: ${opened.open} idle callers (${opened.failed} failed, ${opened.ms} ms), RSS ${fmt(before.rssMB, 1)} → ${fmt(idle.rssMB, 1)} MB, ${fmt(m.perCallerKB, 2)} KB/caller`)
    await pool.close()
  }
  return out
}

/** 1-minute load average: how busy the shared machine was */
function loadavg (): number { return osLoadavg()[0] ?? Number.NaN }
