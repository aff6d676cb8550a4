/**
 * What a replica knows of a session's upstream when it does not hold it (the holder's last status in the
 * stream), and the JSON view of a cluster session for GET /sessions[/:name]: the usual fields plus `replicaId`
 * (who answers), `holder` (who holds the lease) and this replica's `lagMs` behind the stream.
 */
import type { SessionConfig } from '../../config/index.js'
import type { SessionStats } from '../session/view.js'
import type { LastError } from '../upstream/link.js'
import { statCounters, viewHead } from '../session/view.js'
import type { SubscriptionView } from '../upstream/subscriptions.js'
import type { ClusterServices } from './replica-parts.js'
import type { Holder } from './holder.js'
import type { Lease } from './lease.js'
import type { RedisStreamLog } from './stream-log.js'

export interface RemoteStatus {
  /** the upstream client's state at the holder: connected, reconnecting, … or unknown */
  state: string
  holder: string | null
}

export interface StatusData { status?: unknown, state?: unknown, holder?: unknown, term?: unknown, mayHaveMissed?: unknown }

export function parseStatus (payload: string): StatusData {
  try {
    const data = JSON.parse(payload) as unknown
    return typeof data === 'object' && data !== null ? data as StatusData : {}
  } catch {
    return {}
  }
}

export function remoteState (previous: RemoteStatus, data: StatusData): RemoteStatus {
  const holder = typeof data.holder === 'string' ? data.holder : previous.holder
  if (data.status === 'up') return { state: 'connected', holder }
  return { state: typeof data.state === 'string' ? data.state : previous.state, holder }
}

interface Viewable {
  name: string
  config: SessionConfig
  stats: SessionStats
  log: RedisStreamLog
  lastMessageAt: number | null
  readonly state: string
  readonly callerCount: number
  readonly holderId: string | null
  readonly lastError: LastError | null
  readonly holder: Holder | null
  readonly lease: Lease | null
}

export interface ClusterSessionView {
  name: string
  url: string
  state: string
  ready: boolean
  notReadyReason: string | null
  replicaId: string
  holder: string | null
  role: 'holder' | 'follower'
  term: number | null
  lagMs: number
  epoch: string
  lastEventId: string | null
  callers: number
  subscriptions: Array<SubscriptionView & { callers: number }> | Array<{ channel: string, callers: number }>
  counters: Record<string, number>
  lastError: LastError | null
  lastMessageAt: string | null
}

export function clusterView (s: Viewable, c: ClusterServices, remote: RemoteStatus, callersOf: (pattern: string) => number,
  readiness: { ready: boolean, reason?: string }): ClusterSessionView {
  const holder = s.holder
  const subscriptions = holder !== null
    ? holder.upstream.subs.view().map((v) => ({ ...v, callers: callersOf(v.channel) }))
    : c.interest.local(s.name).map((channel) => ({ channel, callers: callersOf(channel) }))
  return {
    ...viewHead(s, readiness),
    replicaId: c.redis.replicaId,
    holder: s.holderId,
    role: holder !== null ? 'holder' : 'follower',
    term: s.lease?.term ?? null,
    lagMs: s.log.lagMs,
    epoch: s.log.epoch,
    lastEventId: s.log.lastId,
    callers: s.callerCount,
    subscriptions,
    counters: {
      ...statCounters(s.stats),
      leaseChanges: s.lease?.changes ?? 0,
      appended: holder?.appended ?? 0,
      appendFailures: holder?.appendFailures ?? 0
    },
    lastError: s.lastError,
    lastMessageAt: s.lastMessageAt === null ? null : new Date(s.lastMessageAt).toISOString()
  }
}
