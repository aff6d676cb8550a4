/**
 * The targets a run is judged by. A suite returns, beside its tables, one `TargetResult` per target it measured;
 * run.ts prints them all at the end as one table, each with its goal and PASS or MISS, and saves them in the JSON.
 *
 * A target is a figure against a goal: "at least" (`atLeast`, e.g. a throughput ratio ≥ 0.8) or "at most"
 * (`atMost`, e.g. a CPU ratio ≤ 1.15, added p99 ≤ 2 ms). A figure that could not be measured (NaN) is a MISS,
 * never a PASS, and says why in `note`.
 */
export interface TargetResult {
  /** stable id, e.g. 'fanout-1000-batching' */
  id: string
  /** what is measured, in words, e.g. 'fan-out deliveries/s ÷ batching bare Node, 1,000 callers' */
  what: string
  measured: number
  /** 'x' for a ratio, 'ms', 'MB', … */
  unit: string
  goal: { atLeast: number } | { atMost: number }
  pass: boolean
  /** the spread of runs, or what stands in the way of a miss */
  note?: string
}

export interface TargetSpec {
  id: string
  what: string
  unit: string
  goal: { atLeast: number } | { atMost: number }
  note?: string
}

/** A target's result for a measured figure: PASS only when the figure is finite and on the right side of its goal. */
export function judge (spec: TargetSpec, measured: number): TargetResult {
  const finite = Number.isFinite(measured)
  const pass = finite && ('atLeast' in spec.goal ? measured >= spec.goal.atLeast : measured <= spec.goal.atMost)
  return { ...spec, measured, pass, ...(finite ? {} : { note: spec.note ?? 'not measured' }) }
}

function figure (value: number, unit: string): string {
  if (!Number.isFinite(value)) return '–'
  if (unit === 'x') return `${value.toFixed(2)}×`
  return `${value >= 100 ? value.toFixed(0) : value.toFixed(2)} ${unit}`
}

/** The rows of the closing table: target, measured, goal, PASS/MISS, note. */
export function targetRows (targets: readonly TargetResult[]): string[][] {
  return targets.map((t) => [
    t.what,
    figure(t.measured, t.unit),
    'atLeast' in t.goal ? `≥ ${figure(t.goal.atLeast, t.unit)}` : `≤ ${figure(t.goal.atMost, t.unit)}`,
    t.pass ? 'PASS' : 'MISS',
    t.note ?? ''
  ])
}
