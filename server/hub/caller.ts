/**
 * One streaming caller (SSE, NDJSON or WebSocket): its own bounded byte queue in front of the socket and a write
 * deadline. Writing never blocks the session: frames are queued and handed to the socket at the end of the
 * event-loop turn (all callers in one pass, the frames of the turn joined into one write, shared by the callers
 * that queued the same frames), and stay queued while the socket does not take them. A caller that falls behind
 * (queue over `maxQueueBytes`, or the socket not draining within `writeTimeoutMs`) gets a final `slow` event
 * carrying the id of the last message written to it, and is closed (WebSocket: close code 1013). The framing is
 * the sink's (sinks.ts): one queue/deadline implementation for all.
 */
import type { ServerResponse } from 'node:http'
import type { CallerFormat, Frame } from '../frames.js'
import { HttpSink } from './sinks.js'
import type { CallerSink } from './sinks.js'
import { sseFrame } from '../frames.js'
import { PassJoins, runEnd } from './joins.js'

export interface CallerOptions {
  maxQueueBytes: number
  writeTimeoutMs: number
  heartbeatMs: number
  retryMs: number
}

export type CloseReason = 'client' | 'slow' | 'shutdown' | 'error' | 'discarded'
export type SlowReason = 'queue-full' | 'write-timeout'

let nextCallerId = 1
/** what Caller.#span measured last: module scratch, so that no object is made per write */
let spanBytes = 0
let spanCounted = 0
let spanId: string | undefined

export class Caller {
  readonly id = nextCallerId++
  readonly createdAt = Date.now()
  readonly format: CallerFormat
  /** highest message sequence number queued to this caller (fan-out dedupe across patterns) */
  lastSeq = 0
  readonly #patterns: string[]
  readonly #sink: CallerSink
  readonly #options: CallerOptions
  /**
   * The queue, as parallel arrays [#head, #tail) reused from turn to turn (no object per frame, no new array per
   * turn): bytes, the last message id in them, the bytes of them that count toward `maxQueueBytes`.
   */
  readonly #bufs: Array<Buffer | undefined> = []
  readonly #ids: Array<string | undefined> = []
  readonly #counted: number[] = []
  #head = 0
  #tail = 0
  /**
   * Frames below this index were queued while the socket could not take them (not started, or write() refused
   * and no 'drain' yet): they are handed over until it refuses again. Frames queued while it was taking bytes are
   * all handed over at the end of the turn.
   */
  #heldEnd = 0
  /**
   * The first entry queued in this turn. At the end of a turn in which the socket does not take bytes, the turn's
   * frames become one held entry (the joined Buffer, shared with every caller that queued the same frames): a
   * backlog costs one entry per turn, not one per message.
   */
  #turnFrom = 0
  #queuedBytes = 0
  #maxQueuedBytes = 0
  #started = false
  #waitingDrain = false
  /** in the pending flush pass (Caller.#dirty) */
  #dirty = false
  #closed = false
  #closeReason: CloseReason | null = null
  #slowReason: SlowReason | null = null
  #lastWrittenId: string | null
  #lastWriteAt = Date.now()
  #drainTimer: NodeJS.Timeout | null = null
  #heartbeat: NodeJS.Timeout | null = null
  readonly #onClose: (caller: Caller, reason: CloseReason) => void

  /**
   * Callers with frames to write, flushed together once per event-loop turn (one setImmediate for all callers,
   * after the I/O of the turn): the frames one upstream payload — or several — brought leave in one write per
   * caller, and callers with the same frames queued write the same joined Buffer.
   */
  static readonly #dirtyCallers: Caller[] = []
  static #dirtyCount = 0
  static #passScheduled = false
  /** joined runs of the flush pass in progress */
  static readonly #joins = new PassJoins()

  static #schedule (caller: Caller): void {
    caller.#dirty = true
    Caller.#dirtyCallers[Caller.#dirtyCount++] = caller
    if (!Caller.#passScheduled) {
      Caller.#passScheduled = true
      setImmediate(Caller.#pass)
    }
  }

  static readonly #pass = (): void => {
    Caller.#passScheduled = false
    const list = Caller.#dirtyCallers
    const now = Date.now()
    let i = 0
    try {
      // callers made dirty during the pass (a close that announces something) are flushed in it too
      for (; i < Caller.#dirtyCount; i++) {
        const caller = list[i]!
        caller.#dirty = false
        caller.#endTurn(now)
      }
    } finally {
      for (; i < Caller.#dirtyCount; i++) list[i]!.#dirty = false
      list.fill(undefined as unknown as Caller, 0, Caller.#dirtyCount)
      Caller.#dirtyCount = 0
      Caller.#joins.clear()
    }
  }

  /** `target`: an HTTP response (streamed as SSE) or any sink (NDJSON response, WebSocket). */
  constructor (target: ServerResponse | CallerSink, patterns: readonly string[], options: CallerOptions, lastEventId: string | null,
    onClose: (caller: Caller, reason: CloseReason) => void) {
    const sink = isSink(target) ? target : new HttpSink(target, 'sse')
    this.#sink = sink
    this.format = sink.format
    this.#patterns = [...patterns]
    this.#options = options
    this.#lastWrittenId = lastEventId
    this.#onClose = onClose
    sink.onClose(() => { this.#finish('client') })
    sink.onError(() => { this.#finish('error') })
    sink.onDrain(() => { this.#onDrain() })
  }

  /** The channel patterns this caller receives (a WebSocket caller's change with its subscriptions). */
  get patterns (): readonly string[] { return this.#patterns }

  /** Adds a pattern; false when already held. */
  addPattern (pattern: string): boolean {
    if (this.#patterns.includes(pattern)) return false
    this.#patterns.push(pattern)
    return true
  }

  /** Removes a pattern; false when not held. */
  removePattern (pattern: string): boolean {
    const i = this.#patterns.indexOf(pattern)
    if (i < 0) return false
    this.#patterns.splice(i, 1)
    return true
  }

  get closed (): boolean { return this.#closed }
  get closeReason (): CloseReason | null { return this.#closeReason }
  /** counted bytes queued and not yet handed to the socket */
  get queuedBytes (): number { return this.#queuedBytes }
  /** high-water mark of the counted queue */
  get maxQueuedBytes (): number { return this.#maxQueuedBytes }
  get lastWrittenId (): string | null { return this.#lastWrittenId }
  get slowReason (): SlowReason | null { return this.#slowReason }

  /** Writes the status line, headers and (SSE) `retry:`, then whatever was queued before. */
  start (extraHeaders: Record<string, string> = {}): void {
    if (this.#closed || this.#started) return
    this.#started = true
    const now = Date.now()
    const first = this.#sink.open(extraHeaders, this.#options.retryMs)
    if (first !== null) this.#writeBytes(first, undefined, now)
    const hb = Math.max(10, this.#options.heartbeatMs)
    this.#heartbeat = setInterval(() => { this.#beat() }, hb)
    this.#heartbeat.unref()
    this.#flush(now, false)
  }

  /**
   * Queues a frame (a message when `id` is set), rendered in this caller's format; it is written at the end of
   * the event-loop turn, with the other frames of that turn. Never throws, never blocks.
   */
  send (frame: Frame, id?: string, counted = true): void {
    if (this.#closed) return
    const bytes = frame.bytes(this.format)
    const at = this.#tail++
    this.#bufs[at] = bytes
    this.#ids[at] = id
    this.#counted[at] = counted ? bytes.length : 0
    const accepting = this.#started && !this.#waitingDrain
    if (!accepting) this.#heldEnd = this.#tail
    if (counted) {
      this.#queuedBytes += bytes.length
      if (this.#queuedBytes > this.#maxQueuedBytes) this.#maxQueuedBytes = this.#queuedBytes
      if (this.#queuedBytes > this.#options.maxQueueBytes) {
        // a socket that has not refused anything yet is not behind: hand it this turn's frames before judging
        if (accepting) this.#flush(Date.now(), false)
        if (this.#queuedBytes > this.#options.maxQueueBytes) { this.slow('queue-full'); return }
      }
    }
    if (this.#started && !this.#dirty && this.#head < this.#tail) Caller.#schedule(this)
  }

  /**
   * The end of a turn in which frames were queued: handed to a socket that takes bytes, else joined into one
   * held entry per write-sized run (see #turnFrom).
   */
  #endTurn (now: number): void {
    if (this.#closed) return
    if (!this.#waitingDrain) {
      this.#flush(now, true)
      this.#turnFrom = this.#tail
      return
    }
    const bufs = this.#bufs
    const to = this.#tail
    let at = Math.max(this.#turnFrom, this.#head)
    for (let from = at; from < to; at++) {
      const end = runEnd(bufs, from, to, this.#sink.joinable)
      this.#span(from, end)
      // `at` ≤ `from`: the run is read before its entry is overwritten
      bufs[at] = end - from === 1 ? bufs[from] : Caller.#joins.join(bufs, from, end, spanBytes, true)
      this.#ids[at] = spanId
      this.#counted[at] = spanCounted
      from = end
    }
    bufs.fill(undefined, at, to)
    this.#ids.fill(undefined, at, to)
    this.#tail = at
    this.#heldEnd = at
    this.#turnFrom = this.#tail
  }

  /** Drops the caller: final `event: slow` (after what was already written), then close. */
  slow (reason: SlowReason): void {
    if (this.#closed) return
    this.#slowReason = reason
    this.#dropQueue()
    const frame = sseFrame('slow', { lastEventId: this.#lastWrittenId, reason })
    this.#end('slow', frame, `slow consumer: ${reason}`)
  }

  /** Gives up before anything was written (the request is answered another way, e.g. a JSON error). */
  discard (): void {
    if (this.#started) return
    this.#finish('discarded')
  }

  /** Ends the stream on shutdown: what is queued, then `event: shutdown`, then close. */
  shutdown (retryMs: number): void {
    if (this.#closed) return
    this.#flush(Date.now(), false)
    this.#dropQueue()
    const frame = sseFrame('shutdown', { lastEventId: this.#lastWrittenId }, undefined, retryMs)
    this.#end('shutdown', frame, 'shutdown')
  }

  #writeBytes (frame: Buffer, id: string | undefined, now: number): void {
    if (id !== undefined) this.#lastWrittenId = id
    this.#lastWriteAt = now
    let accepted = true
    try {
      accepted = this.#sink.write(frame)
    } catch {
      this.#finish('error')
      return
    }
    if (!accepted && !this.#waitingDrain) {
      this.#waitingDrain = true
      this.#drainTimer = setTimeout(() => { this.slow('write-timeout') }, Math.max(1, this.#options.writeTimeoutMs))
      this.#drainTimer.unref()
    }
  }

  #onDrain (): void {
    if (!this.#waitingDrain) return
    this.#waitingDrain = false
    if (this.#drainTimer !== null) clearTimeout(this.#drainTimer)
    this.#drainTimer = null
    this.#flush(Date.now(), false)
  }

  /**
   * Hands the queue to the socket: held frames until it refuses (write() false, then 'drain' resumes), the frames
   * queued while it was taking bytes all of them; joined into writes of at most MAX_JOIN_BYTES (one frame per write
   * for sinks whose frames are messages, i.e. WebSocket). `share`: in the flush pass, where joined runs are shared
   * between callers.
   */
  #flush (now: number, share: boolean): void {
    const bufs = this.#bufs
    const joinable = this.#sink.joinable
    while (!this.#closed && this.#started && this.#head < this.#tail && (!this.#waitingDrain || this.#head >= this.#heldEnd)) {
      const from = this.#head
      // a write holds held frames or fresh ones, not both
      const end = runEnd(bufs, from, from < this.#heldEnd ? this.#heldEnd : this.#tail, joinable)
      this.#span(from, end)
      const chunk = end - from === 1 ? bufs[from]! : Caller.#joins.join(bufs, from, end, spanBytes, share)
      this.#head = end
      this.#queuedBytes -= spanCounted
      this.#writeBytes(chunk, spanId, now)
    }
    if (this.#head === this.#tail) {
      this.#dropQueue()
    } else if (this.#head > 1024 && this.#head * 2 > this.#tail) {
      // moved in place (splice would allocate the removed part)
      const left = this.#tail - this.#head
      bufs.copyWithin(0, this.#head, this.#tail).fill(undefined, left, this.#tail)
      this.#ids.copyWithin(0, this.#head, this.#tail).fill(undefined, left, this.#tail)
      this.#counted.copyWithin(0, this.#head, this.#tail)
      this.#tail = left
      this.#heldEnd = Math.max(0, this.#heldEnd - this.#head)
      this.#turnFrom = Math.max(0, this.#turnFrom - this.#head)
      this.#head = 0
    }
  }

  /** Bytes, counted bytes and last message id of entries [from, end), into spanBytes, spanCounted, spanId. */
  #span (from: number, end: number): void {
    spanBytes = 0
    spanCounted = 0
    spanId = undefined
    for (let i = from; i < end; i++) {
      spanBytes += this.#bufs[i]!.length
      spanCounted += this.#counted[i]!
      if (this.#ids[i] !== undefined) spanId = this.#ids[i]
    }
  }

  #beat (): void {
    if (this.#closed || this.#waitingDrain || this.#head < this.#tail) return
    const now = Date.now()
    if (now - this.#lastWriteAt < this.#options.heartbeatMs / 2) return
    const bytes = this.#sink.heartbeat()
    if (bytes !== null) this.#writeBytes(bytes, undefined, now)
    else this.#lastWriteAt = now
  }

  /**
   * Empties the queue; the arrays are kept for the next turn (regrowing them through every backlog was most of the
   * bridge's garbage under load) unless a long backlog made them large.
   */
  #dropQueue (): void {
    if (this.#bufs.length > 4096) {
      this.#bufs.length = 0
      this.#ids.length = 0
      this.#counted.length = 0
    } else {
      this.#bufs.fill(undefined, 0, this.#tail)
      this.#ids.fill(undefined, 0, this.#tail)
    }
    this.#head = 0
    this.#tail = 0
    this.#heldEnd = 0
    this.#turnFrom = 0
    this.#queuedBytes = 0
  }

  /**
   * Final frame, end, then the connection is closed (an ended stream has nothing to keep alive for), with a
   * deadline after which the socket is destroyed whatever the peer does.
   */
  #end (reason: CloseReason, finalFrame: Frame, detail: string): void {
    const wasStarted = this.#started
    this.#finish(reason)
    this.#sink.end(finalFrame.bytes(this.format), reason, detail, this.#options.writeTimeoutMs, wasStarted)
  }

  /** Closes the caller without a final frame (e.g. a WebSocket the peer violated the protocol on), after what the socket takes of its queue. */
  close (reason: CloseReason, detail: string): void {
    if (this.#closed) return
    this.#flush(Date.now(), false)
    const wasStarted = this.#started
    this.#finish(reason)
    this.#sink.end(null, reason, detail, this.#options.writeTimeoutMs, wasStarted)
  }

  /** Idempotent bookkeeping: timers off, reason recorded, owner told once. */
  #finish (reason: CloseReason): void {
    if (this.#closed) return
    this.#closed = true
    this.#closeReason = reason
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat)
    if (this.#drainTimer !== null) clearTimeout(this.#drainTimer)
    this.#heartbeat = null
    this.#drainTimer = null
    this.#dropQueue()
    this.#onClose(this, reason)
  }
}

function isSink (target: ServerResponse | CallerSink): target is CallerSink {
  return typeof (target as Partial<CallerSink>).heartbeat === 'function' && typeof (target as Partial<CallerSink>).format === 'string'
}
