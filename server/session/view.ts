/** The JSON view of a session for GET /sessions[/:name]: state, counters, subscriptions. No secrets. */
import { redactText, redactUrl } from '../../config/redact.js'
import type { SubscriptionView } from '../upstream/subscriptions.js'
import type { LogBounds } from '../event-log/event-log.js'
import type { LastError, LinkStats } from '../upstream/link.js'

/** The session's counters: the link's (upstream) and the session's own (events, callers). */
export interface SessionStats extends LinkStats {
  eventsIn: number
  eventsOut: number
  callersTotal: number
  slowDrops: number
  gaps: number
}

/** Every counter at zero: a new session's, in one process or a cluster. */
export function newSessionStats (): SessionStats {
  return {
    eventsIn: 0, eventsOut: 0, callersTotal: 0, slowDrops: 0, gaps: 0, handshakes: 0, rehandshakes: 0,
    reconnects: 0, publishes: 0, publishFailures: 0, calls: 0, callFailures: 0
  }
}

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

/** The fields every session view starts with (one process or a cluster). */
export function viewHead (s: { name: string, config: { url: string }, readonly state: string }, readiness: { ready: boolean, reason?: string }): Pick<SessionView, 'name' | 'url' | 'state' | 'ready' | 'notReadyReason'> {
  return {
    name: s.name,
    url: redactUrl(s.config.url),
    state: s.state,
    ready: readiness.ready,
    notReadyReason: readiness.ready ? null : readiness.reason ?? null
  }
}

/** The session's own counters (one process or a cluster). */
export function statCounters (stats: SessionStats): Record<string, number> {
  return {
    messagesIn: stats.eventsIn,
    messagesOut: stats.eventsOut,
    callersTotal: stats.callersTotal,
    slowCallerDrops: stats.slowDrops,
    resumeGaps: stats.gaps,
    handshakes: stats.handshakes,
    rehandshakes: stats.rehandshakes,
    reconnects: stats.reconnects,
    publishes: stats.publishes,
    publishFailures: stats.publishFailures,
    calls: stats.calls,
    callFailures: stats.callFailures
  }
}

export function sessionView (s: Viewable, subs: SubscriptionView[], callersOf: (pattern: string) => number,
  readiness: { ready: boolean, reason?: string }): SessionView {
  const cs = s.client.stats
  return {
    ...viewHead(s, readiness),
    connectionType: s.client.connectionType ?? null,
    clientId: s.client.clientId ?? null,
    epoch: s.epoch,
    lastEventId: s.lastId,
    callers: s.callerCount,
    subscriptions: subs.map((v) => ({ ...v, callers: callersOf(v.channel) })),
    buffer: s.log.bounds(),
    counters: {
      ...statCounters(s.stats),
      upstreamMessagesIn: cs.messagesIn,
      upstreamMessagesOut: cs.messagesOut,
      upstreamDropped: cs.dropped,
      resubscribeFailures: cs.resubscribeFailures
    },
    lastError: s.lastError === null ? null : { ...s.lastError, message: redactText(s.lastError.message) },
    lastMessageAt: s.lastMessageAt === null ? null : new Date(s.lastMessageAt).toISOString()
  }
}
