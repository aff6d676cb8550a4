/**
 * What the /meta/connect loop does after a refusal, decided from the reply alone: pure functions, so the rules
 * (advice first, then the exceptions real servers need) read in one place and the session only carries them out.
 */
import type { Backoff } from './backoff.js'
import type { ConnectGate } from './connect-gate.js'
import { ClientError, ServerError } from './errors.js'
import type { Message } from './protocol/message.js'
import { authFailure, limitError, unknownSession } from './session-options.js'
import type { CurrentAdvice } from './session-options.js'

/** After an unsuccessful /meta/connect reply. `hard`: wait the long (limit) backoff. */
export interface ConnectRejection {
  action: 'none' | 'handshake' | 'retry'
  /** the credentials were refused: re-authenticate before anything else */
  authenticate: boolean
  hard: boolean
}

export function connectRejection (reply: Message, hasAuth: boolean): ConnectRejection {
  let action = reply.advice?.reconnect ?? (unknownSession(reply) ? 'handshake' : 'retry')
  // Salesforce sometimes says `none` with 403::Unknown client: the session is gone, a new one is fine.
  if (action === 'none' && unknownSession(reply)) action = 'handshake'
  // Daily or concurrent limits: wait (hard backoff) and try again, never stop for good.
  if (action === 'none' && limitError(reply)) action = 'retry'
  const authenticate = hasAuth && authFailure(reply)
  if (authenticate) action = 'handshake'
  return { action, authenticate, hard: limitError(reply) }
}

/** After a failed re-handshake: stop for good, or back off (`hard`: the long limit backoff) and handshake again. */
export type HandshakeFailure = { action: 'none' } | { action: 'retry', hard: boolean }

export function handshakeFailure (error: unknown, hasAuth: boolean): HandshakeFailure {
  if (error instanceof ServerError && error.response !== null) {
    const reply = error.response
    const action = reply.advice?.reconnect ?? 'handshake'
    // A limit error is waited out (hard backoff), never final: the org's limit frees up again.
    if (action === 'none' && !unknownSession(reply) && !limitError(reply) && !(hasAuth && authFailure(reply))) {
      return { action: 'none' }
    }
    return { action: 'retry', hard: limitError(reply) }
  }
  // a ClientError is ours to fix (nothing the server offers suits us): trying again cannot help
  if (error instanceof ClientError) return { action: 'none' }
  return { action: 'retry', hard: false }
}

/** The wait before the next attempt after a loss. */
export interface LostWait {
  delayMs: number
  /** the connect gate paces the next attempt: no sleep of our own */
  paced: boolean
  /** the server has surely expired the session by the end of the wait: handshake again */
  expired: boolean
}

export function lostWait (
  gate: ConnectGate | null, backoff: Backoff, advice: CurrentAdvice, downSince: number | null, hard: boolean
): LostWait {
  const now = Date.now()
  // while the connect gate says the origin refuses, it paces the next attempt (shared with its other clients)
  const paced = gate !== null && !hard && gate.state === 'refusing'
  const delayMs = paced ? gate.retryInMs : backoff.next(now, advice.interval, hard)
  const { timeout, interval, maxInterval } = advice
  const expired = maxInterval > 0 && now - (downSince ?? now) + delayMs > timeout + interval + maxInterval
  return { delayMs, paced, expired }
}
