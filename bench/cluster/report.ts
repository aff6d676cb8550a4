/** The cluster suite's figures (medians of per-run values, each run's variants side by side) and its one table. */
import { median, ratio } from '../lib/stats.js'
import type { Table } from '../lib/suite.js'
import { fmt, fmtInt, fmtRatio } from '../lib/table.js'
import type { PhaseResult } from './phase.js'

export interface ClusterRun {
  run: number
  order: string[]
  latencySingle: PhaseResult
  latencyCluster: PhaseResult
  loadSingle: PhaseResult
  loadCluster: PhaseResult
  /** set when the holder or its term changed during a cluster phase (a failover: messages may be lost upstream) */
  leaseChanged?: string
  /** 1-minute load average at the run's start; share of the cores busy with foreign work just before it (--full) */
  load1?: number
  foreignBusy?: number
}

interface Pct { p50: number, p99: number }

/** Per run: one bridge = median of its three callers processes; holder = process A; follower = the worse of B and C. */
function paths (r: PhaseResult, variant: 'single' | 'cluster'): { single: Pct, holder: Pct, follower: Pct } | null {
  const g = r.groups.map((x) => x.latencyMs)
  if (variant === 'single') {
    const one = { p50: median(g.map((x) => x.p50)), p99: median(g.map((x) => x.p99)) }
    return { single: one, holder: one, follower: one }
  }
  const worse = (k: keyof Pct): number => Math.max(g[1]?.[k] ?? Number.NaN, g[2]?.[k] ?? Number.NaN)
  return { single: { p50: Number.NaN, p99: Number.NaN }, holder: { p50: g[0]?.p50 ?? Number.NaN, p99: g[0]?.p99 ?? Number.NaN }, follower: { p50: worse('p50'), p99: worse('p99') } }
}

const lag = (r: PhaseResult, i: number): number => r.lagMaxMs?.[i] ?? Number.NaN
const per10k = (r: PhaseResult): number => (r.serverCpuMs * 10_000) / Math.max(1, r.groups.reduce((n, g) => n + g.deliveries, 0))

export interface RunFigures {
  single: Pct, holder: Pct, follower: Pct
  loadP99: { single: number, holder: number, follower: number }
  /** the longest event-loop delay during the load phase: the one bridge, the holder, the worse follower */
  loadLag: { single: number, holder: number, follower: number }
  deliveries: { single: number, cluster: number }
  cpuPer10k: { single: number, cluster: number }
}

function runFigures (r: ClusterRun): RunFigures {
  const s = paths(r.latencySingle, 'single')!
  const c = paths(r.latencyCluster, 'cluster')!
  const ls = paths(r.loadSingle, 'single')!
  const lc = paths(r.loadCluster, 'cluster')!
  return {
    single: s.single, holder: c.holder, follower: c.follower,
    loadP99: { single: ls.single.p99, holder: lc.holder.p99, follower: lc.follower.p99 },
    loadLag: { single: lag(r.loadSingle, 0), holder: lag(r.loadCluster, 0), follower: Math.max(lag(r.loadCluster, 1), lag(r.loadCluster, 2)) },
    deliveries: { single: r.loadSingle.deliveriesPerS, cluster: r.loadCluster.deliveriesPerS },
    cpuPer10k: { single: per10k(r.loadSingle), cluster: per10k(r.loadCluster) }
  }
}

export interface Figures {
  perRun: RunFigures[]
  med: (f: (r: RunFigures) => number) => number
  added: { holder: Pct, follower: Pct }
  deliveriesRatio: number
  cpuRatio: number
  lost: number
  duplicated: number
  /** the per-run values behind a target, for its note */
  spreadNote: (id: string) => string
}

export function figures (runs: ClusterRun[]): Figures {
  const perRun = runs.map(runFigures)
  const med = (f: (r: RunFigures) => number): number => median(perRun.map(f))
  const groups = runs.flatMap((r) => [r.latencySingle, r.latencyCluster, r.loadSingle, r.loadCluster].flatMap((p) => p.groups))
  const byRun: Record<string, (r: RunFigures) => number> = {
    'cluster-added-p99-follower': (r) => r.follower.p99 - r.single.p99,
    'cluster-added-p99-holder': (r) => r.holder.p99 - r.single.p99,
    'cluster-deliveries': (r) => ratio(r.deliveries.cluster, r.deliveries.single)
  }
  return {
    perRun,
    med,
    added: {
      holder: { p50: med((r) => r.holder.p50 - r.single.p50), p99: med(byRun['cluster-added-p99-holder']!) },
      follower: { p50: med((r) => r.follower.p50 - r.single.p50), p99: med(byRun['cluster-added-p99-follower']!) }
    },
    deliveriesRatio: med(byRun['cluster-deliveries']!),
    cpuRatio: med((r) => ratio(r.cpuPer10k.cluster, r.cpuPer10k.single)),
    lost: groups.reduce((n, g) => n + Math.max(0, g.expected - g.deliveries), 0),
    duplicated: groups.reduce((n, g) => n + Math.max(0, g.deliveries - g.expected), 0),
    spreadNote: (id) => {
      const f = byRun[id]
      if (f === undefined || perRun.length < 2) return `${perRun.length} run`
      const xs = perRun.map(f)
      return `${perRun.length} runs, ${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`
    }
  }
}

export interface TableParams { runs: number, seconds: number, n: number, rate: number, latencyN: number, latencyRate: number }

export function clusterTable (p: TableParams, runs: ClusterRun[], f: Figures, discarded: ClusterRun[]): Table {
  const { med } = f
  const dash = '·'
  return {
    title: `Through Redis: 3 replicas vs one bridge, side by side (latency: ${fmtInt(3 * p.latencyN)} callers at ${fmtInt(p.latencyRate)} msg/s; ` +
      `load: ${fmtInt(3 * p.n)} callers at ${fmtInt(p.rate)} msg/s; ${p.seconds} s each; median of ${runs.length} run(s))`,
    columns: ['path', 'p50 ms', 'p99 ms', 'added p50 ms', 'added p99 ms', 'deliveries/s (load)', '÷ one bridge', 'server CPU ms/10k', '÷ one bridge', 'p99 under load ms', 'event-loop lag max under load ms'],
    rows: [
      ['one bridge: upstream → bridge → SSE', fmt(med((r) => r.single.p50)), fmt(med((r) => r.single.p99)), dash, dash,
        fmtInt(med((r) => r.deliveries.single)), '1.00×', fmt(med((r) => r.cpuPer10k.single), 1), '1.00×', fmt(med((r) => r.loadP99.single)), fmtInt(med((r) => r.loadLag.single))],
      ['3 replicas on Redis, all callers (CPU: replicas + Redis)', dash, dash, dash, dash,
        fmtInt(med((r) => r.deliveries.cluster)), fmtRatio(f.deliveriesRatio), fmt(med((r) => r.cpuPer10k.cluster), 1), fmtRatio(f.cpuRatio), dash, dash],
      ['… caller on the holder: upstream → holder → Redis stream → holder → SSE', fmt(med((r) => r.holder.p50)), fmt(med((r) => r.holder.p99)),
        fmt(f.added.holder.p50), fmt(f.added.holder.p99), dash, dash, dash, dash, fmt(med((r) => r.loadP99.holder)), fmtInt(med((r) => r.loadLag.holder))],
      ['… caller on a follower: upstream → holder → Redis stream → follower → SSE', fmt(med((r) => r.follower.p50)), fmt(med((r) => r.follower.p99)),
        fmt(f.added.follower.p50), fmt(f.added.follower.p99), dash, dash, dash, dash, fmt(med((r) => r.loadP99.follower)), fmtInt(med((r) => r.loadLag.follower))]
    ],
    notes: [
      'callers: three processes (bench/fanout/callers.ts), the same for both variants: all three on the one bridge, or one on each replica (A on the holder)',
      `machine (2 cores shared): load average at each run's start ${runs.map((r) => fmt(r.load1 ?? Number.NaN, 1)).join(', ')}` +
        (runs.some((r) => Number.isFinite(r.foreignBusy ?? Number.NaN)) ? `; foreign work just before it ${runs.map((r) => `${fmt((r.foreignBusy ?? Number.NaN) * 100, 0)} %`).join(', ')}` : ''),
      'one bridge p50/p99 = median of its three callers processes; follower = the worse of the two followers; added = path − one bridge, per run, median of runs',
      `per run, added p99 holder / follower (ms): ${f.perRun.map((r) => `${fmt(r.holder.p99 - r.single.p99)} / ${fmt(r.follower.p99 - r.single.p99)}`).join(', ')}`,
      `per run, deliveries/s ratio: ${f.perRun.map((r) => fmtRatio(ratio(r.deliveries.cluster, r.deliveries.single))).join(', ')}; CPU ratio: ${f.perRun.map((r) => fmtRatio(ratio(r.cpuPer10k.cluster, r.cpuPer10k.single))).join(', ')}`,
      `per run, server CPU in the latency phase (few callers: the per-message cost), 3 replicas + Redis ÷ one bridge: ${runs.map((r) => fmtRatio(ratio(r.latencyCluster.serverCpuMs, r.latencySingle.serverCpuMs))).join(', ')}`,
      `deliveries lost: ${fmtInt(f.lost)}, duplicated: ${fmtInt(f.duplicated)} (every phase of every run, counted per callers process against sent × open)`,
      ...runs.filter((r) => r.leaseChanged !== undefined).map((r) => `run ${r.run + 1}: the lease moved (${r.leaseChanged})`),
      ...discarded.map((r) => `discarded run ${r.run + 1} (measured again): ${r.leaseChanged ?? 'no lease change'}; missing deliveries ` +
        [r.latencySingle, r.latencyCluster, r.loadSingle, r.loadCluster].map((x) => fmtInt(x.missing)).join(' / ') + ' (latency one / three, load one / three)')
    ]
  }
}
