/**
 * Upstream trouble in the log at warn, with the reason: a session whose upstream connection is lost logs one warn
 * line (why, and the error), the attempts that follow are the session's own `upstream state` lines, and one info
 * line says when it is back and how long it was away.
 */
import type { StateChange } from '../../client-core/index.js'
import type { SessionLogger } from './lazy-log.js'

/** What this needs of a session: its client's state events. */
export interface UpstreamHost {
  readonly client: { on: (event: 'state', listener: (e: StateChange) => void) => unknown }
}

export function watchUpstream (session: UpstreamHost, log: SessionLogger): void {
  let lostAt: number | null = null
  session.client.on('state', (e) => {
    if (e.from === 'connected' && e.to !== 'connected' && e.reason !== 'close') {
      lostAt = Date.now()
      log.warn({ reason: e.reason, error: e.error?.message, retryInMs: e.delayMs }, 'upstream connection lost')
    } else if (e.to === 'connected' && lostAt !== null) {
      log.info({ downMs: Date.now() - lostAt }, 'upstream connection back')
      lostAt = null
    }
  })
}
