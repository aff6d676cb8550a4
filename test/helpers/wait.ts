/**
 * Bounded waiting for tests: `waitFor` (poll a predicate until a deadline), `delay`, `withDeadline`
 * (race a promise against a deadline) and `collector` (gather pushed values and wait for N of them).
 *
 * Timer policy. Every wait here is bounded, and every timer is cleared as soon as the wait settles,
 * so none outlives the operation that owns it. Timers that a test *awaits* stay ref'd on purpose:
 * measured with tap 21, a test whose only pending work is an unref'd timer fails with
 * "test unfinished" because Node exits under it. A ref'd timer that fires within its bound and is
 * then gone cannot keep the process alive. Background timers in the other helpers are unref'd.
 */

export interface WaitOptions {
  /** Deadline for the whole wait (default 5000 ms). */
  timeoutMs?: number
  /** Poll interval (default 10 ms). */
  intervalMs?: number
  /** What was awaited, for the error; a function is called at failure time (can show state). */
  message?: string | (() => string)
}

export class WaitTimeoutError extends Error {
  override name = 'WaitTimeoutError'
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options)
  }
}

function describe(message: WaitOptions['message'], fallback: string): string {
  if (typeof message === 'function') {
    try {
      return message()
    } catch (err) {
      return `${fallback} (message() threw: ${String(err)})`
    }
  }
  return message ?? fallback
}

/** Resolves after `ms`. Optionally aborted by a signal (rejects with the signal's reason). */
export function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason)
      return
    }
    const onAbort = (): void => {
      clearTimeout(timer)
      reject(signal?.reason)
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

/**
 * Polls `predicate` until it returns a truthy value (which is returned) or the deadline passes.
 * A predicate that throws is treated as "not yet"; its last error becomes the `cause`.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<NonNullable<T>> {
  const timeoutMs = opts.timeoutMs ?? 5000
  const intervalMs = opts.intervalMs ?? 10
  const start = Date.now()
  let lastError: unknown
  let attempts = 0
  for (;;) {
    attempts++
    try {
      const value = await predicate()
      if (value) return value as NonNullable<T>
      lastError = undefined
    } catch (err) {
      lastError = err
    }
    const elapsed = Date.now() - start
    if (elapsed >= timeoutMs) {
      const what = describe(opts.message, 'condition')
      throw new WaitTimeoutError(
        `waitFor: ${what} not met after ${elapsed} ms (${attempts} attempts)` +
          (lastError ? `; last error: ${String(lastError)}` : ''),
        { cause: lastError },
      )
    }
    await delay(Math.min(intervalMs, Math.max(1, timeoutMs - elapsed)))
  }
}

/**
 * Resolves/rejects like `promise`, or rejects with a WaitTimeoutError after `ms`.
 * The deadline timer is cleared when the promise settles.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, what = 'operation'): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new WaitTimeoutError(`${what} did not settle within ${ms} ms`))
    }, ms)
    promise.then(
      (v) => {
        clearTimeout(timer)
        resolve(v)
      },
      (err: unknown) => {
        clearTimeout(timer)
        reject(err)
      },
    )
  })
}

/** Resolves with the next `event` emitted by `emitter` (bounded). */
export function once<T = unknown>(
  emitter: { once(event: string, fn: (arg: T) => void): unknown; off(event: string, fn: (arg: T) => void): unknown },
  event: string,
  timeoutMs = 5000,
): Promise<T> {
  let listener: ((arg: T) => void) | undefined
  const p = new Promise<T>((resolve) => {
    listener = resolve
    emitter.once(event, resolve)
  })
  return withDeadline(p, timeoutMs, `event '${event}'`).finally(() => {
    if (listener) emitter.off(event, listener)
  })
}

export interface Collector<T> {
  /** Everything pushed so far (live array). */
  readonly items: T[]
  /** Push a value (use as a callback: `client.subscribe(ch, c.push)`). */
  push: (item: T) => void
  /** Waits until at least `n` items have arrived; resolves with the first `n`. */
  waitForCount(n: number, opts?: WaitOptions): Promise<T[]>
  /** Waits for the first item that matches `match`. */
  waitForMatch(match: (item: T) => boolean, opts?: WaitOptions): Promise<T>
  clear(): void
}

/** Collects values pushed by callbacks so a test can wait for a count or a match. */
export function collector<T = unknown>(): Collector<T> {
  const items: T[] = []
  return {
    items,
    push: (item: T) => {
      items.push(item)
    },
    async waitForCount(n, opts = {}) {
      await waitFor(() => items.length >= n, {
        ...opts,
        message: opts.message ?? (() => `${n} items (have ${items.length}: ${JSON.stringify(items).slice(0, 500)})`),
      })
      return items.slice(0, n)
    },
    async waitForMatch(match, opts = {}) {
      return waitFor(() => items.find(match), {
        ...opts,
        message: opts.message ?? (() => `a matching item among ${items.length}: ${JSON.stringify(items).slice(0, 500)}`),
      })
    },
    clear() {
      items.length = 0
    },
  }
}
