/**
 * Start-up of many sessions: opening 1,000 upstream sessions at once leaves the V8 old space
 * full of the burst's garbage (handshake/connect/subscribe messages, promises, parsers) that an idle daemon never
 * collects: 160 MB of heap in use for 63 MB live. `openSessions` opens them a few at a time, and
 * `releaseStartupGarbage` runs one full GC once they are open, so the settled RSS is what the sessions need.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

export interface Startable {
  /** settles when the first open attempt is over (open + held subscriptions, or failed); never rejects */
  start: () => Promise<void>
}

export interface OpenSessionsOptions {
  /** sessions opening at the same time */
  concurrency: number
  /** a slot is given to the next session after this long even when the attempt still runs (a slow upstream) */
  slotMs: number
  /** stop starting new sessions (shutdown) */
  stopped: () => boolean
}

/**
 * Starts every session, at most `concurrency` first attempts at a time. Resolves when every first attempt is over
 * (each is bounded by the session's own deadlines), or at once for the sessions not started because of `stopped`.
 */
export async function openSessions (sessions: readonly Startable[], options: OpenSessionsOptions): Promise<void> {
  let next = 0
  const attempts: Array<Promise<void>> = []
  const worker = async (): Promise<void> => {
    while (next < sessions.length && !options.stopped()) {
      const attempt = sessions[next++]!.start()
      attempts.push(attempt)
      let timer: NodeJS.Timeout | undefined
      await Promise.race([
        attempt,
        new Promise<void>((resolve) => { timer = setTimeout(resolve, options.slotMs); timer.unref() })
      ])
      clearTimeout(timer)
    }
  }
  const workers = Math.max(1, Math.min(Math.floor(options.concurrency), sessions.length))
  await Promise.all(Array.from({ length: workers }, worker))
  await Promise.all(attempts)
}

type Gc = (options?: { type?: 'major' | 'minor', execution?: 'sync' | 'async' }) => void

/**
 * One full (major) GC, also without `--expose-gc`: the flag is set for a moment to get V8's gc function from a
 * fresh context, then cleared again. Returns false when V8 refuses (the daemon then runs as before).
 */
export function fullGc (): boolean {
  let gc = (globalThis as { gc?: Gc }).gc
  if (gc === undefined) {
    try {
      setFlagsFromString('--expose-gc')
      gc = runInNewContext('gc') as Gc | undefined
    } catch {
      gc = undefined
    } finally {
      setFlagsFromString('--no-expose-gc')
    }
  }
  if (typeof gc !== 'function') return false
  gc()
  return true
}

/**
 * After the start-up burst, once the daemon is quiet: full GCs at +quietMs, +1 s and +6 s. The first collects the
 * burst's garbage, the second lets V8 release the old-space pages it grew for it, the last runs when V8's measured
 * allocation rate (over the 6 s since the second) is low, which is when it shrinks the young generation back (16 MB semi-spaces,
 * grown during start-up, to 1 MB). Measured with 1,000 long-polling sessions: heap in use 164 → 64 MB, young
 * generation 32 → 4 MB, RSS 264 → 142-151 MB; with 1 session 100 → 86 MB. Not done when V8 refuses the gc function.
 */
export async function releaseStartupGarbage (quietMs = 1_000, stopped: () => boolean = () => false): Promise<{ rssBeforeMB: number, rssAfterMB: number } | null> {
  const before = process.memoryUsage.rss()
  for (const wait of [quietMs, 1_000, 6_000]) {
    await new Promise<void>((resolve) => { setTimeout(resolve, wait).unref() })
    if (stopped() || !fullGc()) return null
  }
  return { rssBeforeMB: mb(before), rssAfterMB: mb(process.memoryUsage.rss()) }
}

function mb (bytes: number): number {
  return Math.round(bytes / 104857.6) / 10
}
