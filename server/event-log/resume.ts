/**
 * Resume planning: given the caller's Last-Event-ID, which buffered messages to replay and whether to announce
 * a gap first. Ids are `<epoch>-<seq>`; the epoch changes on every start of the bridge, so an id from another
 * run (or another session) is "unknown".
 */
import { channelMatches } from '../channels.js'
import type { Ring, RingEntry } from './ring.js'

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
  replay: RingEntry[]
  gap: Gap | null
  /** the stream continues after this sequence number (header Bridge-Last-Event-ID; 0 = from the start) */
  afterSeq: number
}

export interface ResumeContext {
  epoch: string
  /** last sequence number assigned */
  seq: number
  ring: Ring
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

export function planResume (ctx: ResumeContext, lastEventId: string | null, patterns: readonly string[]): ResumePlan {
  if (lastEventId === null || lastEventId === '') return { replay: [], gap: null, afterSeq: ctx.seq }
  const ring = ctx.ring
  const first = ring.firstSeq
  const firstAvailableId = first === null ? null : formatId(ctx.epoch, first)
  const currentId = ctx.seq === 0 ? null : formatId(ctx.epoch, ctx.seq)
  const wanted = (e: RingEntry): boolean => patterns.some((p) => channelMatches(p, e.channel))
  const parsed = parseId(lastEventId)
  if (parsed === null || parsed.epoch !== ctx.epoch || parsed.seq > ctx.seq) {
    return { replay: [], gap: { reason: 'unknown-id', lastEventId, firstAvailableId, currentId }, afterSeq: ctx.seq }
  }
  const after = parsed.seq
  const replay = ring.since(after, wanted)
  const oldestHeld = first ?? ctx.seq + 1
  if (after + 1 < oldestHeld) {
    const missed = oldestHeld - after - 1
    return { replay, gap: { reason: 'too-old', lastEventId, firstAvailableId, currentId, missed }, afterSeq: oldestHeld - 1 }
  }
  const uncovered = patterns.filter((p) => !ctx.coveredSince(p, after))
  if (uncovered.length > 0) {
    return { replay, gap: { reason: 'not-subscribed', lastEventId, firstAvailableId, currentId, channels: uncovered }, afterSeq: after }
  }
  if (ctx.rehandshakeSeq !== null && ctx.rehandshakeSeq >= after) {
    return { replay, gap: { reason: 'rehandshake', lastEventId, firstAvailableId, currentId }, afterSeq: after }
  }
  return { replay, gap: null, afterSeq: after }
}
