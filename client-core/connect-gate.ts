/**
 * A gate shared by the clients that connect to one upstream origin (pass the same object as `connectGate` to each):
 * while the origin refuses, one probe at a time goes out for all of them, and as soon as a probe gets an answer the
 * others follow at once. Without it, N clients of a refusing server each back off on their own: N times the
 * attempts, and no way to come back together.
 *
 * A client asks for a turn before each handshake or reconnect attempt and tells the gate what came of it. While
 * the origin answers, every turn is given at once. The first refusal closes the gate: the next probe may go after
 * a wait that grows from `initialMs` to `maxMs` (doubling), drawn in the upper `jitter` part of it — the floor keeps
 * the attempt rate bounded (≤ 1 / (maxMs·(1 − jitter))), the random part spreads several gates (daemons) apart.
 * The waiting clients take the probe in turn (first come, first served).
 */
import { backoffCap, jittered } from './jitter.js'
import { ClientError, HttpStatusError, ServerError, TransportError, WebSocketUpgradeError } from './errors.js'

export interface ConnectGateOptions {
  /** cap of the wait after the first refusal, ms (default 250) */
  initialMs?: number
  /** largest wait between two probes, ms (default 2_300: ≤ 0.5 attempts/s, back ≤ 2.3 s after the origin accepts) */
  maxMs?: number
  /** random part of each wait, 0–1 (default 0.15) */
  jitter?: number
  random?: () => number
}

/** One attempt at the origin; exactly one of its methods is called when the attempt is over. */
export interface GateTurn {
  /** this attempt is the probe of a refusing origin */
  readonly probe: boolean
  /** the origin answered (any reply, an error reply too): it takes connections */
  answered: () => void
  /** the origin refused or did not answer (connection refused or reset, timeout, HTTP 429/5xx) */
  refused: () => void
  /** the attempt did not reach the origin or says nothing about it (closed meanwhile, no token) */
  release: () => void
}

export type GateState = 'open' | 'refusing'

interface Waiter {
  resolve: (turn: GateTurn) => void
  reject: (reason: unknown) => void
  signal: AbortSignal | undefined
  onAbort: () => void
}

export const GATE_DEFAULTS = { initialMs: 250, maxMs: 2_300, jitter: 0.15 } as const

/** What an attempt's error says about the origin (for the gate): refused, answered, or nothing. */
export function originOutcome (error: unknown): 'refused' | 'answered' | 'none' {
  if (error instanceof WebSocketUpgradeError) return 'answered'
  if (error instanceof HttpStatusError) return error.statusCode === 429 || error.statusCode >= 500 ? 'refused' : 'answered'
  if (error instanceof TransportError) return 'refused'
  if (error instanceof ServerError) return 'answered'
  return error instanceof ClientError ? 'none' : 'refused'
}

/** Runs one attempt at the origin after a turn of `gate` (none: at once), and tells the gate its outcome. */
export async function throughGate<T> (gate: ConnectGate | null, signal: AbortSignal, attempt: () => Promise<T>): Promise<T> {
  if (gate === null) return await attempt()
  const turn = await gate.turn(signal)
  try {
    const result = await attempt()
    turn.answered()
    return result
  } catch (error) {
    const outcome = originOutcome(error)
    if (outcome === 'refused') turn.refused()
    else if (outcome === 'answered') turn.answered()
    else turn.release()
    throw error
  }
}

export class ConnectGate {
  readonly initialMs: number
  readonly maxMs: number
  readonly #jitter: number
  readonly #random: () => number
  #state: GateState = 'open'
  /** bumped by every change of state: a turn given before it cannot close the gate again */
  #epoch = 0
  #failures = 0
  #nextProbeAt = 0
  #probing = false
  #timer: NodeJS.Timeout | null = null
  readonly #waiters: Waiter[] = []
  readonly stats = { probes: 0, refusals: 0, reopened: 0 }

  constructor (options: ConnectGateOptions = {}) {
    this.initialMs = Math.max(1, options.initialMs ?? GATE_DEFAULTS.initialMs)
    this.maxMs = Math.max(this.initialMs, options.maxMs ?? GATE_DEFAULTS.maxMs)
    this.#jitter = Math.min(1, Math.max(0, options.jitter ?? GATE_DEFAULTS.jitter))
    this.#random = options.random ?? Math.random
  }

  get state (): GateState { return this.#state }
  /** clients waiting for a turn */
  get waiting (): number { return this.#waiters.length }
  /** ms until the next probe may go (0 while open) */
  get retryInMs (): number { return this.#state === 'open' ? 0 : Math.max(0, this.#nextProbeAt - Date.now()) }

  /** Resolves when this client may try the origin; rejects with `signal.reason` when aborted first. */
  turn (signal?: AbortSignal): Promise<GateTurn> {
    if (signal?.aborted === true) return Promise.reject(signal.reason)
    if (this.#state === 'open') return Promise.resolve(this.#turn(false))
    return new Promise<GateTurn>((resolve, reject) => {
      const waiter: Waiter = {
        resolve,
        reject,
        signal,
        onAbort: () => {
          const i = this.#waiters.indexOf(waiter)
          if (i >= 0) this.#waiters.splice(i, 1)
          reject(signal!.reason)
        }
      }
      signal?.addEventListener('abort', waiter.onAbort, { once: true })
      this.#waiters.push(waiter)
      this.#pump()
    })
  }

  #turn (probe: boolean): GateTurn {
    const epoch = this.#epoch
    let done = false
    const once = (fn: () => void) => () => { if (!done) { done = true; fn() } }
    return {
      probe,
      // an answer to anyone means the origin takes connections again
      answered: once(() => { if (this.#state === 'refusing') this.#open() }),
      // an outcome from before the last change of state is stale: it neither closes nor counts
      refused: once(() => {
        if (epoch !== this.#epoch) return
        if (probe) {
          this.#probing = false
        } else { // the first refusal: the gate closes
          this.#state = 'refusing'
          this.#epoch++
        }
        this.#refused()
      }),
      release: once(() => {
        if (!probe || epoch !== this.#epoch) return
        this.#probing = false
        this.#pump()
      })
    }
  }

  #open (): void {
    this.#probing = false
    this.#state = 'open'
    this.#epoch++
    this.#failures = 0
    this.stats.reopened++
    this.#disarm()
    this.#pump()
  }

  #refused (): void {
    this.#failures++
    this.stats.refusals++
    this.#nextProbeAt = Date.now() + jittered(backoffCap(this.#failures, this.initialMs, this.maxMs), this.#jitter, this.#random)
    this.#pump()
  }

  /** Gives turns: all of them while open; one probe at a time, when due, while refusing. */
  #pump (): void {
    if (this.#state === 'open') {
      for (const waiter of this.#waiters.splice(0)) this.#give(waiter, false)
      return
    }
    if (this.#probing || this.#waiters.length === 0) return
    const wait = this.#nextProbeAt - Date.now()
    if (wait > 0) {
      this.#timer ??= setTimeout(() => { this.#timer = null; this.#pump() }, wait)
      this.#timer.unref()
      return
    }
    this.#probing = true
    this.stats.probes++
    this.#give(this.#waiters.shift()!, true)
  }

  #give (waiter: Waiter, probe: boolean): void {
    waiter.signal?.removeEventListener('abort', waiter.onAbort)
    waiter.resolve(this.#turn(probe))
  }

  #disarm (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }
}
