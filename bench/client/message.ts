/**
 * The benchmark message: `{ p, s, t, x }` = phase tag, sequence number, publish timestamp (µs, shared monotonic
 * clock, see lib/clock.ts) and padding, sized so that the JSON of the data is DATA_BYTES long for 5-digit sequence
 * numbers (193 bytes, as in shared/reference/peers.md).
 */
export const DATA_BYTES = 193
export const CHANNEL = '/bench/data'

export interface BenchData { p: string, s: number, t: number, x: string }

const sample = JSON.stringify({ p: 't', s: 10_000, t: 1_000_000_000_000, x: '' })
export const PAD = 'x'.repeat(Math.max(0, DATA_BYTES - sample.length))

export function makeData (phase: string, seq: number, tUs: number): BenchData {
  return { p: phase, s: seq, t: tUs, x: PAD }
}

export function isBenchData (value: unknown): value is BenchData {
  return typeof value === 'object' && value !== null && typeof (value as BenchData).s === 'number' &&
    typeof (value as BenchData).p === 'string' && typeof (value as BenchData).t === 'number'
}
