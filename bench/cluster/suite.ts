/**
 * Suite 'cluster': what a message costs through scale-out on Redis (docs/scale-out.md) next to one bridge, measured
 * side by side in one run. The processes (bench/cluster/processes.ts): the fan-out suite's upstream (faye + paced
 * publisher, same payloads), a real redis-server, one bridge alone, three replicas sharing the Redis, and three
 * callers processes (bench/fanout/callers.ts). Per run, the two variants interleaved (order alternating):
 *
 *   one bridge   the three callers processes all on the single bridge
 *   3 replicas   callers process A on the holder, B and C on the two followers: upstream → holder → XADD to the
 *                Redis stream → every replica's XREAD → SSE callers
 *
 * Phase 1, latency: `latency-n` callers per process, `latency-rate` msg/s for S s; p50/p99 of publish → caller.
 * Added = that path's percentile − one bridge's (median of its three processes), per run; medians of runs.
 * Phase 2, load: `n` callers per process, `rate` msg/s for S s: deliveries/s (every delivery / (last arrival − first
 * publish)), server CPU per 10k deliveries (the replicas and Redis together vs the single bridge).
 *
 * Before run 1, each variant gets a short unmeasured warm-up (JIT, first connections to Redis), else the first
 * phase measured pays for it.
 *
 * Flags: --cluster-runs R  --cluster-seconds S  --cluster-n N (callers per process in phase 2)  --cluster-rate M
 *        --cluster-latency-n N  --cluster-latency-rate M  --cluster-profile (every bridge under --cpu-prof: one
 *        .cpuprofile per process under the results dir, read with dist/bench/tools/cpuprofile-top.js)
 *        --cluster-log-level debug (every bridge's logLevel; BENCH_VERBOSE=1 shows their logs)
 */
import { mkdirSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Child } from '../lib/proc.js'
import { sleep } from '../lib/clock.js'
import { waitQuiet } from '../lib/machine.js'
import { judge, type TargetResult, type TargetSpec } from '../lib/targets.js'
import { intFlag, type Suite, type SuiteContext, type SuiteResult } from '../lib/suite.js'
import { fmt, fmtInt } from '../lib/table.js'
import { CLUSTER_CHANNEL, SESSION, SINGLE_CHANNEL, eventLoopLagMaxMs, leaseLossReasons, leaseState, settle, startServers, type Servers } from './processes.js'
import { runPhase, type Group, type PhaseResult, type PhaseSpec } from './phase.js'
import { clusterTable, figures, type ClusterRun } from './report.js'

interface Params { runs: number, seconds: number, n: number, rate: number, latencyN: number, latencyRate: number, settleMs: number }

function params (ctx: SuiteContext): Params {
  const full = ctx.mode === 'full'
  return {
    runs: intFlag(ctx.flags, 'cluster-runs', full ? 5 : 1),
    seconds: intFlag(ctx.flags, 'cluster-seconds', full ? 3 : 1),
    n: intFlag(ctx.flags, 'cluster-n', 100),
    rate: intFlag(ctx.flags, 'cluster-rate', 1_000),
    latencyN: intFlag(ctx.flags, 'cluster-latency-n', full ? 10 : 5),
    latencyRate: intFlag(ctx.flags, 'cluster-latency-rate', 1_000),
    settleMs: full ? 1_000 : 300
  }
}

type Variant = 'single' | 'cluster'

function groupsOf (variant: Variant, servers: Servers, callers: Child[]): Group[] {
  const events = (base: string, channel: string): string => `${base}/sessions/${SESSION}/events?channel=${encodeURIComponent(channel)}`
  return callers.map((c, i) => ({
    callers: c,
    url: variant === 'single' ? events(servers.single.base, SINGLE_CHANNEL) : events(servers.replicas[i]!.base, CLUSTER_CHANNEL)
  }))
}

function describe (what: string, variant: Variant, r: PhaseResult): string {
  const groups = r.groups.map((g) => `${fmt(g.latencyMs.p50)}/${fmt(g.latencyMs.p99)}`).join(' ')
  return `${what} ${variant}: ${fmtInt(r.deliveriesPerS)} deliveries/s, ${r.missing === 0 ? 'none lost' : `${r.missing} missing`}, p50/p99 by group ${groups} ms, ` +
    `CPU ${fmtInt(r.serverCpuMs)} ms, event-loop lag max ${(r.lagMaxMs ?? []).map((x) => fmtInt(x)).join('/')} ms`
}

/** Unmeasured: both variants once at the latency phase's rate, ~0.5 s each. */
async function warmUp (p: Params, upstream: Child, servers: Servers, callers: Child[]): Promise<void> {
  for (const variant of ['single', 'cluster'] as Variant[]) {
    await runPhase(upstream, groupsOf(variant, servers, callers), {
      tag: `w${variant[0]}`, channel: variant === 'single' ? SINGLE_CHANNEL : CLUSTER_CHANNEL, rate: p.latencyRate, n: p.latencyN, seconds: 0.5, pids: [], settleMs: 100
    })
  }
}

async function measureRun (ctx: SuiteContext, p: Params, run: number, upstream: Child, servers: Servers, callers: Child[]): Promise<ClusterRun> {
  const order: Variant[] = run % 2 === 0 ? ['single', 'cluster'] : ['cluster', 'single']
  const out: Partial<ClusterRun> = { run, order }
  for (const phase of ['latency', 'load'] as const) {
    for (const variant of order) {
      const spec: PhaseSpec = {
        tag: `${variant[0]}${phase[0]}${run}`,
        channel: variant === 'single' ? SINGLE_CHANNEL : CLUSTER_CHANNEL,
        rate: phase === 'latency' ? p.latencyRate : p.rate,
        n: phase === 'latency' ? p.latencyN : p.n,
        seconds: p.seconds,
        pids: servers.pids[variant],
        settleMs: p.settleMs
      }
      const bases = variant === 'single' ? [servers.single.base] : servers.replicas.map((d) => d.base)
      const marks = servers.replicas.map((d) => d.logLineCount)
      const lease0 = variant === 'cluster' ? await leaseState(servers) : ''
      await Promise.all(bases.map(eventLoopLagMaxMs))
      const r = await runPhase(upstream, groupsOf(variant, servers, callers), spec)
      r.lagMaxMs = await Promise.all(bases.map(eventLoopLagMaxMs))
      const lease1 = variant === 'cluster' ? await leaseState(servers) : ''
      if (lease1 !== lease0) out.leaseChanged = `${phase}: ${lease0} → ${lease1}; ${leaseLossReasons(servers, marks).join(', ') || 'no "lease lost" in their logs'}`
      ctx.log(`  run ${run + 1} ${describe(phase, variant, r)}${lease1 !== lease0 ? `; the lease moved (holder|term seen by each replica): ${out.leaseChanged}` : ''}`)
      out[`${phase}${variant === 'single' ? 'Single' : 'Cluster'}`] = r
      await sleep(200)
    }
  }
  return out as ClusterRun
}

const clean = (r: ClusterRun): boolean => r.leaseChanged === undefined && [r.latencySingle, r.latencyCluster, r.loadSingle, r.loadCluster].every((x) => x.missing === 0)

/**
 * `p.runs` runs into `kept`; in full mode a run whose cluster phases saw the lease move (a failover: without replay
 * the upstream's messages of that moment are lost) or that lost deliveries is repeated, at most twice per run, and
 * returned as discarded (reported, not used). Quick mode keeps whatever it measured.
 */
async function measureRuns (ctx: SuiteContext, p: Params, upstream: Child, servers: Servers, callers: Child[], kept: ClusterRun[]): Promise<ClusterRun[]> {
  const discarded: ClusterRun[] = []
  const retries = ctx.mode === 'full' ? 2 : 0
  for (let run = 0; run < p.runs; run++) {
    for (let attempt = 0; attempt <= retries; attempt++) {
      // our processes are idle here: what keeps the cores busy now is foreign work
      const quiet = ctx.mode === 'full' ? await waitQuiet(0.25, 20_000) : { busy: Number.NaN, waitedMs: 0 }
      const load1 = os.loadavg()[0]!
      const r = { ...await measureRun(ctx, p, run, upstream, servers, callers), foreignBusy: quiet.busy, load1 }
      ctx.log(`  run ${run + 1}: load average ${fmt(load1)} at its start${Number.isFinite(quiet.busy) ? `, foreign work ${fmt(quiet.busy * 100, 0)} % of the cores after waiting ${fmtInt(quiet.waitedMs)} ms for < 25 %` : ''}`)
      if (r.leaseChanged !== undefined) await settle(servers)
      if (clean(r) || attempt === retries) { kept.push(r); break }
      discarded.push(r)
      ctx.log(`  run ${run + 1} discarded (${r.leaseChanged ?? 'deliveries lost'}): measured again`)
    }
  }
  return discarded
}

export const clusterSuite: Suite = {
  name: 'cluster',
  title: 'through Redis: a message via three replicas (holder → Redis stream → followers) vs one bridge, side by side',
  async run (ctx: SuiteContext): Promise<SuiteResult> {
    const p = params(ctx)
    const profileDir = path.join(ctx.outDir, 'profiles')
    const execArgv = ctx.flags['cluster-profile'] === true ? ['--cpu-prof', '--cpu-prof-dir', profileDir] : []
    if (execArgv.length > 0) mkdirSync(profileDir, { recursive: true })
    const t0 = Date.now()
    const upstream = await Child.fork('fanout/upstream.js', [], { name: 'upstream' })
    const children: Child[] = [upstream]
    let servers: Servers | null = null
    const runs: ClusterRun[] = []
    const discarded: ClusterRun[] = []
    try {
      const upstreamUrl = (upstream.readyInfo as { url: string }).url
      const [s, ...callers] = await Promise.all([
        startServers(upstreamUrl, { maxCallers: 3 * p.n + 100, execArgv, ...(typeof ctx.flags['cluster-log-level'] === 'string' ? { logLevel: ctx.flags['cluster-log-level'] } : {}) }),
        ...['A', 'B', 'C'].map(async (k) => await Child.fork('fanout/callers.js', [], { name: `callers-${k}` }))
      ]) as [Servers, ...Child[]]
      servers = s
      children.push(...callers)
      // the daemon's start-up GCs run 1, 2 and 8 s after its sessions opened (server/session/startup.ts)
      if (ctx.mode === 'full') await sleep(9_000)
      ctx.log(`cluster: redis ${s.redis.url}, one bridge ${s.single.base} (pid ${s.single.pid}), replicas ${s.replicas.map((r) => `${r.base} (${r.name}, pid ${r.pid})`).join(' ')} (holder first); ready in ${Date.now() - t0} ms`)
      await warmUp(p, upstream, s, callers)
      discarded.push(...await measureRuns(ctx, p, upstream, s, callers, runs))
    } finally {
      for (const c of children.reverse()) await c.stop().catch(() => { c.kill() })
      await servers?.stop()
    }
    const f = figures(runs)
    const moved = runs.filter((r) => r.leaseChanged !== undefined).length
    const extra = discarded.length > 0 ? `; ${discarded.length} run(s) discarded and measured again (lease moved or deliveries lost)` : ''
    const judged = (spec: TargetSpec, value: number): TargetResult => f.lost + f.duplicated === 0
      ? { ...judge(spec, value), note: `${f.spreadNote(spec.id)}${ctx.mode === 'quick' ? ` of ${p.seconds} s (quick: a smoke test, --full for figures)` : ''}${extra}; goal ours (the issue gives none), docs/BENCHMARKS.md` }
      : judge({ ...spec, note: `${f.lost} lost, ${f.duplicated} duplicated deliveries${moved > 0 ? ` (the lease moved in ${moved} run(s): a failover)` : ''}` }, Number.NaN)
    const targets = [
      judged({ id: 'cluster-added-p99-follower', what: `added p99 through Redis, caller on a follower (${fmtInt(p.latencyRate)} msg/s)`, unit: 'ms', goal: { atMost: 10 } }, f.added.follower.p99),
      judged({ id: 'cluster-added-p99-holder', what: `added p99 through Redis, caller on the holder (${fmtInt(p.latencyRate)} msg/s)`, unit: 'ms', goal: { atMost: 10 } }, f.added.holder.p99),
      judged({ id: 'cluster-deliveries', what: `deliveries/s, 3 replicas ÷ one bridge (${fmtInt(3 * p.n)} callers, ${fmtInt(p.rate)} msg/s)`, unit: 'x', goal: { atLeast: 0.5 } }, f.deliveriesRatio)
    ]
    const files = execArgv.length > 0 ? [path.relative(process.cwd(), profileDir)] : []
    return { tables: [clusterTable(p, runs, f, discarded)], data: { params: p, runs, discarded }, targets, files }
  }
}
