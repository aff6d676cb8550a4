/**
 * Events for callers. One event is rendered per caller format and cached: Server-Sent Events (`sse`), one JSON object per
 * line (`ndjson`) or one JSON object per WebSocket text frame (`ws`). A message is serialized once and its
 * renderings are shared by every caller (and every replay) of that format.
 *
 * The JSON-object form flattens the event: `{"type":"message","id":…,"channel":…,"data":…}`,
 * `{"type":"gap","reason":…}`, `{"type":"shutdown","lastEventId":…,"retryMs":…}`.
 */
export type CallerFormat = 'sse' | 'ndjson' | 'ws'

export class Frame {
  /** SSE event name, `type` of the JSON form */
  readonly event: string
  readonly id: string | undefined
  readonly retryMs: number | undefined
  /**
   * The SSE rendering, written once at construction: the one copy of the event a frame keeps (the replay ring
   * holds a bufferSize of them, so a second copy as a JS string would double what a session of large messages
   * retains, and put it in the V8 heap, where every evicted one waits for a full GC). `json` is read back from it.
   */
  readonly #sse: Buffer
  /** where the data line's JSON starts and ends in #sse */
  readonly #jsonStart: number
  readonly #jsonEnd: number
  #line: Buffer | null = null

  constructor (event: string, json: string, id?: string, retryMs?: number) {
    this.event = event
    this.id = id
    this.retryMs = retryMs
    let head = ''
    if (id !== undefined) head += `id: ${id}\n`
    if (retryMs !== undefined) head += `retry: ${Math.max(0, Math.round(retryMs))}\n`
    head += `event: ${event}\ndata: `
    const headBytes = Buffer.byteLength(head, 'utf8')
    const jsonBytes = Buffer.byteLength(json, 'utf8')
    // written in place: no joined copy of a large message as a string first
    const sse = Buffer.allocUnsafe(headBytes + jsonBytes + 2)
    sse.write(head, 0, 'utf8')
    sse.write(json, headBytes, 'utf8')
    sse[headBytes + jsonBytes] = 0x0a
    sse[headBytes + jsonBytes + 1] = 0x0a
    this.#sse = sse
    this.#jsonStart = headBytes
    this.#jsonEnd = headBytes + jsonBytes
  }

  /** the event's data, serialized JSON */
  get json (): string { return this.#sse.toString('utf8', this.#jsonStart, this.#jsonEnd) }

  /** `id:` (optional) + `retry:` (optional) + `event:` + one `data:` line + a blank line. */
  sse (): Buffer {
    return this.#sse
  }

  /** The flattened JSON object followed by `\n`. */
  line (): Buffer {
    if (this.#line !== null) return this.#line
    let head = `{"type":${JSON.stringify(this.event)}`
    if (this.id !== undefined) head += `,"id":${JSON.stringify(this.id)}`
    if (this.retryMs !== undefined) head += `,"retryMs":${Math.max(0, Math.round(this.retryMs))}`
    const json = this.json.trimStart()
    let text: string
    if (json.startsWith('{')) {
      const rest = json.slice(1).trimStart()
      text = rest.startsWith('}') ? `${head}}` : `${head},${rest}`
    } else {
      text = `${head},"data":${json}}`
    }
    this.#line = Buffer.from(text + '\n', 'utf8')
    return this.#line
  }

  /** The bytes for a caller of `format` (`ws`: the JSON text without the newline). */
  bytes (format: CallerFormat): Buffer {
    switch (format) {
      case 'sse': return this.sse()
      case 'ndjson': return this.line()
      case 'ws': { const line = this.line(); return line.subarray(0, line.length - 1) }
    }
  }

  /** Size of the SSE rendering (what byte accounting used before there were formats). */
  get length (): number { return this.sse().length }

  /** The SSE text. */
  toString (): string { return this.sse().toString('utf8') }
}

/** A frame of any event with `data` serialized here (a string is taken as pre-serialized JSON). */
export function frameOf (event: string, data: unknown, id?: string, retryMs?: number): Frame {
  return new Frame(event, typeof data === 'string' ? data : JSON.stringify(data), id, retryMs)
}

// ---------------------------------------------------------------- Server-Sent Events
// Data is always one line of JSON (JSON.stringify never emits a raw newline), so an SSE frame is `id:` (optional)
// + `event:` + one `data:` line + a blank line.

export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
  Connection: 'keep-alive'
}

export type SseEventName = 'message' | 'gap' | 'upstream' | 'slow' | 'shutdown'

/** One complete frame of a bridge event. `data` is serialized here; pass a string to use pre-serialized JSON. */
export function sseFrame (event: SseEventName, data: unknown, id?: string, retryMs?: number): Frame {
  return frameOf(event, data, id, retryMs)
}

export function sseRetry (retryMs: number): Buffer {
  return Buffer.from(`retry: ${Math.max(0, Math.round(retryMs))}\n\n`, 'utf8')
}

/** A comment line: ignored by EventSource, keeps proxies and load balancers from timing the stream out. */
export const SSE_HEARTBEAT = Buffer.from(': keep-alive\n\n', 'utf8')

/** The frame of an upstream message, built once per message. Only channel, data and ext are exposed. */
export function messageFrame (id: string, channel: string, data: unknown, ext: unknown): Frame {
  const payload: Record<string, unknown> = { channel, data: data === undefined ? null : data }
  if (ext !== undefined && ext !== null) payload.ext = ext
  return sseFrame('message', payload, id)
}
