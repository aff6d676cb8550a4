/**
 * Subscriber CPU per message, each library against the floor (floor.ts: ws or undici + JSON.parse + the listener),
 * made stable enough to judge a 15 % margin:
 *
 * - one server and one publisher (client-core, the same for every subscriber, so every subscriber is offered the
 *   same stream) per server · transport; one subscriber process per library, all connected at once, each on its
 *   own channel — only the library whose turn it is receives anything;
 * - after a warm-up of every subscriber, `rounds` rounds; in each, every library in turn (the order rotated from
 *   round to round) receives a burst of `n` messages; its CPU (process.cpuUsage, user + system) from the arm to
 *   its last message, per 10,000 messages;
 * - per library the MINIMUM over the rounds (the run least disturbed by the other work on the machine), the spread
 *   (max − min) / min reported beside it; the ratios are minimum ÷ minimum, with the per-round ratios' range.
 */
import os from 'node:os'
import path from 'node:path'
import { Child } from '../lib/proc.js'
import { deadline } from '../lib/clock.js'
import { machineCpu } from '../lib/machine.js'
import { median, ratio } from '../lib/stats.js'
import { fmt, fmtInt, fmtRatio } from '../lib/table.js'
import { judge, type TargetResult } from '../lib/targets.js'
import type { SuiteContext, Table } from '../lib/suite.js'
import { LIBRARIES, type Library, type TransportName } from './adapters.js'
import type { PubReport, SubReport } from './peer.js'
import type { ServerName } from './server.js'

export interface CpuTarget { key: string, server: ServerName, transport: TransportName, label: string, idPrefix: string }
export interface SubCpuParams { rounds: number, n: number, warmup: number, window: number }

export interface SubCpuRun {
  target: string
  library: Library
  round: number
  cpuPer10k: number
  msgsPerDelivery: number
  lost: number
  duplicates: number
  /** CPU of the rest of the machine meanwhile, % of one core (the publisher and the server included) */
  machineOtherPct: number
  load1: number
}

export interface SubCpuResult {
  tables: Table[]
  runs: SubCpuRun[]
  targets: TargetResult[]
}

const BURST_DEADLINE_MS = 120_000

/**
 * The channel of one library's subscriber: the same length for every library (its index), so that every subscriber
 * decodes and parses the same number of bytes per message — `/bench/cpu/client-core-alt` against `/bench/cpu/floor`
 * was 10 more bytes in each message's body and channel string.
 */
const channelOf = (library: Library): string => `/bench/cpu/lib${LIBRARIES.indexOf(library)}`

async function measureTarget (ctx: SuiteContext, p: SubCpuParams, target: CpuTarget, libs: Library[]): Promise<SubCpuRun[]> {
  const children: Child[] = []
  const runs: SubCpuRun[] = []
  try {
    const server = await Child.fork('client/server.js', ['--server', target.server], { name: `server cpu ${target.key}` })
    children.push(server)
    const url = (server.readyInfo as { url: string }).url
    // --sub-node-args "--trace-gc …": Node flags of the subscriber processes (with BENCH_VERBOSE=1 to see their output)
    const nodeArgs = typeof ctx.flags['sub-node-args'] === 'string' ? ctx.flags['sub-node-args'].split(' ').filter((a) => a !== '') : []
    const peer = (role: string, library: Library, extra: string[] = []): Promise<Child> => Child.fork('client/peer.js',
      ['--role', role, '--lib', library, '--transport', target.transport, '--url', url, ...extra],
      { name: `${role} cpu ${target.key}/${library}`, execArgv: role === 'sub' ? nodeArgs : [] })
    // The publisher and every subscriber start side by side (start-up is most of the quick mode's time).
    const started = await Promise.allSettled([peer('pub', 'client-core'),
      ...libs.map(async (library) => await peer('sub', library, ['--channel', channelOf(library), ...profileArgs(ctx, target, library, p.rounds)]))])
    for (const s of started) if (s.status === 'fulfilled') children.push(s.value)
    for (const s of started) if (s.status === 'rejected') throw s.reason
    const pub = children[1]!
    const subs = new Map<Library, Child>(libs.map((library, i) => [library, children[i + 2]!]))
    const burst = async (library: Library, phase: string, n: number): Promise<{ sub: SubReport, otherMs: number, wallMs: number }> => {
      const sub = subs.get(library)!
      sub.drainEvents('complete')
      await sub.call('arm', { phase, n }, 5_000)
      const m0 = machineCpu()
      const t0 = performance.now()
      const completed = sub.waitEvent<SubReport>('complete', BURST_DEADLINE_MS)
      completed.catch(() => {})
      const published = await pub.call<PubReport>('burst', { phase, n, window: p.window, channel: channelOf(library) }, BURST_DEADLINE_MS)
      let report: SubReport
      try {
        report = await deadline(completed, 5_000, 'complete')
      } catch {
        report = await sub.call<SubReport>('report', null, 5_000)
      }
      const wallMs = performance.now() - t0
      const busyMs = machineCpu().busyMs - m0.busyMs
      return { sub: report, otherMs: Math.max(0, busyMs - report.cpuMs - published.cpuMs), wallMs }
    }
    for (const library of libs) await burst(library, 'w', p.warmup)
    for (let round = 1; round <= p.rounds; round++) {
      const shift = (round - 1) % libs.length
      for (const library of [...libs.slice(shift), ...libs.slice(0, shift)]) {
        const load1 = Math.round(os.loadavg()[0]! * 100) / 100
        const { sub, otherMs, wallMs } = await burst(library, `c${round}`, p.n)
        runs.push({
          target: target.key,
          library,
          round,
          cpuPer10k: sub.unique > 0 ? (sub.cpuMs / sub.unique) * 10_000 : Number.NaN,
          msgsPerDelivery: sub.bursts > 0 ? sub.unique / sub.bursts : Number.NaN,
          lost: p.n - sub.unique,
          duplicates: sub.duplicates,
          machineOtherPct: (otherMs / wallMs) * 100,
          load1
        })
        const r = runs[runs.length - 1]!
        ctx.log(`  cpu ${target.key.padEnd(9)} round ${round} ${library.padEnd(16)} ${fmt(r.cpuPer10k, 0).padStart(5)} ms/10k  ${fmt(r.msgsPerDelivery, 1)}/delivery  lost ${r.lost} dup ${r.duplicates}  rest of machine ${fmtInt(r.machineOtherPct)} %`)
      }
    }
  } finally {
    const [server, ...clients] = children
    await Promise.all(clients.map(async (child) => await child.stop()))
    await server?.stop()
  }
  return runs
}

/**
 * --profile sub [--profile-libs …]: a CPU profile of the last round's burst of that subscriber; with
 * --profile-kind heap, an allocation profile instead (lib/profiler.ts, kind heap).
 */
function profileArgs (ctx: SuiteContext, target: CpuTarget, library: Library, rounds: number): string[] {
  const profile = ctx.flags['profile']
  const libs = ctx.flags['profile-libs']
  if (typeof profile !== 'string' || !profile.split(',').includes('sub')) return []
  if (typeof libs === 'string' && !libs.split(',').includes(library)) return []
  const kind = ctx.flags['profile-kind'] === 'heap' ? 'heap' : 'cpu'
  return ['--profile-file', path.join(ctx.outDir, 'profiles', `cpu.${target.key}.${library}.sub.${kind}profile`),
    '--profile-phase', `c${rounds}`, '--profile-kind', kind]
}

interface LibStats { library: Library, min: number, median: number, max: number, spread: number, msgsPerDelivery: number, rounds: number, clean: boolean }

function libStats (runs: SubCpuRun[], library: Library): LibStats {
  const mine = runs.filter((r) => r.library === library && Number.isFinite(r.cpuPer10k))
  const xs = mine.map((r) => r.cpuPer10k)
  const min = xs.length === 0 ? Number.NaN : Math.min(...xs)
  const max = xs.length === 0 ? Number.NaN : Math.max(...xs)
  const best = mine.find((r) => r.cpuPer10k === min)
  return {
    library,
    min,
    median: median(xs),
    max,
    spread: ratio(max - min, min),
    msgsPerDelivery: best?.msgsPerDelivery ?? Number.NaN,
    rounds: mine.length,
    clean: mine.every((r) => r.lost === 0 && r.duplicates === 0)
  }
}

/** Per-round ratios of `a` to `b` (the two ran next to each other in every round). */
function roundRatios (runs: SubCpuRun[], a: Library, b: Library): number[] {
  const out: number[] = []
  for (const x of runs.filter((r) => r.library === a)) {
    const y = runs.find((r) => r.library === b && r.round === x.round)
    if (y !== undefined) out.push(ratio(x.cpuPer10k, y.cpuPer10k))
  }
  return out.filter((v) => Number.isFinite(v))
}

const range = (xs: number[]): string => xs.length === 0 ? '–' : `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`

/** What each subscriber is compared with, and the goal: client-core ≤ 1.15× the floor, below every reference. */
const COMPARISONS: Array<{ suffix: string, reference: Library, goal: number, words: string }> = [
  { suffix: 'floor', reference: 'floor', goal: 1.15, words: 'the floor (bare + JSON.parse)' },
  { suffix: 'official', reference: 'cometd', goal: 1.0, words: 'the official cometd client' },
  { suffix: 'faye', reference: 'faye', goal: 1.0, words: 'the faye client' }
]

export async function subscriberCpu (ctx: SuiteContext, p: SubCpuParams, targets: CpuTarget[], libs: Library[]): Promise<SubCpuResult> {
  const runs: SubCpuRun[] = []
  for (const target of targets) runs.push(...await measureTarget(ctx, p, target, libs))
  const rows: string[][] = []
  const judged: TargetResult[] = []
  const ratioRows: string[][] = []
  for (const target of targets) {
    const mine = runs.filter((r) => r.target === target.key)
    const stats = libs.map((library) => libStats(mine, library))
    for (const s of stats) {
      rows.push([target.label, s.library, fmtInt(s.min), fmtInt(s.median), fmtInt(s.max), `${fmt(s.spread * 100, 0)} %`, fmt(s.msgsPerDelivery, 1), `${s.rounds}`, s.clean ? '0/0' : 'LOST/DUP'])
    }
    for (const candidate of libs.filter((l) => l === 'client-core' || l === 'client-core-alt')) {
      const cc = stats.find((s) => s.library === candidate)!
      for (const c of COMPARISONS) {
        const ref = stats.find((s) => s.library === c.reference)
        if (ref === undefined) continue
        const measured = ratio(cc.min, ref.min)
        const perRound = roundRatios(mine, candidate, c.reference)
        ratioRows.push([target.label, candidate, c.reference, fmtRatio(measured), fmtRatio(ratio(cc.median, ref.median)), `[${range(perRound)}]`, `≤ ${fmt(c.goal)}`])
        if (candidate !== 'client-core') continue
        const clean = cc.clean && ref.clean
        judged.push(judge({
          id: `${target.idPrefix}-${c.suffix}`,
          what: `subscriber CPU/msg ÷ ${c.words}, ${target.label} (min of ${p.rounds})`,
          unit: 'x',
          goal: { atMost: c.goal }
        }, clean ? measured : Number.NaN))
        const last = judged[judged.length - 1]!
        last.note = clean
          ? `medians ${fmtRatio(ratio(cc.median, ref.median))}; per round ${range(perRound)}; spread client-core ${fmt(cc.spread * 100, 0)} %, ${c.reference} ${fmt(ref.spread * 100, 0)} %`
          : 'a run lost or duplicated messages'
      }
    }
  }
  const load = runs.map((r) => r.machineOtherPct)
  const tables: Table[] = [{
    title: `Subscriber CPU per message, one client-core publisher for all — min and max of ${p.rounds} interleaved rounds of ${fmtInt(p.n)} messages`,
    columns: ['server · transport', 'subscriber', 'min ms/10k', 'median', 'max ms/10k', 'spread', 'msgs/delivery (min run)', 'rounds', 'lost/dup'],
    rows,
    notes: [`rest of the machine (publisher, server, other work) during the bursts: median ${fmtInt(median(load))} %, max ${fmtInt(Math.max(0, ...load))} % of one core (${os.availableParallelism()} cores)`]
  }, {
    title: 'Subscriber CPU per message: client-core ÷ each reference (min ÷ min, judged; median ÷ median; per-round ratios)',
    columns: ['server · transport', 'subscriber', 'reference', 'ratio of minimums', 'ratio of medians', 'per round', 'goal'],
    rows: ratioRows
  }]
  return { tables, runs, targets: judged }
}
