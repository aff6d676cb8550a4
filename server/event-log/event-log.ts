/**
 * The event log: where a session's upstream events are kept, numbered and read back. The hub never looks inside
 * it: it follows the tail (`follow`) and asks for what a resuming caller missed (`read`). The in-memory ring
 * (memory-log.ts) is the first implementation; a shared log for several bridge replicas drops in behind the same
 * interface.
 */
import type { ReplayPosition } from '../../client-core/index.js'
import type { Frame } from '../frames.js'

/** One event as the log keeps it: numbered, with its caller-facing id and its frame serialized once. */
export interface LogEntry {
  /** position in this log; consecutive within one run of the log */
  seq: number
  /** the id callers see (SSE `id:`), unique across runs of the log */
  id: string
  channel: string
  /** the message frame (SSE `id: …\nevent: message\ndata: …`; rendered once per caller format) */
  frame: Frame
  /** replay sessions: the upstream replay position of the message (`data.event.replayId`) */
  replayId?: ReplayPosition
}

/** What the log is given: one upstream message. */
export interface AppendInput {
  channel: string
  data: unknown
  ext?: unknown
  replayId?: ReplayPosition | undefined
}

/** Why an id cannot be served: unknown to this log (another run, another session, garbage) or no longer kept. */
export type GoneReason = 'unknown-id' | 'too-old'

export interface ReadResult {
  /** the entries after the id (after the oldest kept when it is gone) that passed the filter, oldest first */
  entries: LogEntry[]
  /** the stream continues after this position (the id's own, or the newest one already gone) */
  afterSeq: number
  /** the position of the id itself; null when the log does not know it */
  idSeq: number | null
  gone: { reason: GoneReason, missed?: number } | null
  /** oldest id still kept, or null */
  firstAvailableId: string | null
  /** newest id assigned so far, or null */
  currentId: string | null
}

export interface LogBounds { size: number, capacity: number, firstId: string | null, lastId: string | null }

export interface EventLog {
  /** changes with every run of the log: ids of another run are unknown */
  readonly epoch: string
  /** position of the newest entry (0 before the first) */
  readonly lastSeq: number
  /** id of the newest entry, or null */
  readonly lastId: string | null
  /** Numbers and keeps one upstream message and tells the followers; null when the log drops it as a duplicate. */
  append: (input: AppendInput) => LogEntry | null
  /** What a caller that has `lastEventId` missed on the channels `filter` accepts. */
  read: (lastEventId: string, filter: (entry: LogEntry) => boolean) => ReadResult
  /** Kept entries after `afterSeq` that pass `filter`, oldest first. */
  since: (afterSeq: number, filter?: (entry: LogEntry) => boolean) => LogEntry[]
  /** The id of the entry at `seq` (its full id while kept). */
  idAt: (seq: number) => string
  /** Calls `listener` with every entry appended from now on, in order. Returns the unfollow function. */
  follow: (listener: (entry: LogEntry) => void) => () => void
  bounds: () => LogBounds
}
