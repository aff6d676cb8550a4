/**
 * Reconnect backoff of a session: how the bridge paces its attempts at a refusing upstream. Sessions to the same
 * origin share one gate (server/upstream/origin-gates.ts, client-core's ConnectGate), which takes the settings of
 * the first of them. See docs/configuration.md and docs/reliability.md.
 */
import * as D from './defaults.js'
import { int } from './fields.js'

/** Session keys (spread into the session schema). */
export const backoffSessionKeys = {
  /** the wait after the first refusal, ms (doubling from there) */
  initialBackoffMs: int('initialBackoffMs', D.DEFAULT_INITIAL_BACKOFF_MS),
  /** the largest wait between two attempts while the upstream refuses, ms (raised to initialBackoffMs if below) */
  maxBackoffMs: int('maxBackoffMs', D.DEFAULT_MAX_BACKOFF_MS)
}
