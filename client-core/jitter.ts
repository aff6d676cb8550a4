/** Backoff arithmetic shared by the reconnect backoff (backoff.ts) and the connect gate (connect-gate.ts). */

/** The cap of the n-th attempt in a row (1-based): initialMs·2^(n−1), at most maxMs. */
export function backoffCap (attempt: number, initialMs: number, maxMs: number): number {
  return Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempt, 1) - 1, 30))
}

/**
 * A delay below `cap`, random in its upper `jitter` part: [cap·(1 − jitter), cap]. jitter 1 is full jitter;
 * a smaller one keeps a floor under the delay (a bound on the attempt rate) and still spreads the clients out.
 */
export function jittered (cap: number, jitter: number, random: () => number = Math.random): number {
  return Math.round(cap * (1 - jitter) + random() * cap * jitter)
}
