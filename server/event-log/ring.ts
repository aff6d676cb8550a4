/**
 * A fixed-capacity ring of log entries with consecutive sequence numbers: the storage of the in-memory event log
 * (memory-log.ts). Grows on demand up to its capacity, then overwrites the oldest.
 */
import type { LogEntry } from './event-log.js'

export type RingEntry = LogEntry

export class Ring {
  readonly capacity: number
  /** grows on demand up to capacity (an idle session costs nothing), then wraps */
  readonly #items: Array<RingEntry | undefined> = []
  #start = 0
  #size = 0

  constructor (capacity: number) {
    this.capacity = Math.max(0, Math.floor(capacity))
  }

  get size (): number { return this.#size }

  /** Sequence number of the oldest entry held, or null when empty. */
  get firstSeq (): number | null { return this.#size === 0 ? null : this.#at(0).seq }

  /** Sequence number of the newest entry held, or null when empty. */
  get lastSeq (): number | null { return this.#size === 0 ? null : this.#at(this.#size - 1).seq }

  /** Appends; sequence numbers must increase by one. Returns the entry pushed out, if any. */
  push (entry: RingEntry): RingEntry | undefined {
    if (this.capacity === 0) return entry
    const last = this.lastSeq
    if (last !== null && entry.seq !== last + 1) throw new Error(`ring: sequence ${entry.seq} after ${last}`)
    if (this.#size < this.capacity) {
      this.#items.push(entry) // not full yet: #start is 0 and the next slot is the end
      this.#size++
      return undefined
    }
    const evicted = this.#items[this.#start]
    this.#items[this.#start] = entry
    this.#start = (this.#start + 1) % this.capacity
    return evicted
  }

  /** Entries with seq > `afterSeq`, oldest first, optionally filtered. */
  since (afterSeq: number, filter?: (entry: RingEntry) => boolean): RingEntry[] {
    const first = this.firstSeq
    if (first === null) return []
    const out: RingEntry[] = []
    const from = Math.max(0, afterSeq + 1 - first)
    for (let i = from; i < this.#size; i++) {
      const entry = this.#at(i)
      if (filter === undefined || filter(entry)) out.push(entry)
    }
    return out
  }

  #at (i: number): RingEntry {
    return this.#items[(this.#start + i) % this.capacity]!
  }
}
