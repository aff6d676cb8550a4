/**
 * Reconnect delays: capped exponential backoff with full jitter (delay = random(0, min(cap, initial·2^n))).
 * The cap is small during the first minute of an outage, so that a client is back within about a second of the
 * server returning, and grows after that so that a long outage costs the server little (≈ 0.1 attempts/s at 30 s).
 */
import type { BackoffOptions } from './options.js'
import { DEFAULTS } from './options.js'
import { backoffCap, jittered } from './jitter.js'

export { backoffCap, jittered } from './jitter.js'

export class Backoff {
  readonly #initialMs: number
  readonly #earlyMaxMs: number
  readonly #maxMs: number
  readonly #random: () => number
  #attempt = 0
  #since: number | null = null

  constructor (options: BackoffOptions = {}, random: () => number = Math.random) {
    this.#initialMs = Math.max(1, options.initialMs ?? DEFAULTS.backoff.initialMs)
    this.#maxMs = Math.max(this.#initialMs, options.maxMs ?? DEFAULTS.backoff.maxMs)
    this.#earlyMaxMs = Math.min(this.#maxMs, Math.max(this.#initialMs, options.earlyMaxMs ?? DEFAULTS.backoff.earlyMaxMs))
    this.#random = random
  }

  /** Failures in a row since the last reset. */
  get attempt (): number { return this.#attempt }

  /** The next delay in ms; `floorMs` (e.g. `advice.interval`) is added on top. `hard` waits between half the long cap and the long cap (limit errors). */
  next (now = Date.now(), floorMs = 0, hard = false): number {
    this.#since ??= now
    const early = !hard && now - this.#since < 60_000
    const cap = early ? this.#earlyMaxMs : this.#maxMs
    this.#attempt++
    // A limit error waits at least half the long cap: the server told us to slow down.
    if (hard) return Math.max(0, floorMs) + jittered(this.#maxMs, 0.5, this.#random)
    return Math.max(0, floorMs) + jittered(backoffCap(this.#attempt, this.#initialMs, cap), 1, this.#random)
  }

  reset (): void {
    this.#attempt = 0
    this.#since = null
  }
}
