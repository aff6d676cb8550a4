/**
 * Where a caller's frames go: the transport half of a Caller (caller.ts keeps the queue and the deadlines, one
 * implementation for every format). `HttpSink` is an HTTP response streaming SSE or NDJSON; `WsSink` a
 * WebSocket sending one JSON text frame per event.
 */
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { WebSocket } from 'ws'
import type { CallerFormat } from '../frames.js'
import { SSE_HEADERS, SSE_HEARTBEAT, sseRetry } from '../frames.js'

export type SinkEndReason = 'slow' | 'shutdown' | 'error' | 'client' | 'discarded'

export interface CallerSink {
  readonly format: CallerFormat
  /** a byte stream: consecutive frames may be joined into one write (false: each frame is a message, WebSocket) */
  readonly joinable: boolean
  /** Status line and headers (HTTP); returns the first bytes to write (SSE `retry:`), or null. */
  open: (extraHeaders: Record<string, string>, retryMs: number) => Buffer | null
  /** Hands bytes to the socket; false when the socket buffers them (then a `drain` follows). Throws when closed. */
  write: (chunk: Buffer) => boolean
  /** Bytes that keep an idle stream alive, or null when the sink keeps it alive itself (WebSocket ping). */
  heartbeat: () => Buffer | null
  /**
   * Final frame (if any), then close; the socket is destroyed after `deadlineMs` whatever the peer does.
   * `started`: whether open() ran (an HTTP stream that never started still needs its headers).
   */
  end: (finalFrame: Buffer | null, reason: SinkEndReason, detail: string, deadlineMs: number, started: boolean) => void
  onClose: (fn: () => void) => void
  onError: (fn: () => void) => void
  onDrain: (fn: () => void) => void
}

export const NDJSON_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'application/x-ndjson; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
  Connection: 'keep-alive'
}

export const NDJSON_HEARTBEAT = Buffer.from('{"type":"heartbeat"}\n', 'utf8')

/** An HTTP response streaming Server-Sent Events or NDJSON. */
export class HttpSink implements CallerSink {
  readonly format: 'sse' | 'ndjson'
  readonly joinable = true
  readonly #res: ServerResponse

  constructor (res: ServerResponse, format: 'sse' | 'ndjson' = 'sse') {
    this.#res = res
    this.format = format
  }

  #headers (): Readonly<Record<string, string>> {
    return this.format === 'sse' ? SSE_HEADERS : NDJSON_HEADERS
  }

  open (extraHeaders: Record<string, string>, retryMs: number): Buffer | null {
    this.#res.writeHead(200, { ...this.#headers(), ...extraHeaders })
    // NDJSON has no preamble: send the headers now, not with the first event
    if (this.format !== 'sse') this.#res.flushHeaders()
    return this.format === 'sse' ? sseRetry(retryMs) : null
  }

  /**
   * One write per caller per event-loop turn (caller.ts joins the frames of the turn); node:http corks the socket
   * around it (chunk-size line, data, CRLF leave in one writev).
   */
  write (chunk: Buffer): boolean {
    return this.#res.write(chunk)
  }

  heartbeat (): Buffer | null {
    return this.format === 'sse' ? SSE_HEARTBEAT : NDJSON_HEARTBEAT
  }

  end (finalFrame: Buffer | null, _reason: SinkEndReason, _detail: string, deadlineMs: number, started: boolean): void {
    const res = this.#res
    const socket = res.socket
    if (socket === null || socket.destroyed) return
    const timer = setTimeout(() => { socket.destroy() }, Math.max(1, deadlineMs))
    timer.unref()
    socket.once('close', () => { clearTimeout(timer) })
    try {
      if (!started) res.writeHead(200, this.#headers())
      // an ended stream has nothing to keep the connection alive for
      const done = (): void => { socket.end() }
      if (finalFrame === null) res.end(done)
      else res.end(finalFrame, done)
    } catch {
      socket.destroy()
    }
  }

  onClose (fn: () => void): void { this.#res.on('close', fn) }
  onError (fn: () => void): void { this.#res.on('error', fn) }
  onDrain (fn: () => void): void { this.#res.on('drain', fn) }
}

/** WebSocket close codes (RFC 6455 §7.4.1). */
export const WS_CLOSE = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY: 1008,
  INTERNAL: 1011,
  TRY_AGAIN_LATER: 1013
} as const

/** A WebSocket: every frame is one JSON text message; backpressure is read from the underlying TCP socket. */
export class WsSink implements CallerSink {
  readonly format = 'ws' as const
  readonly joinable = false
  readonly #ws: WebSocket
  readonly #socket: Socket

  constructor (ws: WebSocket, socket: Socket) {
    this.#ws = ws
    this.#socket = socket
  }

  open (): Buffer | null { return null }

  write (chunk: Buffer): boolean {
    if (this.#ws.readyState !== this.#ws.OPEN) throw new Error('WebSocket not open')
    // without permessage-deflate ws writes the frame to the socket synchronously
    this.#ws.send(chunk, { binary: false })
    return !this.#socket.writableNeedDrain
  }

  heartbeat (): Buffer | null {
    try { this.#ws.ping() } catch {}
    return null
  }

  end (finalFrame: Buffer | null, reason: SinkEndReason, detail: string, deadlineMs: number): void {
    const ws = this.#ws
    if (ws.readyState !== ws.OPEN) { ws.terminate(); return }
    const timer = setTimeout(() => { ws.terminate() }, Math.max(1, deadlineMs))
    timer.unref()
    ws.once('close', () => { clearTimeout(timer) })
    const code = reason === 'slow' ? WS_CLOSE.TRY_AGAIN_LATER
      : reason === 'shutdown' ? WS_CLOSE.GOING_AWAY
        : reason === 'error' ? WS_CLOSE.INTERNAL : WS_CLOSE.NORMAL
    try {
      if (finalFrame !== null) ws.send(finalFrame, { binary: false })
      // the close reason is at most 123 bytes
      ws.close(code, Buffer.from(detail, 'utf8').subarray(0, 123).toString('utf8').replace(/\uFFFD+$/, ''))
    } catch {
      ws.terminate()
    }
  }

  onClose (fn: () => void): void { this.#ws.on('close', fn) }
  onError (fn: () => void): void { this.#ws.on('error', fn) }
  onDrain (fn: () => void): void { this.#socket.on('drain', fn) }
}
