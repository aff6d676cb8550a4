/** Errors of the cluster layer: a stable `code`, a message that never carries the Redis URL, and `cause`. */

export const ClusterErrorCode = {
  /** Redis may evict keys (leases, streams): refused at start */
  EVICTION_POLICY: 'REDIS_EVICTION_POLICY',
  /** no connection to Redis within the start-up deadline */
  UNREACHABLE: 'REDIS_UNREACHABLE',
  /** a command did not answer in time */
  TIMEOUT: 'REDIS_TIMEOUT',
  /** an append by a replica that no longer holds the session's lease */
  FENCED: 'LEASE_FENCED',
  /** Redis lost its data (its epoch changed) since this replica last looked */
  EPOCH_CHANGED: 'REDIS_EPOCH_CHANGED',
  /** the connection is closed (shutdown) */
  CLOSED: 'REDIS_CLOSED'
} as const
export type ClusterErrorCode = typeof ClusterErrorCode[keyof typeof ClusterErrorCode]

export class ClusterError extends Error {
  override name = 'ClusterError'
  readonly code: ClusterErrorCode
  constructor (code: ClusterErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
  }
}

/** A message for logs and readiness: the error's text without anything that looks like a URL's credentials. */
export function redisErrorText (err: unknown): string {
  const text = err instanceof Error ? err.message : String(err)
  return text.replace(/(rediss?:\/\/)[^@\s/]*@/gi, '$1[redacted]@')
}
