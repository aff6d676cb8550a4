/**
 * One measured phase of the cluster suite: groups of SSE callers (one callers process per group, bench/fanout/
 * callers.ts) open on their URLs, the upstream publishes at a fixed rate for a while (bench/fanout/upstream.ts),
 * and each group reports its deliveries and latencies; the servers' CPU (from /proc) is read around the publish.
 */
import type { Child } from '../lib/proc.js'
import { sleep } from '../lib/clock.js'
import type { Summary } from '../lib/stats.js'
import { procUsage } from '../fanout/procs.js'
import type { PublishResult } from '../fanout/upstream.js'

export interface Group { callers: Child, url: string }

interface CallerStats { deliveries: number, firstUs: number, lastUs: number, latencyMs: Summary }

export interface GroupResult { open: number, failed: number, expected: number, deliveries: number, lastUs: number, latencyMs: Summary }

export interface PhaseResult {
  sent: number
  groups: GroupResult[]
  /** every group's deliveries / (last arrival anywhere − first publish) */
  deliveriesPerS: number
  /** expected − delivered over all groups: > 0 lost, < 0 duplicated */
  missing: number
  /** CPU (user + system) of the servers of the variant during the publish and the drain, ms */
  serverCpuMs: number
  /** the servers' longest event-loop delay during the phase, ms (one bridge; or holder, followers), set by the suite */
  lagMaxMs?: number[]
}

export interface PhaseSpec { tag: string, channel: string, rate: number, seconds: number, n: number, pids: number[], settleMs: number }

const cpuOf = (pids: number[]): number => pids.reduce((sum, pid) => sum + procUsage(pid).cpuMs, 0)

/** Sums the groups' deliveries until `expected` arrived, nothing arrived for 1.5 s, or `maxMs` passed. */
async function waitDelivered (groups: Group[], expected: number, maxMs: number): Promise<CallerStats[]> {
  const start = Date.now()
  const read = async (): Promise<CallerStats[]> => await Promise.all(groups.map(async (g) => await g.callers.call<CallerStats>('stats', {}, 10_000)))
  const total = (s: CallerStats[]): number => s.reduce((n, x) => n + x.deliveries, 0)
  let last = await read()
  let stableSince = Date.now()
  while (total(last) < expected && Date.now() - start < maxMs && Date.now() - stableSince < 1_500) {
    await sleep(100)
    const next = await read()
    if (total(next) !== total(last)) stableSince = Date.now()
    last = next
  }
  return last
}

export async function runPhase (upstream: Child, groups: Group[], spec: PhaseSpec): Promise<PhaseResult> {
  const opened = await Promise.all(groups.map(async (g) => await g.callers.call<{ open: number, failed: number }>('open', { url: g.url, n: spec.n }, 130_000)))
  try {
    await sleep(spec.settleMs)
    const perGroup = Math.round(spec.rate * spec.seconds)
    await Promise.all(groups.map(async (g, i) => await g.callers.call('reset', { tag: spec.tag, expected: perGroup * opened[i]!.open }, 5_000)))
    const cpu0 = cpuOf(spec.pids)
    const pub = await upstream.call<PublishResult>('publish', { channel: spec.channel, rate: spec.rate, durationMs: spec.seconds * 1000, tag: spec.tag }, spec.seconds * 1000 + 10_000)
    const expected = opened.map((o) => o.open * pub.sent)
    const stats = await waitDelivered(groups, expected.reduce((a, b) => a + b, 0), 10_000 + 2_000 * spec.seconds)
    const serverCpuMs = cpuOf(spec.pids) - cpu0
    const results = stats.map((s, i): GroupResult => ({ open: opened[i]!.open, failed: opened[i]!.failed, expected: expected[i]!, deliveries: s.deliveries, lastUs: s.lastUs, latencyMs: s.latencyMs }))
    const deliveries = results.reduce((n, r) => n + r.deliveries, 0)
    const spanS = Math.max(1e-3, (Math.max(...results.map((r) => r.lastUs)) - pub.firstUs) / 1e6)
    return { sent: pub.sent, groups: results, deliveriesPerS: deliveries / spanS, missing: expected.reduce((a, b) => a + b, 0) - deliveries, serverCpuMs }
  } finally {
    await Promise.all(groups.map(async (g) => await g.callers.call('close', {}, 10_000)))
  }
}
