/**
 * How client-core errors become HTTP answers for publish and call.
 *   ServerError 403            → 403 upstream_denied
 *   ServerError 400/404/409    → same status, upstream_rejected
 *   ServerError 401/402        → 503 upstream_unavailable + Retry-After (the session is being re-established)
 *   other ServerError          → 502 upstream_rejected
 *   timeout                    → 504 upstream_timeout (call_timeout for calls)
 *   transport error / closed   → 503 upstream_unavailable + Retry-After
 *   MessageEncodingError       → 400 invalid_data
 *   ClientError (bad channel)  → 400 invalid_channel
 */
import { ClientError, ClientInvalidOperation, MessageEncodingError, ServerError, TransportError, TransportTimeoutError } from '../../client-core/index.js'
import { ErrorCode, HttpError } from '../errors.js'
import { DeadlineError } from '../deadline.js'

export function unavailable (session: string, why: string, retryAfterS: number): HttpError {
  return new HttpError(503, ErrorCode.UPSTREAM_UNAVAILABLE, `Session "${session}" is not connected upstream (${why}); retry later`, {
    headers: { 'Retry-After': String(retryAfterS) }
  })
}

/** A subscription the upstream refused, as the caller's HTTP error: 403 upstream_denied, or its 4xx / 502 upstream_rejected. */
export function refusedSubscription (err: unknown, session: string, pattern: string, retryAfterS: number): HttpError {
  const mapped = mapUpstreamError(err, session, 'publish', retryAfterS)
  const status = mapped.statusCode === 403 ? 403 : mapped.statusCode >= 500 ? 502 : mapped.statusCode
  return new HttpError(status, status === 403 ? ErrorCode.UPSTREAM_DENIED : ErrorCode.UPSTREAM_REJECTED,
    `The upstream server refused the subscription to ${pattern}`, { details: mapped.details })
}

export function mapUpstreamError (err: unknown, session: string, op: 'publish' | 'call', retryAfterS: number): HttpError {
  if (err instanceof HttpError) return err
  if (err instanceof DeadlineError || err instanceof TransportTimeoutError) {
    const code = op === 'call' ? ErrorCode.CALL_TIMEOUT : ErrorCode.UPSTREAM_TIMEOUT
    return new HttpError(504, code, `The upstream server did not answer the ${op} in time`, { cause: err })
  }
  if (err instanceof ServerError) {
    const bayeux = {
      error: err.error,
      channel: err.response?.channel ?? null,
      id: err.response?.id ?? null
    }
    const details = { bayeux }
    const status = err.errorCode
    if (status === 403) return new HttpError(403, ErrorCode.UPSTREAM_DENIED, `The upstream server denied the ${op}`, { details, cause: err })
    if (status === 400 || status === 404 || status === 409) {
      return new HttpError(status, ErrorCode.UPSTREAM_REJECTED, `The upstream server rejected the ${op}`, { details, cause: err })
    }
    if (status === 401 || status === 402) {
      const e = unavailable(session, 'upstream session unknown, re-handshaking', retryAfterS)
      return new HttpError(503, e.code, e.message, { headers: e.headers, details, cause: err })
    }
    return new HttpError(502, ErrorCode.UPSTREAM_REJECTED, `The upstream server rejected the ${op}`, { details, cause: err })
  }
  if (err instanceof ClientInvalidOperation) return unavailable(session, 'client closed', retryAfterS)
  if (err instanceof MessageEncodingError) return new HttpError(400, ErrorCode.INVALID_DATA, err.message, { cause: err })
  if (err instanceof ClientError) return new HttpError(400, ErrorCode.INVALID_CHANNEL, err.message, { cause: err })
  if (err instanceof TransportError) return unavailable(session, 'connection lost', retryAfterS)
  return new HttpError(502, ErrorCode.UPSTREAM_REJECTED, `The ${op} failed upstream: ${err instanceof Error ? err.message : String(err)}`, { cause: err })
}
