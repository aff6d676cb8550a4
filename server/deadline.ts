/** Deadlines on promises, and the text of an error for logs and in-band events. */

/** Rejects with a DeadlineError when `promise` takes longer than `ms`. The timer is unref()'d. */
export function withDeadline<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new DeadlineError(`${what}: no answer within ${ms} ms`)) }, Math.max(1, ms))
    timer.unref()
  })
  return Promise.race([promise, deadline]).finally(() => { clearTimeout(timer) })
}

export class DeadlineError extends Error {
  override readonly name = 'DeadlineError'
}

export function errorText (err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}
