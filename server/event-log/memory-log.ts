/**
 * The in-memory event log: the last `capacity` events of a session in a ring, numbered `<epoch>-<seq>` (replay
 * sessions add the upstream position to the id). A new epoch at every start: ids of an earlier run are unknown.
 */
import { randomBytes } from 'node:crypto'
import type { ReplayPosition } from '../../client-core/index.js'
import { messageFrame } from '../frames.js'
import type { AppendInput, EventLog, LogBounds, LogEntry, ReadResult } from './event-log.js'
import { formatId, parseId } from './resume.js'
import { Ring } from './ring.js'

/** What replay sessions add to the log (replay.ts): ids with the position, duplicates dropped, checkpoints. */
export interface ReplayIds {
  messageId: (epoch: string, seq: number, channel: string, position: ReplayPosition | undefined) => string
  isDuplicate: (channel: string, position: ReplayPosition) => boolean
  pushed: (entry: LogEntry, evicted: LogEntry | undefined) => void
}

export interface MemoryLogOptions {
  replay?: ReplayIds | null
  /** fixed epoch (tests); default: new at every start */
  epoch?: string
}

export class MemoryEventLog implements EventLog {
  readonly epoch: string
  readonly ring: Ring
  readonly #replay: ReplayIds | null
  readonly #followers: Array<(entry: LogEntry) => void> = []
  #seq = 0
  #lastId: string | null = null

  constructor (capacity: number, options: MemoryLogOptions = {}) {
    this.epoch = options.epoch ?? Date.now().toString(36) + randomBytes(3).toString('hex')
    this.ring = new Ring(capacity)
    this.#replay = options.replay ?? null
  }

  get lastSeq (): number { return this.#seq }
  get lastId (): string | null { return this.#lastId }

  append (input: AppendInput): LogEntry | null {
    const { channel, replayId } = input
    const replay = this.#replay
    // replay sessions: an event the ring already holds (a fallback to -2, an overlapping replay) is not taken twice
    if (replay !== null && replayId !== undefined && replay.isDuplicate(channel, replayId)) return null
    const seq = this.#seq + 1
    const id = replay !== null ? replay.messageId(this.epoch, seq, channel, replayId) : formatId(this.epoch, seq)
    const entry: LogEntry = { seq, id, channel, frame: messageFrame(id, channel, input.data, input.ext) }
    if (replayId !== undefined) entry.replayId = replayId
    this.#seq = seq
    this.#lastId = id
    const evicted = this.ring.push(entry)
    // the position is checkpointed only now that the message is in the ring
    replay?.pushed(entry, evicted)
    for (const follower of this.#followers) follower(entry)
    return entry
  }

  read (lastEventId: string, filter: (entry: LogEntry) => boolean): ReadResult {
    const seq = this.#seq
    const first = this.ring.firstSeq
    const firstAvailableId = first === null ? null : formatId(this.epoch, first)
    const currentId = seq === 0 ? null : formatId(this.epoch, seq)
    const parsed = parseId(lastEventId)
    if (parsed === null || parsed.epoch !== this.epoch || parsed.seq > seq) {
      return { entries: [], afterSeq: seq, idSeq: null, gone: { reason: 'unknown-id' }, firstAvailableId, currentId }
    }
    const after = parsed.seq
    const entries = this.ring.since(after, filter)
    const oldestHeld = first ?? seq + 1
    if (after + 1 < oldestHeld) {
      const gone = { reason: 'too-old' as const, missed: oldestHeld - after - 1 }
      return { entries, afterSeq: oldestHeld - 1, idSeq: after, gone, firstAvailableId, currentId }
    }
    return { entries, afterSeq: after, idSeq: after, gone: null, firstAvailableId, currentId }
  }

  since (afterSeq: number, filter?: (entry: LogEntry) => boolean): LogEntry[] {
    return this.ring.since(afterSeq, filter)
  }

  idAt (seq: number): string {
    const entry = this.ring.since(seq - 1, (e) => e.seq === seq)[0]
    return entry !== undefined && entry.seq === seq ? entry.id : formatId(this.epoch, seq)
  }

  follow (listener: (entry: LogEntry) => void): () => void {
    this.#followers.push(listener)
    return () => {
      const i = this.#followers.indexOf(listener)
      if (i >= 0) this.#followers.splice(i, 1)
    }
  }

  bounds (): LogBounds {
    const { firstSeq, lastSeq } = this.ring
    return {
      size: this.ring.size,
      capacity: this.ring.capacity,
      firstId: firstSeq === null ? null : formatId(this.epoch, firstSeq),
      lastId: lastSeq === null ? null : formatId(this.epoch, lastSeq)
    }
  }
}
