/**
 * The SSE callers of the fan-out suite, spread over several processes (fanout/callers.ts each): one process of raw
 * callers saturates a core before a batching server does, which capped the measured rate ratio at ≈ 1×. The pool
 * opens its streams round-robin over the processes (a small count, e.g. part 3's 10 callers, stays in the first),
 * and sums their counts.
 */
import { Child } from '../lib/proc.js'
import type { Summary } from '../lib/stats.js'
import { sleep } from '../lib/clock.js'

export interface CallerStats { deliveries: number, otherTag: number, firstUs: number, lastUs: number, latencyMs: Summary, cpuMs: number }
export interface Opened { open: number, failed: number, ms: number }

/** below this many streams, one process holds them all */
const SPREAD_FROM = 100

export class CallerPool {
  readonly #procs: Child[]
  /** how many processes hold streams now (1 for a small count) */
  #active = 1

  private constructor (procs: Child[]) { this.#procs = procs }

  static async start (count: number): Promise<CallerPool> {
    const procs: Child[] = []
    try {
      for (let i = 0; i < Math.max(1, count); i++) procs.push(await Child.fork('fanout/callers.js', [], { name: `callers${i}` }))
    } catch (err) {
      for (const p of procs) p.kill()
      throw err
    }
    return new CallerPool(procs)
  }

  get size (): number { return this.#procs.length }
  get pids (): number[] { return this.#procs.map((p) => p.pid ?? -1) }

  async open (url: string, n: number, timeoutMs = 130_000): Promise<Opened> {
    this.#active = n < SPREAD_FROM ? 1 : this.#procs.length
    const k = this.#active
    const parts = await Promise.all(this.#procs.slice(0, k).map(async (p, i) =>
      await p.call<Opened>('open', { url, n: Math.floor(n / k) + (i < n % k ? 1 : 0) }, timeoutMs)))
    return { open: sum(parts.map((p) => p.open)), failed: sum(parts.map((p) => p.failed)), ms: Math.max(...parts.map((p) => p.ms)) }
  }

  async reset (tag: string, expected: number): Promise<void> {
    await Promise.all(this.#procs.map(async (p) => await p.call('reset', { tag, expected: Math.ceil(expected / this.#active) }, 5_000)))
  }

  /**
   * Counts summed; first/last arrival over all processes; latency: p50 the median of the processes' p50s, p99 and
   * max the highest of theirs (the slowest process's tail: conservative); cpuMs summed.
   */
  async stats (): Promise<CallerStats> {
    const all = await Promise.all(this.#procs.map(async (p) => await p.call<CallerStats>('stats', {}, 10_000)))
    const used = all.slice(0, this.#active)
    const firsts = used.map((s) => s.firstUs).filter((x) => x > 0)
    const lat = used.map((s) => s.latencyMs).filter((l) => l.count > 0)
    const p50s = lat.map((l) => l.p50).sort((a, b) => a - b)
    const latencyMs: Summary = lat.length === 0
      ? { count: 0, p50: Number.NaN, p90: Number.NaN, p99: Number.NaN, max: Number.NaN, mean: Number.NaN }
      : {
          count: sum(lat.map((l) => l.count)),
          p50: p50s[(p50s.length - 1) >> 1]!,
          p90: Math.max(...lat.map((l) => l.p90)),
          p99: Math.max(...lat.map((l) => l.p99)),
          max: Math.max(...lat.map((l) => l.max)),
          mean: sum(lat.map((l) => l.mean * l.count)) / sum(lat.map((l) => l.count))
        }
    return {
      deliveries: sum(used.map((s) => s.deliveries)),
      otherTag: sum(used.map((s) => s.otherTag)),
      firstUs: firsts.length === 0 ? 0 : Math.min(...firsts),
      lastUs: Math.max(0, ...used.map((s) => s.lastUs)),
      latencyMs,
      cpuMs: sum(all.map((s) => s.cpuMs))
    }
  }

  /**
   * Polls until `expected` deliveries arrived, nothing arrived for `quietMs`, or `maxMs` passed (bounded in time and
   * in count).
   */
  async waitDelivered (expected: number, maxMs: number, quietMs = 1_500): Promise<CallerStats> {
    const start = Date.now()
    let last = await this.stats()
    let stableSince = Date.now()
    for (let i = 0; i < 10_000 && last.deliveries < expected && Date.now() - start < maxMs; i++) {
      await sleep(100)
      const s = await this.stats()
      if (s.deliveries !== last.deliveries) stableSince = Date.now()
      last = s
      if (Date.now() - stableSince > quietMs) break // nothing arrives any more
    }
    return last
  }

  async close (): Promise<void> {
    await Promise.all(this.#procs.map(async (p) => await p.call('close', {}, 10_000)))
  }

  async stop (): Promise<void> {
    for (const p of this.#procs) await p.stop().catch(() => p.kill())
  }
}

function sum (xs: readonly number[]): number {
  let s = 0
  for (const x of xs) s += x
  return s
}
