/**
 * SSE framing. Data is always one line of JSON (JSON.stringify never emits a raw newline), so a frame is
 * `id:` (optional) + `event:` + one `data:` line + a blank line. Frames are `Frame`s (frames.ts): the same event
 * also renders as an NDJSON line or a WebSocket text frame for callers of those formats.
 */
import { Frame, frameOf } from './frames.js'

export { Frame } from './frames.js'
export const SSE_HEADERS: Readonly<Record<string, string>> = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
  Connection: 'keep-alive'
}

export type SseEventName = 'message' | 'gap' | 'upstream' | 'slow' | 'shutdown'

/** One complete frame. `data` is serialized here; pass a string to use pre-serialized JSON. */
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
