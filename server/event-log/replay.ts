/**
 * Salesforce replay for one bridge session (`replay.enabled`): the client-core `ReplayExtension` of the upstream
 * client, durable checkpoints (checkpoint.ts), the replay position of every ring entry, and resume decisions
 * that use them.
 *
 * Event ids of a replay session carry the upstream position: `<epoch>-<seq>.<replayId>.<channel hash>`
 * (`mwyo4f0746f353-62.1056.1x2k9ab`). `<epoch>-<seq>` is the usual ring position; the suffix is the message's
 * replayId and a short hash of its channel, so that an id stays meaningful after the bridge restarts (new epoch)
 * or after the ring evicted it. For a stream on ONE exact channel, a resume then works from the upstream position:
 *
 *   1. the position is in the ring (or is the position the session subscribed from at start-up): the ring
 *      serves what follows, whatever the epoch — across a restart too;
 *   2. otherwise the upstream still may have it: deep resume (deep-resume.ts) replays from the upstream into that
 *      caller until it meets the live stream;
 *   3. no position at all (id from another run without suffix, several channels, wildcards): the usual `gap`.
 *
 * Streams on several channels or on wildcard patterns resume from the ring only (positions are per channel,
 * opaque, and Salesforce does not replay wildcard subscriptions).
 */
import { ReplayExtension, replayIdOf } from '../../client-core/index.js'
import type { Logger, Message, ReplayFallback, ReplayPolicy, ReplayPosition } from '../../client-core/index.js'
import type { ReplayConfig } from '../../config/index.js'
import { channelMatches, isWildcard } from '../channels.js'
import { CheckpointStore } from './checkpoint.js'
import type { CheckpointView, LoadResult } from './checkpoint.js'
import type { Gap, ResumePlan } from './resume.js'
import { formatId } from './resume.js'
import type { Ring, RingEntry } from './ring.js'

export interface FallbackRecord extends ReplayFallback {
  at: string
  /** session sequence number when it happened */
  seq: number
}

export type ReplayDecision =
  /** serve from the ring: entries of `channel` after `afterSeq`, with `gap` first when set */
  | { kind: 'ring', channel: string, afterSeq: number, gap: Gap | null }
  /** replay from the upstream at `position`, then join the live stream */
  | { kind: 'deep', channel: string, position: ReplayPosition, anchorSeq: number }

// ---------------------------------------------------------------- ids

/** FNV-1a (32 bit) of the channel, base 36: a short check that a position belongs to the stream's channel. */
const hashes = new Map<string, string>()

export function channelHash (channel: string): string {
  const known = hashes.get(channel)
  if (known !== undefined) return known
  if (hashes.size >= 10_000) hashes.clear()
  const hash = fnv1a(channel)
  hashes.set(channel, hash)
  return hash
}

function fnv1a (channel: string): string {
  let h = 0x811c9dc5
  for (let i = 0; i < channel.length; i++) {
    h ^= channel.charCodeAt(i)
    h = Math.imul(h, 0x01000193) >>> 0
  }
  return h.toString(36)
}

/** `.<replayId>.<hash>` for a position that fits an id (non-negative integer, or a short token string). */
export function replaySuffix (position: ReplayPosition, channel: string): string {
  if (typeof position === 'number') {
    if (!Number.isSafeInteger(position) || position < 0) return ''
    return `.${position}.${channelHash(channel)}`
  }
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(position)) return ''
  return `.s${position}.${channelHash(channel)}`
}

export interface ParsedReplayId {
  epoch: string
  seq: number
  position?: ReplayPosition
  hash?: string
}

const ID_RE = /^([a-z0-9]{1,32})-(\d{1,15})(?:\.(\d{1,16}|s[A-Za-z0-9_-]{1,64})\.([a-z0-9]{1,8}))?$/

export function parseReplayId (id: string): ParsedReplayId | null {
  const m = ID_RE.exec(id)
  if (m === null) return null
  const out: ParsedReplayId = { epoch: m[1]!, seq: Number(m[2]) }
  if (m[3] !== undefined && m[4] !== undefined) {
    const raw = m[3]
    if (raw.startsWith('s')) out.position = raw.slice(1)
    else {
      const n = Number(raw)
      if (Number.isSafeInteger(n)) out.position = n
    }
    if (out.position !== undefined) out.hash = m[4]
  }
  return out
}

function key (channel: string, position: ReplayPosition): string {
  return `${channel}\u0000${typeof position}:${String(position)}`
}

export function positionKey (position: ReplayPosition): string {
  return `${typeof position}:${String(position)}`
}

function isPolicy (position: ReplayPosition): boolean {
  return typeof position === 'number' && position < 0
}

// ---------------------------------------------------------------- the session part

export interface ReplaySupportOptions {
  session: string
  /** the upstream URL without credentials or query values (recorded in the checkpoint) */
  url: string
  config: ReplayConfig
  dataDir: string
  checkpointIntervalMs: number
  bufferSize: number
  log: Logger
  /** the session's current sequence number */
  currentSeq: () => number
  /** the upstream client fell back from a refused position */
  onFallback: (record: FallbackRecord) => void
}

export interface ReplayView {
  enabled: true
  start: ReplayPolicy
  fallback: ReplayPolicy
  /** last position per channel whose message reached the ring (what the checkpoint stores) */
  positions: Record<string, ReplayPosition>
  checkpoint: CheckpointView
  fallbacks: { count: number, last: FallbackRecord[] }
  duplicatesDropped: number
  deepResume: { enabled: boolean, maxClients: number, active: number, started: number, joined: number, failed: number, busy: number, replayedEvents: number }
}

export class ReplaySupport {
  readonly config: ReplayConfig
  readonly extension: ReplayExtension
  readonly checkpoint: CheckpointStore
  readonly loaded: LoadResult
  readonly deepStats = { active: 0, started: 0, joined: 0, failed: 0, busy: 0, replayedEvents: 0 }
  /** upstream events dropped because the ring already held them */
  duplicatesDropped = 0
  readonly #o: ReplaySupportOptions
  /** position the session subscribed from at start-up (from the checkpoint), per channel: "seq 0" */
  readonly #seeds = new Map<string, ReplayPosition>()
  /** channel + position → seq, for every ring entry that has a position */
  readonly #index = new Map<string, number>()
  /** highest seq of an evicted ring entry, per channel */
  readonly #evictedMax = new Map<string, number>()
  /** seq at the last fallback, per channel */
  readonly #fallbackSeq = new Map<string, number>()
  readonly #fallbacks: FallbackRecord[] = []
  #fallbackCount = 0

  constructor (options: ReplaySupportOptions) {
    this.#o = options
    // a deep resume joins the live stream through the ring: none without one
    this.config = { ...options.config, deepResume: options.config.deepResume && options.bufferSize > 0 }
    this.checkpoint = new CheckpointStore({
      dataDir: options.dataDir,
      session: options.session,
      url: options.url,
      intervalMs: options.checkpointIntervalMs,
      log: options.log
    })
    this.loaded = this.checkpoint.load()
    for (const [channel, position] of Object.entries(this.loaded.positions)) {
      if (!isPolicy(position)) this.#seeds.set(channel, position)
    }
    this.extension = new ReplayExtension({
      positions: this.loaded.positions,
      start: this.config.start,
      fallback: this.config.fallback,
      onFallback: (e) => { this.#onFallback(e) }
    })
  }

  #onFallback (e: ReplayFallback): void {
    const seq = this.#o.currentSeq()
    this.#fallbackSeq.set(e.channel, seq)
    // the start-up position was refused: it no longer marks "seq 0" of this run
    if (this.#seeds.get(e.channel) === e.refused) this.#seeds.delete(e.channel)
    const record: FallbackRecord = { ...e, at: new Date().toISOString(), seq }
    this.#fallbackCount++
    this.#fallbacks.push(record)
    if (this.#fallbacks.length > 10) this.#fallbacks.shift()
    this.#o.onFallback(record)
  }

  /** The replay position of an upstream message, if it has one. */
  positionOf (message: Message): ReplayPosition | undefined {
    return replayIdOf(message)
  }

  /** The event id of a message: `<epoch>-<seq>` plus the replay suffix when it has a position. */
  messageId (epoch: string, seq: number, channel: string, position: ReplayPosition | undefined): string {
    return formatId(epoch, seq) + (position === undefined ? '' : replaySuffix(position, channel))
  }

  /** The message is in the ring: index it, forget what the ring evicted, and checkpoint its position. */
  pushed (entry: RingEntry, evicted: RingEntry | undefined): void {
    if (evicted !== undefined && evicted !== entry) {
      const prev = this.#evictedMax.get(evicted.channel) ?? 0
      if (evicted.seq > prev) this.#evictedMax.set(evicted.channel, evicted.seq)
      if (evicted.replayId !== undefined) {
        const k = key(evicted.channel, evicted.replayId)
        if (this.#index.get(k) === evicted.seq) this.#index.delete(k)
      }
    }
    if (entry.replayId === undefined) return
    if (evicted !== entry) this.#index.set(key(entry.channel, entry.replayId), entry.seq)
    else {
      // bufferSize 0: nothing is held
      const prev = this.#evictedMax.get(entry.channel) ?? 0
      if (entry.seq > prev) this.#evictedMax.set(entry.channel, entry.seq)
    }
    this.checkpoint.set(entry.channel, entry.replayId)
  }

  /** The ring already holds this event (same channel, same replayId): counted and dropped by the session. */
  isDuplicate (channel: string, position: ReplayPosition): boolean {
    if (!this.#index.has(key(channel, position))) return false
    this.duplicatesDropped++
    return true
  }

  /** Where `position` of `channel` is in this run: a ring entry, or the start-up position (seq 0). */
  seqOf (channel: string, position: ReplayPosition): { seq: number, inRing: boolean } | undefined {
    const seq = this.#index.get(key(channel, position))
    if (seq !== undefined) return { seq, inRing: true }
    const seed = this.#seeds.get(channel)
    if (seed !== undefined && positionKey(seed) === positionKey(position)) return { seq: 0, inRing: false }
    return undefined
  }

  /** Does the ring still hold every entry of `channel` after `seq`? */
  covers (channel: string, seq: number): boolean {
    const evicted = this.#evictedMax.get(channel)
    return evicted === undefined || evicted <= seq
  }

  /** Did the upstream subscription of `channel` fall back (possible loss) after `seq`? */
  fallbackAfter (channel: string, seq: number): boolean {
    const at = this.#fallbackSeq.get(channel)
    return at !== undefined && at >= seq
  }

  /**
   * A better answer than the ring's for a resume the ring could not serve (`base.gap` set), for a stream on one
   * exact channel. null: keep `base`.
   */
  resolve (lastEventId: string | null, patterns: readonly string[], base: ResumePlan, ctx: { epoch: string, seq: number, ring: Ring }): ReplayDecision | null {
    if (base.gap === null || lastEventId === null || lastEventId === '') return null
    if (patterns.length !== 1) return null
    const channel = patterns[0]!
    if (isWildcard(channel)) return null
    const parsed = parseReplayId(lastEventId)
    if (parsed === null) return null
    let position: ReplayPosition | undefined
    if (parsed.position !== undefined && parsed.hash === channelHash(channel)) {
      position = parsed.position
    } else if (parsed.epoch === ctx.epoch && parsed.seq <= ctx.seq) {
      position = this.#positionAt(channel, parsed.seq, ctx.ring)
    }
    if (position === undefined) return null
    const hit = this.seqOf(channel, position)
    const gapBase = { lastEventId, firstAvailableId: firstId(ctx), currentId: ctx.seq === 0 ? null : formatId(ctx.epoch, ctx.seq) }
    if (hit !== undefined && this.covers(channel, hit.seq)) {
      const gap: Gap | null = this.fallbackAfter(channel, hit.seq)
        ? { reason: 'replay-fallback', ...gapBase, channels: [channel] }
        : null
      return { kind: 'ring', channel, afterSeq: hit.seq, gap }
    }
    if (this.config.deepResume && !isPolicy(position)) {
      return { kind: 'deep', channel, position, anchorSeq: parsed.epoch === ctx.epoch && parsed.seq <= ctx.seq ? parsed.seq : 0 }
    }
    return null
  }

  /** The position of `channel` at `seq` of this run, when the ring (or the start-up position) still tells it. */
  #positionAt (channel: string, seq: number, ring: Ring): ReplayPosition | undefined {
    const first = ring.firstSeq
    if (first !== null && first <= seq) {
      const held = ring.since(first - 1, (e) => e.channel === channel && e.seq <= seq)
      const last = held[held.length - 1]
      if (last !== undefined) return last.replayId
    }
    // nothing of the channel held up to seq: only known when nothing of it was ever evicted
    if (this.#evictedMax.has(channel)) return undefined
    return this.#seeds.get(channel)
  }

  /** Ring entries of a one-channel stream after `afterSeq`. */
  ringEntries (ring: Ring, channel: string, afterSeq: number): RingEntry[] {
    return ring.since(afterSeq, (e) => channelMatches(channel, e.channel))
  }

  async close (): Promise<void> {
    await this.checkpoint.close()
  }

  view (): ReplayView {
    return {
      enabled: true,
      start: this.config.start,
      fallback: this.config.fallback,
      positions: Object.fromEntries(this.checkpoint.positions),
      checkpoint: this.checkpoint.view(),
      fallbacks: { count: this.#fallbackCount, last: [...this.#fallbacks] },
      duplicatesDropped: this.duplicatesDropped,
      deepResume: { enabled: this.config.deepResume, maxClients: this.config.deepResumeMaxClients, ...this.deepStats }
    }
  }
}

function firstId (ctx: { epoch: string, ring: Ring }): string | null {
  const first = ctx.ring.firstSeq
  return first === null ? null : formatId(ctx.epoch, first)
}
