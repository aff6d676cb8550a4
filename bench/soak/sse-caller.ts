/**
 * A minimal SSE caller over node:http, parsed with eventsource-parser: records the `n` of every message (the soak
 * publishes `{ n }`), the last id, and the other events (gap, upstream, slow, shutdown).
 */
import http from 'node:http'
import { createParser } from 'eventsource-parser'

export interface StreamRecord {
  /** `n` of every message, in arrival order */
  ns: number[]
  /** arrival time of every message (ms epoch), parallel to `ns` */
  at: number[]
  lastId: string | null
  /** event name → count (gap, upstream, slow, shutdown) */
  other: Record<string, number>
  status: number
  ended: boolean
  error: string | null
}

export interface OpenStream {
  record: StreamRecord
  done: Promise<void>
  close: () => void
}

/** Opens a stream; `done` resolves when it ends for any reason (never rejects). */
export function openStream (url: string, lastEventId: string | null, onMessage?: (n: number, at: number) => void): OpenStream {
  const record: StreamRecord = { ns: [], at: [], lastId: lastEventId, other: {}, status: 0, ended: false, error: null }
  let finish!: () => void
  const done = new Promise<void>((resolve) => { finish = () => { record.ended = true; resolve() } })
  const parser = createParser({
    onEvent: (e) => {
      if (e.event === 'message' || e.event === undefined) {
        try {
          const body = JSON.parse(e.data) as { data?: { n?: unknown } }
          const n = body.data?.n
          if (typeof n === 'number') {
            const now = Date.now()
            record.ns.push(n)
            record.at.push(now)
            onMessage?.(n, now)
          }
        } catch {}
        if (e.id !== undefined) record.lastId = e.id
      } else {
        record.other[e.event] = (record.other[e.event] ?? 0) + 1
      }
    }
  })
  const headers: Record<string, string> = { Accept: 'text/event-stream' }
  if (lastEventId !== null) headers['Last-Event-ID'] = lastEventId
  const req = http.get(url, { headers, agent: false }, (res) => {
    record.status = res.statusCode ?? 0
    res.setEncoding('utf8')
    res.on('data', (chunk: string) => { if (record.status === 200) parser.feed(chunk) })
    res.on('end', finish)
    res.on('close', finish)
    res.on('error', (err) => { record.error = err.message; finish() })
  })
  req.on('error', (err) => { record.error = err.message; finish() })
  req.setTimeout(60_000, () => { req.destroy(new Error('no data for 60 s')) })
  return { record, done, close: () => { req.destroy() } }
}
