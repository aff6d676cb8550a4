/**
 * The per-run results of the client suite and what is computed from them: medians per combination and the ratios of
 * client-core (or the alt build) to the best reference client, per server · transport.
 */
import { median, ratio, spread } from '../lib/stats.js'
import { fmt } from '../lib/table.js'
import { REFERENCES, type Library, type TransportName } from './adapters.js'
import type { ServerName } from './server.js'

export interface Target { key: string, server: ServerName, transport: TransportName, label: string }

export interface Params {
  runs: number
  n: number
  warmup: number
  window: number
  rate: number
  latencyS: number
  /** before each run, wait up to this long for the machine to be quiet (ms); 0 = never */
  quietWaitMs: number
  /** "quiet" = at most this share of all cores busy */
  quietBusy: number
  /** a run during which other work used more than this (% of one core) is repeated, up to `retries` times; 0 = never */
  maxOtherPct: number
  retries: number
  /** subscriber-CPU rounds (sub-cpu.ts; 0 = skip), messages per round and warm-up per subscriber */
  cpuRounds: number
  cpuN: number
  cpuWarmup: number
}

export interface RunResult {
  target: string
  library: Library
  run: number
  ok: boolean
  error?: string
  /** 1-minute load average when the run started (other work on the machine) */
  load1: number
  /** hash of the compiled client-core the run loaded (lib/machine.ts buildHash) */
  build: string
  /** share of all cores busy in the 1 s before the run (after the optional wait for a quiet machine) */
  busyBefore?: number
  waitedMs?: number
  /** attempts made for this run (> 1 when the machine was busy with other work; the least disturbed one is kept) */
  attempts?: number
  transports?: { pub: string, sub: string }
  throughput?: {
    msgPerS: number
    unique: number
    lost: number
    duplicates: number
    /** arrivals after a message published later */
    reordered: number
    stray: number
    wallMs: number
    subCpuMs: number
    subCpuPer10k: number
    subCpuPct: number
    pubCpuPer10k: number
    pubCpuPct: number
    serverCpuPct: number
    /** messages per delivery (group of messages arriving in one event-loop turn ≈ one response or frame) */
    msgsPerDelivery: number
    /** CPU of everything else on the machine during the phase, % of one core (noise indicator) */
    foreignCpuPct: number
    publishFailures: number
  }
  latency?: { p50: number, p90: number, p99: number, max: number, count: number, lost: number, duplicates: number }
  subPeakRssMB?: number
  subIdleRssMB?: number
  pubPeakRssMB?: number
}

export interface ComboMedians {
  target: string
  library: Library
  runsOk: number
  runs: number
  msgPerS: number
  msgPerSSpread: number
  lost: number
  duplicates: number
  reordered: number
  p50: number
  p99: number
  subCpuPer10k: number
  pubCpuPer10k: number
  msgsPerDelivery: number
  subCpuPct: number
  pubCpuPct: number
  serverCpuPct: number
  /** other work on the machine during the throughput phases, % of one core */
  otherCpuPct: number
  subPeakRssMB: number
  transportsSeen: string[]
}

export interface TargetRatios {
  target: string
  /** client-core, or client-core-alt */
  library: Library
  bestReference: Library | null
  throughputRatio: number
  throughputRatioPerRun: number[]
  cpuReference: Library | null
  cpuRatio: number
  cpuRatioPerRun: number[]
  bestP99Reference: Library | null
  p99Ratio: number
  throughputTargetMet: boolean
  throughputAimMet: boolean
  cpuTargetMet: boolean
}

export function medians (p: Params, results: RunResult[], target: Target, library: Library): ComboMedians {
  const mine = results.filter((r) => r.target === target.key && r.library === library && r.throughput !== undefined)
  const pick = (f: (r: RunResult) => number | undefined): number[] => mine.map(f).filter((x): x is number => x !== undefined)
  const tps = pick((r) => r.throughput?.msgPerS)
  return {
    target: target.key,
    library,
    runs: p.runs,
    runsOk: mine.filter((r) => r.ok).length,
    msgPerS: median(tps),
    msgPerSSpread: spread(tps),
    lost: Math.max(0, ...pick((r) => r.throughput?.lost)),
    duplicates: Math.max(0, ...pick((r) => r.throughput?.duplicates)),
    reordered: Math.max(0, ...pick((r) => r.throughput?.reordered)),
    p50: median(pick((r) => r.latency?.p50)),
    p99: median(pick((r) => r.latency?.p99)),
    subCpuPer10k: median(pick((r) => r.throughput?.subCpuPer10k)),
    pubCpuPer10k: median(pick((r) => r.throughput?.pubCpuPer10k)),
    msgsPerDelivery: median(pick((r) => r.throughput?.msgsPerDelivery)),
    subCpuPct: median(pick((r) => r.throughput?.subCpuPct)),
    pubCpuPct: median(pick((r) => r.throughput?.pubCpuPct)),
    serverCpuPct: median(pick((r) => r.throughput?.serverCpuPct)),
    otherCpuPct: median(pick((r) => r.throughput?.foreignCpuPct)),
    subPeakRssMB: median(pick((r) => r.subPeakRssMB)),
    transportsSeen: [...new Set(mine.flatMap((r) => r.transports === undefined ? [] : [r.transports.pub, r.transports.sub]))]
  }
}

export function targetRatios (p: Params, results: RunResult[], combos: ComboMedians[], target: Target, candidate: Library): TargetRatios | null {
  const mine = combos.filter((c) => c.target === target.key)
  const cc = mine.find((c) => c.library === candidate)
  if (cc === undefined) return null
  const refs = mine.filter((c) => REFERENCES.includes(c.library) && Number.isFinite(c.msgPerS))
  const best = refs.reduce<ComboMedians | null>((a, c) => a === null || c.msgPerS > a.msgPerS ? c : a, null)
  const officials = refs.filter((c) => c.library === 'cometd' || c.library === 'cometd-autobatch')
  const cpuRef = officials.reduce<ComboMedians | null>((a, c) => a === null || c.subCpuPer10k < a.subCpuPer10k ? c : a, null)
  const bestP99 = refs.reduce<ComboMedians | null>((a, c) => a === null || c.p99 < a.p99 ? c : a, null)
  const perRun = (ref: Library | null, f: (r: RunResult) => number | undefined): number[] => {
    if (ref === null) return []
    const out: number[] = []
    for (let run = 1; run <= p.runs; run++) {
      const a = results.find((r) => r.target === target.key && r.library === candidate && r.run === run)
      const b = results.find((r) => r.target === target.key && r.library === ref && r.run === run)
      const x = a === undefined ? undefined : f(a)
      const y = b === undefined ? undefined : f(b)
      if (x !== undefined && y !== undefined) out.push(ratio(x, y))
    }
    return out
  }
  const throughputRatio = ratio(cc.msgPerS, best?.msgPerS ?? Number.NaN)
  const cpuRatio = ratio(cc.subCpuPer10k, cpuRef?.subCpuPer10k ?? Number.NaN)
  return {
    target: target.key,
    library: candidate,
    bestReference: best?.library ?? null,
    throughputRatio,
    throughputRatioPerRun: perRun(best?.library ?? null, (r) => r.throughput?.msgPerS),
    cpuReference: cpuRef?.library ?? null,
    cpuRatio,
    cpuRatioPerRun: perRun(cpuRef?.library ?? null, (r) => r.throughput?.subCpuPer10k),
    bestP99Reference: bestP99?.library ?? null,
    p99Ratio: ratio(cc.p99, bestP99?.p99 ?? Number.NaN),
    throughputTargetMet: throughputRatio >= 1,
    throughputAimMet: throughputRatio >= 1.5,
    cpuTargetMet: cpuRatio <= 0.5
  }
}

export const range = (xs: number[]): string => xs.length === 0
  ? '–'
  : xs.length === 1 ? fmt(xs[0]!) : `${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}`
