/**
 * One clock for every benchmark process: process.hrtime (CLOCK_MONOTONIC on Linux) is the same clock in all
 * processes of the machine, so a timestamp taken by the publisher can be subtracted from one taken by the
 * subscriber. Microseconds as a plain number (exact up to 2^53 µs ≈ 285 years of uptime).
 */
export function nowUs (): number {
  return Number(process.hrtime.bigint() / 1000n)
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Resolves with `promise`, or rejects after `ms` with `what` in the message. */
export async function deadline<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** CPU time (user + system) of this process in ms. */
export function cpuMs (): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

/** Peak resident set size of this process so far, MB. */
export function peakRssMB (): number {
  return process.resourceUsage().maxRSS / 1024
}

export function rssMB (): number {
  return process.memoryUsage.rss() / (1024 * 1024)
}
