/**
 * A session's shared event log as one replica reads it: the Redis stream (stream-format.ts) fed to this replica's
 * followers by the replica's one reader loop (stream-reader.ts), a short local tail of what was delivered, and
 * resume reads from any id.
 *
 * A resume read answers like the in-memory log (event-log.ts): `unknown-id` (another epoch: Redis lost its data,
 * or an id this stream never had), `too-old` (entries after the id were trimmed: XINFO's max-deleted-entry-id is
 * past it), plus what only the stream can tell: a holder change or re-handshake that may have lost events
 * (`mayHaveMissed`), and patterns that were not subscribed upstream the whole time since the id.
 *
 * A read ends exactly where the live tail continues: entries up to this replica's read position at the moment the
 * read resolves (the rest come through `follow`), so a caller routed in the same turn neither misses nor repeats.
 */
import type { GoneReason, LogEntry } from '../event-log/event-log.js'
import { patternCovers } from '../channels.js'
import { sseFrame } from '../frames.js'
import type { RedisLink } from './redis.js'
import { ClusterError, ClusterErrorCode } from './errors.js'
import { sessionKeys } from './append.js'
import type { SessionKeys } from './append.js'
import { compareStreamIds, formatClusterId, parseClusterId, parseEntry, streamIdTime } from './stream-format.js'
import type { RawEntry, StreamEntry } from './stream-format.js'

/** One delivered entry: messages are LogEntries (with their frame), `u`/`x` entries carry their payload. */
export interface ClusterEntry extends LogEntry {
  kind: StreamEntry['kind']
  streamId: string
  payload: string
}

export interface ClusterRead {
  /** messages after the id (after the oldest kept when it is gone) that passed the filter, oldest first */
  entries: LogEntry[]
  gone: { reason: GoneReason } | null
  /** the stream continues after this id; null when nothing was ever logged */
  afterId: string | null
  firstAvailableId: string | null
  currentId: string | null
  /** a holder change or re-handshake since the id may have lost events */
  mayHaveMissed: boolean
  /** requested patterns no upstream subscription covered for the whole time since the id */
  uncovered: string[]
}

export interface StreamInfo { length: number, lastGenerated: string, maxDeleted: string, firstId: string | null }

const PAGE = 1_000
const CATCH_UP_ROUNDS = 3

export class RedisStreamLog {
  readonly session: string
  readonly keys: SessionKeys
  readonly #link: RedisLink
  readonly #capacity: number
  readonly #followers: Array<(entry: ClusterEntry) => void> = []
  readonly #resetListeners: Array<(previousId: string | null) => void> = []
  readonly #lossListeners: Array<(missed: number, previousId: string | null) => void> = []
  /** the number (`n`) of the last entry delivered, 0 before the first */
  #lastN = 0
  /** the last stream id delivered to the followers ('0-0' before the first) */
  #position = '0-0'
  /** the tail is complete after this stream id (the oldest entry dropped from it, or where reading began) */
  #tailFrom = '0-0'
  readonly #tail: ClusterEntry[] = []
  #seq = 0
  #lastId: string | null = null
  /** Redis clock of the newest entry read vs this replica's clock when it was read */
  lagMs = 0

  constructor (link: RedisLink, session: string, tailCapacity: number) {
    this.session = session
    this.#link = link
    this.keys = sessionKeys(link, session)
    this.#capacity = Math.max(100, tailCapacity)
  }

  get epoch (): string { return this.#link.epoch }
  /** entries of the local tail (the newest ones delivered, kept to join resume reads to the live tail) */
  get tailSize (): number { return this.#tail.length }
  get position (): string { return this.#position }
  get lastSeq (): number { return this.#seq }
  /** caller-facing id of the newest entry delivered, or null */
  get lastId (): string | null { return this.#lastId }

  follow (listener: (entry: ClusterEntry) => void): () => void {
    this.#followers.push(listener)
    return () => {
      const i = this.#followers.indexOf(listener)
      if (i >= 0) this.#followers.splice(i, 1)
    }
  }

  /** The stream this replica read is gone (Redis lost its data): `listener` gets the last id delivered before. */
  onReset (listener: (previousId: string | null) => void): void {
    this.#resetListeners.push(listener)
  }

  /** Entries were trimmed before this replica read them (it fell more than streamMaxLen behind). */
  onLoss (listener: (missed: number, previousId: string | null) => void): void {
    this.#lossListeners.push(listener)
  }

  /** Where live reading starts: after the newest entry of the stream now. */
  async load (): Promise<void> {
    const newest = await this.#link.send(['XREVRANGE', this.keys.stream, '+', '-', 'COUNT', '1']) as RawEntry[]
    const parsed = newest[0] === undefined ? null : parseEntry(newest[0])
    this.#position = this.#tailFrom = parsed?.streamId ?? '0-0'
    this.#lastN = parsed?.n ?? 0
    if (parsed !== null) this.#lastId = formatClusterId(this.epoch, parsed.streamId)
  }

  /** Redis lost its data: read the new stream from its start; followers hear of it first. */
  reset (): void {
    const previous = this.#lastId
    this.#position = this.#tailFrom = '0-0'
    this.#tail.length = 0
    this.#lastId = null
    this.#lastN = 0
    for (const fn of this.#resetListeners) fn(previous)
  }

  /** Entries the reader loop got for this stream, in order. */
  ingest (raw: RawEntry[]): void {
    const now = Date.now()
    for (const item of raw) {
      const parsed = parseEntry(item)
      if (parsed === null || compareStreamIds(parsed.streamId, this.#position) <= 0) continue
      if (this.#lastN > 0 && parsed.n > this.#lastN + 1) {
        for (const fn of this.#lossListeners) fn(parsed.n - this.#lastN - 1, this.#lastId)
      }
      if (parsed.n > 0) this.#lastN = parsed.n
      const entry = this.#entry(parsed, ++this.#seq)
      this.#position = parsed.streamId
      this.#lastId = entry.id
      this.lagMs = Math.max(0, now - streamIdTime(parsed.streamId))
      this.#tail.push(entry)
      if (this.#tail.length > this.#capacity) this.#tailFrom = this.#tail.shift()!.streamId
      for (const follower of this.#followers) follower(entry)
    }
  }

  /** What a caller that has `lastEventId` missed on the channels `filter` accepts (see the file comment). */
  async readFrom (lastEventId: string, filter: (channel: string) => boolean, patterns: readonly string[]): Promise<ClusterRead> {
    const parsed = parseClusterId(lastEventId)
    const epoch = this.epoch
    if (parsed === null || parsed.epoch !== epoch) return this.#unknown()
    const [info, subs] = await Promise.all([this.info(), this.#subscriptions()])
    if (this.epoch !== epoch || compareStreamIds(parsed.streamId, info.lastGenerated) > 0) return this.#unknown()
    const firstAvailableId = info.firstId === null ? null : formatClusterId(epoch, info.firstId)
    const trimmed = isTrimmed(parsed.streamId, info)
    const rows = await this.#range(trimmed ? '-' : `(${parsed.streamId}`)
    if (rows === null) throw new ClusterError(ClusterErrorCode.TIMEOUT, `the stream of ${this.session} moves faster than it can be read`)
    const entries: LogEntry[] = []
    let mayHaveMissed = false
    for (const row of rows) {
      if (row.kind === 'm') {
        if (filter(row.channel)) entries.push(row)
      } else if (row.kind === 'u' && !trimmed && /"mayHaveMissed":true/.test(row.payload)) {
        mayHaveMissed = true
      }
    }
    const result = { entries, firstAvailableId, currentId: this.#lastId, mayHaveMissed, uncovered: [] as string[] }
    if (trimmed) {
      const before = info.firstId === null ? info.lastGenerated : previousId(info.firstId)
      return { ...result, gone: { reason: 'too-old' }, afterId: formatClusterId(epoch, before) }
    }
    const uncovered = patterns.filter((p) => ![...subs].some(([q, since]) => patternCovers(q, p) && compareStreamIds(since, parsed.streamId) <= 0))
    return { ...result, gone: null, afterId: lastEventId, uncovered }
  }

  /** XINFO STREAM, or an empty stream when it does not exist (yet). */
  async info (): Promise<StreamInfo> {
    let flat: unknown[]
    try {
      flat = await this.#link.send(['XINFO', 'STREAM', this.keys.stream]) as unknown[]
    } catch (err) {
      if (err instanceof Error && /no such key/i.test(err.message)) return { length: 0, lastGenerated: '0-0', maxDeleted: '0-0', firstId: null }
      throw err
    }
    const f = new Map<string, unknown>()
    for (let i = 0; i + 1 < flat.length; i += 2) f.set(String(flat[i]), flat[i + 1])
    const first = f.get('first-entry') as RawEntry | null | undefined
    return {
      length: Number(f.get('length') ?? 0),
      lastGenerated: String(f.get('last-generated-id') ?? '0-0'),
      maxDeleted: String(f.get('max-deleted-entry-id') ?? '0-0'),
      firstId: Array.isArray(first) ? String(first[0]) : null
    }
  }

  #unknown (): ClusterRead {
    return { entries: [], gone: { reason: 'unknown-id' }, afterId: this.#lastId, firstAvailableId: null, currentId: this.#lastId, mayHaveMissed: false, uncovered: [] }
  }

  async #subscriptions (): Promise<Map<string, string>> {
    const flat = await this.#link.send(['HGETALL', this.keys.subs]) as string[]
    const out = new Map<string, string>()
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(String(flat[i]), String(flat[i + 1]))
    return out
  }

  /**
   * The stream from `start` (an XRANGE bound) up to this replica's read position at the moment it resolves:
   * pages from Redis, then the local tail for what the reader loop delivered meanwhile. null when the reader
   * outran the pages several times over.
   */
  async #range (start: string): Promise<ClusterEntry[] | null> {
    const out: ClusterEntry[] = []
    let cursor = start
    let lastFetched = start === '-' ? '0-0' : start.slice(1)
    for (let round = 0; round < CATCH_UP_ROUNDS; round++) {
      const maxPages = Math.ceil(this.#link.config.streamMaxLen / PAGE) + 1
      for (let page = 0; page < maxPages; page++) {
        const rows = await this.#link.send(['XRANGE', this.keys.stream, cursor, '+', 'COUNT', String(PAGE)]) as RawEntry[]
        for (const raw of rows) {
          const parsed = parseEntry(raw)
          if (parsed !== null) out.push(this.#entry(parsed, 0))
          lastFetched = raw[0]
        }
        cursor = `(${lastFetched}`
        if (rows.length < PAGE || compareStreamIds(lastFetched, this.#position) >= 0) break
      }
      // synchronous from here: the position cannot move until this read has resolved
      const position = this.#position
      while (out.length > 0 && compareStreamIds(out[out.length - 1]!.streamId, position) > 0) out.pop()
      if (compareStreamIds(lastFetched, position) >= 0) return out
      if (compareStreamIds(lastFetched, this.#tailFrom) >= 0) {
        for (const e of this.#tail) if (compareStreamIds(e.streamId, lastFetched) > 0) out.push(e)
        return out
      }
    }
    return null
  }

  #entry (parsed: StreamEntry, seq: number): ClusterEntry {
    const id = formatClusterId(this.epoch, parsed.streamId)
    const entry: ClusterEntry = {
      seq,
      id,
      channel: parsed.channel,
      kind: parsed.kind,
      streamId: parsed.streamId,
      payload: parsed.payload,
      // the holder serialized the frame's data once: every replica uses that text
      frame: sseFrame(parsed.kind === 'm' ? 'message' : 'upstream', parsed.payload, parsed.kind === 'm' ? id : undefined)
    }
    if (parsed.replayId !== undefined) entry.replayId = parsed.replayId
    return entry
  }
}

/**
 * Were entries after `streamId` deleted? MAXLEN trimming does not move max-deleted-entry-id (Redis 7.0: only XDEL
 * does), so an id older than the first entry kept counts as trimmed: exact but for the one id right before the
 * first kept entry, which then gets a `too-old` gap although nothing after it was lost (never the other way).
 */
function isTrimmed (streamId: string, info: StreamInfo): boolean {
  if (compareStreamIds(streamId, info.maxDeleted) < 0) return true
  if (info.firstId !== null) return compareStreamIds(streamId, info.firstId) < 0
  return compareStreamIds(streamId, info.lastGenerated) < 0
}

/** The id just before `id` (`<ms>-<n-1>`, or the end of the previous millisecond). */
function previousId (id: string): string {
  const [ms, n] = id.split('-').map((x) => BigInt(x)) as [bigint, bigint]
  if (n > 0n) return `${ms}-${n - 1n}`
  return ms > 0n ? `${ms - 1n}-18446744073709551615` : '0-0'
}
