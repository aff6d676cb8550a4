/** The duration of an operation in a histogram, labelled with its outcome: `ok`, the HttpError's code, or `error`. */
import { HttpError } from '../errors.js'

export interface DurationHistogram { observe: (labels: Record<string, string>, seconds: number) => void }

export async function timed<T> (histogram: DurationHistogram, labels: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const start = process.hrtime.bigint()
  let outcome = 'ok'
  try {
    return await fn()
  } catch (err) {
    outcome = err instanceof HttpError ? err.code : 'error'
    throw err
  } finally {
    histogram.observe({ ...labels, outcome }, Number(process.hrtime.bigint() - start) / 1e9)
  }
}
