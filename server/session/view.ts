/** The JSON view of a session for GET /sessions[/:name]: state, counters, subscriptions. No secrets. */
import type { SubscriptionView } from '../upstream/subscriptions.js'
import type { LogBounds } from '../event-log/event-log.js'

export interface SessionStats {
  eventsIn: number
  eventsOut: number
  callersTotal: number
  slowDrops: number
  gaps: number
  handshakes: number
  rehandshakes: number
  reconnects: number
  publishes: number
  publishFailures: number
  calls: number
  callFailures: number
}

export interface LastError { message: string, code: string | null, at: string }

export interface SessionView {
  name: string
  url: string
  state: string
  ready: boolean
  notReadyReason: string | null
  connectionType: string | null
  clientId: string | null
  epoch: string
  lastEventId: string | null
  callers: number
  subscriptions: Array<SubscriptionView & { callers: number }>
  buffer: { size: number, capacity: number, firstId: string | null, lastId: string | null }
  counters: Record<string, number>
  lastError: LastError | null
  lastMessageAt: string | null
}

interface Viewable {
  name: string
  config: { url: string }
  readonly epoch: string
  log: { bounds: () => LogBounds }
  stats: SessionStats
  readonly lastError: LastError | null
  lastMessageAt: number | null
  readonly state: string
  readonly callerCount: number
  readonly lastId: string | null
  client: {
    clientId?: string | null
    connectionType?: string | null
    stats: { handshakes: number, reconnects: number, messagesIn: number, messagesOut: number, dropped: number, resubscribeFailures: number }
  }
}

/** Credentials and query values removed: `https://user:pw@h/cometd?token=x` → `https://h/cometd?token=***`. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    for (const key of [...u.searchParams.keys()]) u.searchParams.set(key, '***')
    return u.toString()
  } catch {
    return '(invalid url)'
  }
}

export function sessionView (s: Viewable, subs: SubscriptionView[], callersOf: (pattern: string) => number,
  readiness: { ready: boolean, reason?: string }): SessionView {
  const cs = s.client.stats
  return {
    name: s.name,
    url: redactUrl(s.config.url),
    state: s.state,
    ready: readiness.ready,
    notReadyReason: readiness.ready ? null : readiness.reason ?? null,
    connectionType: s.client.connectionType ?? null,
    clientId: s.client.clientId ?? null,
    epoch: s.epoch,
    lastEventId: s.lastId,
    callers: s.callerCount,
    subscriptions: subs.map((v) => ({ ...v, callers: callersOf(v.channel) })),
    buffer: s.log.bounds(),
    counters: {
      messagesIn: s.stats.eventsIn,
      messagesOut: s.stats.eventsOut,
      callersTotal: s.stats.callersTotal,
      slowCallerDrops: s.stats.slowDrops,
      resumeGaps: s.stats.gaps,
      handshakes: s.stats.handshakes,
      rehandshakes: s.stats.rehandshakes,
      reconnects: s.stats.reconnects,
      publishes: s.stats.publishes,
      publishFailures: s.stats.publishFailures,
      calls: s.stats.calls,
      callFailures: s.stats.callFailures,
      upstreamMessagesIn: cs.messagesIn,
      upstreamMessagesOut: cs.messagesOut,
      upstreamDropped: cs.dropped,
      resubscribeFailures: cs.resubscribeFailures
    },
    lastError: s.lastError,
    lastMessageAt: s.lastMessageAt === null ? null : new Date(s.lastMessageAt).toISOString()
  }
}
