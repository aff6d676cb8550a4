/**
 * Resume planning: given the caller's Last-Event-ID, which logged messages to replay and whether to announce a
 * gap first. Ids are `<epoch>-<seq>`; the epoch changes on every start of the bridge, so an id from another run
 * (or another session) is "unknown".
 */
import { channelMatches } from '../channels.js'
import type { EventLog, LogEntry } from './event-log.js'

export type GapReason = 'unknown-id' | 'too-old' | 'not-subscribed' | 'rehandshake' |
  /** replay sessions (replay.ts): the upstream subscription fell back from a refused position since the id */
  'replay-fallback' |
  /** replay sessions (deep-resume.ts): the upstream no longer retains the id's position; what it retains follows */
  'replay-expired'

export interface Gap {
  reason: GapReason
  lastEventId: string
  /** oldest id still buffered, or null */
  firstAvailableId: string | null
  /** newest id assigned so far, or null */
  currentId: string | null
  /** messages known to be missed (too-old: evicted from the buffer, any channel), when known */
  missed?: number
  /** the caller's channels that were not subscribed upstream for the whole time (not-subscribed) */
  channels?: string[]
}

export interface ResumePlan {
  replay: LogEntry[]
  gap: Gap | null
  /** the stream continues after this sequence number (header Bridge-Last-Event-ID; 0 = from the start) */
  afterSeq: number
}

export interface ResumeContext {
  log: EventLog
  /** `seq` when the last re-handshake happened (messages after it may have been missed), null if none */
  rehandshakeSeq: number | null
  /** is `pattern` covered by an upstream subscription confirmed at or before `seq`? */
  coveredSince: (pattern: string, seq: number) => boolean
}

export function formatId (epoch: string, seq: number): string {
  return `${epoch}-${seq}`
}

export function parseId (id: string): { epoch: string, seq: number } | null {
  // replay sessions append `.<replayId>.<channel hash>` (replay.ts); the ring position is the same
  const m = /^([a-z0-9]{1,32})-(\d{1,15})(?:\.(?:\d{1,16}|s[A-Za-z0-9_-]{1,64})\.[a-z0-9]{1,8})?$/.exec(id)
  if (m === null) return null
  return { epoch: m[1]!, seq: Number(m[2]) }
}

/**
 * The log says what it still has after the id (or that the id is unknown or too old); the upstream side adds
 * what the log cannot know: a channel not subscribed upstream the whole time, or a re-handshake since the id.
 */
export function planResume (ctx: ResumeContext, lastEventId: string | null, patterns: readonly string[]): ResumePlan {
  if (lastEventId === null || lastEventId === '') return { replay: [], gap: null, afterSeq: ctx.log.lastSeq }
  const read = ctx.log.read(lastEventId, (e) => patterns.some((p) => channelMatches(p, e.channel)))
  const base = { lastEventId, firstAvailableId: read.firstAvailableId, currentId: read.currentId }
  const replay = read.entries
  if (read.gone !== null) {
    return { replay, gap: { reason: read.gone.reason, ...base, ...(read.gone.missed !== undefined ? { missed: read.gone.missed } : {}) }, afterSeq: read.afterSeq }
  }
  const after = read.afterSeq
  const uncovered = patterns.filter((p) => !ctx.coveredSince(p, after))
  if (uncovered.length > 0) {
    return { replay, gap: { reason: 'not-subscribed', ...base, channels: uncovered }, afterSeq: after }
  }
  if (ctx.rehandshakeSeq !== null && ctx.rehandshakeSeq >= after) {
    return { replay, gap: { reason: 'rehandshake', ...base }, afterSeq: after }
  }
  return { replay, gap: null, afterSeq: after }
}
