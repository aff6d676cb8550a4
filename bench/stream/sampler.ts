/**
 * Memory of a server process over time: VmRSS from /proc every `everyMs` (no cost to the process), and — for the
 * bridge — V8 heap used/total and external memory from its own `/metrics` (prom-client's default process metrics),
 * which the daemon serves anyway. Bounded: stops by itself after `maxMs`.
 */
import { procUsage } from '../fanout/procs.js'

export interface Sample { at: number, rssMB: number, heapUsedMB?: number, heapTotalMB?: number, externalMB?: number }

const METRICS: Array<[keyof Sample, string]> = [
  ['heapUsedMB', 'nodejs_heap_size_used_bytes'],
  ['heapTotalMB', 'nodejs_heap_size_total_bytes'],
  ['externalMB', 'nodejs_external_memory_bytes']
]

/** The three heap figures of a Prometheus text exposition (any metric prefix), MB. */
export function heapFigures (text: string): Partial<Sample> {
  const out: Partial<Sample> = {}
  for (const [key, name] of METRICS) {
    const m = new RegExp(`^\\w*${name} ([0-9.e+]+)$`, 'm').exec(text)
    if (m !== null) (out as Record<string, number>)[key] = Number(m[1]) / (1024 * 1024)
  }
  return out
}

export class Sampler {
  readonly samples: Sample[] = []
  readonly #timer: NodeJS.Timeout
  #busy = false

  constructor (pid: number, metricsUrl: string | null, everyMs = 250, maxMs = 10 * 60_000) {
    const start = Date.now()
    this.#timer = setInterval(() => {
      if (Date.now() - start > maxMs) { this.stop(); return }
      if (this.#busy) return
      const at = Date.now()
      const sample: Sample = { at, rssMB: procUsage(pid).rssMB }
      this.samples.push(sample)
      if (metricsUrl === null) return
      this.#busy = true
      void fetch(metricsUrl, { signal: AbortSignal.timeout(2_000) }).then(async (r) => await r.text())
        .then((text) => { Object.assign(sample, heapFigures(text)) }, () => {})
        .finally(() => { this.#busy = false })
    }, everyMs)
  }

  stop (): void { clearInterval(this.#timer) }

  /** Samples taken in [from, to] (ms since the epoch). */
  between (from: number, to: number): Sample[] {
    return this.samples.filter((s) => s.at >= from && s.at <= to)
  }
}

/** The largest finite value of `key` among samples (NaN if none). */
export function peak (samples: readonly Sample[], key: keyof Sample): number {
  let max = Number.NaN
  for (const s of samples) {
    const v = s[key]
    if (v !== undefined && Number.isFinite(v) && !(v <= max)) max = v
  }
  return max
}
