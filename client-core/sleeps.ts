/**
 * Cancellable sleeps: the waits of the /meta/connect loop (advice interval, backoff). Releasing a session ends
 * them all at once, so a closed client leaves no timer behind and its loop sees the new generation at once.
 */
export class Sleeps {
  #sleeps = new Set<{ timer: NodeJS.Timeout, resolve: () => void }>()

  /** Resolves after `ms` (at once when ms <= 0), or earlier on releaseAll(). The timer is unref'd. */
  sleep (ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve()
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => { this.#sleeps.delete(entry); resolve() }, ms),
        resolve
      }
      entry.timer.unref()
      this.#sleeps.add(entry)
    })
  }

  /** Ends every sleep now (each resolves). */
  releaseAll (): void {
    for (const sleep of this.#sleeps) { clearTimeout(sleep.timer); sleep.resolve() }
    this.#sleeps.clear()
  }
}
