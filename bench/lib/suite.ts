/**
 * The plug-in shape of a benchmark suite. run.ts picks suites with `--only`, gives each a context (mode, flags,
 * logger, where to put files) and collects its tables and raw data into one results JSON.
 *
 * A new suite (fan-out, added latency, memory, sessions, ...) exports a `Suite` and is added to SUITES in run.ts.
 * Rules every suite keeps: peers on 127.0.0.1 only, server and load generators in separate processes (lib/proc.ts),
 * every loop bounded in count and time, every child killed at the end, runs interleaved across the compared
 * variants so that machine noise hits them alike, and results reported as medians of runs and ratios against a
 * reference measured in the same run.
 */
import type { TargetResult } from './targets.js'

export type Mode = 'quick' | 'full'

export interface Table {
  title: string
  columns: string[]
  rows: string[][]
  /** lines printed under the table */
  notes?: string[]
}

export interface SuiteResult {
  tables: Table[]
  /** raw per-run data and medians, saved as-is in the JSON */
  data: unknown
  /** files written by the suite (plots, profiles), relative to the repository root */
  files?: string[]
  /** the targets this suite measured, judged (lib/targets.ts); run.ts prints them all together at the end */
  targets?: TargetResult[]
}

export interface SuiteContext {
  mode: Mode
  /** every --flag of the command line: `--n 5000` → { n: '5000' }, `--verbose` → { verbose: true } */
  flags: Record<string, string | true>
  /** progress lines (stderr) */
  log: (line: string) => void
  /** absolute directory for extra files of this run (bench/results/<stamp>/) */
  outDir: string
  /** wall-clock budget hint for the suite, ms */
  budgetMs: number
}

export interface Suite {
  name: string
  title: string
  run: (ctx: SuiteContext) => Promise<SuiteResult>
}

/** Integer flag with a default; throws on garbage. */
export function intFlag (flags: SuiteContext['flags'], name: string, fallback: number): number {
  const raw = flags[name]
  if (raw === undefined || raw === true) return fallback
  const value = Number(raw.replace(/_/g, ''))
  if (!Number.isFinite(value) || value < 0) throw new Error(`--${name} expects a number, got ${JSON.stringify(raw)}`)
  return value
}

/** Comma-separated list flag, or undefined. */
export function listFlag (flags: SuiteContext['flags'], name: string): string[] | undefined {
  const raw = flags[name]
  if (raw === undefined || raw === true) return undefined
  return raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
}
