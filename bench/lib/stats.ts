/** Small statistics helpers: medians of runs, percentiles of samples, ratios. */

export function median (values: readonly number[]): number {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  if (xs.length === 0) return Number.NaN
  const mid = xs.length >> 1
  return xs.length % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2
}

/** Nearest-rank percentile (p in 0..100) of unsorted samples. */
export function percentile (values: ArrayLike<number>, p: number): number {
  const xs = Float64Array.from(values as ArrayLike<number>).sort()
  if (xs.length === 0) return Number.NaN
  const rank = Math.min(xs.length - 1, Math.max(0, Math.ceil((p / 100) * xs.length) - 1))
  return xs[rank]!
}

export interface Summary { count: number, p50: number, p90: number, p99: number, max: number, mean: number }

export function summarize (values: ArrayLike<number>): Summary {
  const xs = Float64Array.from(values as ArrayLike<number>).sort()
  const n = xs.length
  if (n === 0) return { count: 0, p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN }
  const at = (p: number): number => xs[Math.min(n - 1, Math.max(0, Math.ceil((p / 100) * n) - 1))]!
  let sum = 0
  for (const x of xs) sum += x
  return { count: n, p50: at(50), p90: at(90), p99: at(99), max: xs[n - 1]!, mean: sum / n }
}

/** a / b, NaN when either is missing or b is 0. */
export function ratio (a: number, b: number): number {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : Number.NaN
}

/** Spread of runs as (max - min) / median, for judging noise. */
export function spread (values: readonly number[]): number {
  const xs = values.filter((v) => Number.isFinite(v))
  if (xs.length < 2) return 0
  return (Math.max(...xs) - Math.min(...xs)) / median(xs)
}
