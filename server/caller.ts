/**
 * One streaming caller (SSE, NDJSON or WebSocket): its own bounded byte queue in front of the socket and a write
 * deadline. Writing never blocks the session: frames are handed to the socket while it accepts them and queued
 * otherwise. A caller that falls behind (queue over `maxQueueBytes`, or the socket not draining within
 * `writeTimeoutMs`) gets a final `slow` event carrying the id of the last message written to it, and is closed
 * (WebSocket: close code 1013). The framing is the sink's (sinks.ts): one queue/deadline implementation for all.
 */
import type { ServerResponse } from 'node:http'
import type { CallerFormat, Frame } from './frames.js'
import { HttpSink } from './sinks.js'
import type { CallerSink } from './sinks.js'
import { sseFrame } from './sse.js'

export interface CallerOptions {
  maxQueueBytes: number
  writeTimeoutMs: number
  heartbeatMs: number
  retryMs: number
}

export type CloseReason = 'client' | 'slow' | 'shutdown' | 'error' | 'discarded'
export type SlowReason = 'queue-full' | 'write-timeout'

interface Queued {
  frame: Buffer
  /** message id, for `event: slow` */
  id: string | undefined
  /** counts against maxQueueBytes (replayed frames do not: the ring holds them anyway) */
  counted: boolean
}

let nextCallerId = 1

export class Caller {
  readonly id = nextCallerId++
  readonly createdAt = Date.now()
  readonly format: CallerFormat
  /** highest message sequence number queued to this caller (fan-out dedupe across patterns) */
  lastSeq = 0
  readonly #patterns: string[]
  readonly #sink: CallerSink
  readonly #options: CallerOptions
  readonly #queue: Queued[] = []
  #head = 0
  #queuedBytes = 0
  #maxQueuedBytes = 0
  #started = false
  #waitingDrain = false
  #closed = false
  #closeReason: CloseReason | null = null
  #slowReason: SlowReason | null = null
  #lastWrittenId: string | null
  #lastWriteAt = Date.now()
  #drainTimer: NodeJS.Timeout | null = null
  #heartbeat: NodeJS.Timeout | null = null
  readonly #onClose: (caller: Caller, reason: CloseReason) => void

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
  get queuedBytes (): number { return this.#queuedBytes }
  /** high-water mark of the counted queue */
  get maxQueuedBytes (): number { return this.#maxQueuedBytes }
  get lastWrittenId (): string | null { return this.#lastWrittenId }
  get slowReason (): SlowReason | null { return this.#slowReason }

  /** Writes the status line, headers and (SSE) `retry:`, then whatever was queued before. */
  start (extraHeaders: Record<string, string> = {}): void {
    if (this.#closed || this.#started) return
    this.#started = true
    const first = this.#sink.open(extraHeaders, this.#options.retryMs)
    if (first !== null) this.#writeBytes(first, undefined)
    const hb = Math.max(10, this.#options.heartbeatMs)
    this.#heartbeat = setInterval(() => { this.#beat() }, hb)
    this.#heartbeat.unref()
    this.#flush()
  }

  /** Queues a frame (a message when `id` is set), rendered in this caller's format. Never throws, never blocks. */
  send (frame: Frame, id?: string, counted = true): void {
    if (this.#closed) return
    const bytes = frame.bytes(this.format)
    if (!this.#started || this.#waitingDrain || this.#head < this.#queue.length) {
      this.#queue.push({ frame: bytes, id, counted })
      if (counted) {
        this.#queuedBytes += bytes.length
        if (this.#queuedBytes > this.#maxQueuedBytes) this.#maxQueuedBytes = this.#queuedBytes
        if (this.#queuedBytes > this.#options.maxQueueBytes) this.slow('queue-full')
      }
      return
    }
    this.#writeBytes(bytes, id)
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
    this.#flush()
    this.#dropQueue()
    const frame = sseFrame('shutdown', { lastEventId: this.#lastWrittenId }, undefined, retryMs)
    this.#end('shutdown', frame, 'shutdown')
  }

  #writeBytes (frame: Buffer, id: string | undefined): void {
    if (id !== undefined) this.#lastWrittenId = id
    this.#lastWriteAt = Date.now()
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
    this.#flush()
  }

  #flush (): void {
    while (!this.#closed && this.#started && !this.#waitingDrain && this.#head < this.#queue.length) {
      const item = this.#queue[this.#head]!
      this.#queue[this.#head] = undefined as unknown as Queued
      this.#head++
      if (item.counted) this.#queuedBytes -= item.frame.length
      this.#writeBytes(item.frame, item.id)
    }
    if (this.#head === this.#queue.length) {
      this.#queue.length = 0
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue.splice(0, this.#head)
      this.#head = 0
    }
  }

  #beat (): void {
    if (this.#closed || this.#waitingDrain || this.#head < this.#queue.length) return
    if (Date.now() - this.#lastWriteAt < this.#options.heartbeatMs / 2) return
    const bytes = this.#sink.heartbeat()
    if (bytes !== null) this.#writeBytes(bytes, undefined)
    else this.#lastWriteAt = Date.now()
  }

  #dropQueue (): void {
    this.#queue.length = 0
    this.#head = 0
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

  /** Closes the caller without a final frame (e.g. a WebSocket the peer violated the protocol on). */
  close (reason: CloseReason, detail: string): void {
    if (this.#closed) return
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
