/**
 * Fast SSE callers for the streaming suite, many per process: raw node:http GETs (agent: false, one socket each)
 * read as Buffers, never decoded: frames are found with `Buffer#indexOf('\n\n')` and only the head of each frame
 * (`"p":"<tag>","s":<seq>,"t":<µs>`) is parsed, so that 10 callers keep up with 16 MB/s each on a busy machine
 * (fanout/callers.ts decodes every byte to a string: fine for small frames, the bottleneck for large ones). Every
 * caller marks the sequence numbers of the current tag it received: a repeat is counted as a duplicate, and what is
 * missing shows as deliveries below the expected count. Order is not checked: the upstream (faye with a pipelining
 * publisher) already delivers some messages out of publish order, to the bare broadcaster as much as to the bridge.
 *
 *   call('open', { url, n })            → { open, failed, ms }   (bounded: 60 s)
 *   call('reset', { tag, expected, count })  starts counting frames of `tag` (sequence numbers 0 … count − 1)
 *   call('stats', {})                   → { deliveries, otherTag, duplicates, firstUs, lastUs, latencyMs, cpuMs }
 *   call('close', {})                   destroys every stream
 */
import http from 'node:http'
import { serveRpc } from '../lib/proc.js'
import { cpuMs, nowUs } from '../lib/clock.js'
import { summarize } from '../lib/stats.js'

const END = Buffer.from('\n\n')
const P = Buffer.from('"p":"')
/** the fields looked for are in the first bytes of a frame's data (`{"channel":…,"data":{"p":…,"s":…,"t":…`) */
const HEAD_BYTES = 512
const MAX_SAMPLES = 1_000_000

interface Stream { req: http.ClientRequest, seen: Uint8Array }
const streams: Stream[] = []
let tag = Buffer.alloc(0)
let deliveries = 0
let otherTag = 0
let duplicates = 0
let firstUs = 0
let lastUs = 0
let samples = new Float64Array(0)
let nSamples = 0
let sampleEvery = 1

/** The unsigned integer after `name` (e.g. `"s":`) within buf[from, to), or -1. */
function numberAfter (buf: Buffer, name: string, from: number, to: number): number {
  const at = buf.indexOf(name, from, 'latin1')
  if (at < 0 || at >= to) return -1
  let value = 0
  for (let j = at + name.length; j < to; j++) {
    const c = buf[j]!
    if (c < 48 || c > 57) return value
    value = value * 10 + (c - 48)
  }
  return value
}

function onFrame (stream: Stream, buf: Buffer, from: number, to: number, at: number): void {
  const headEnd = Math.min(to, from + HEAD_BYTES)
  const p = buf.indexOf(P, from)
  if (p < 0 || p >= headEnd) return // not a bench message (retry:, heartbeat)
  const tagFrom = p + P.length
  if (buf.compare(tag, 0, tag.length, tagFrom, tagFrom + tag.length) !== 0 || buf[tagFrom + tag.length] !== 0x22) {
    otherTag++
    return
  }
  const seq = numberAfter(buf, '"s":', tagFrom, headEnd)
  const t = numberAfter(buf, '"t":', tagFrom, headEnd)
  if (seq < 0 || seq >= stream.seen.length || stream.seen[seq] === 1) {
    duplicates++
    return
  }
  stream.seen[seq] = 1
  deliveries++
  if (firstUs === 0) firstUs = at
  lastUs = at
  if (deliveries % sampleEvery === 0 && nSamples < samples.length) samples[nSamples++] = (at - t) / 1000
}

function openOne (url: string): Promise<boolean> {
  return new Promise((resolve) => {
    let carry: Buffer | null = null
    const req = http.get(url, { agent: false, headers: { Accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) { res.resume(); req.destroy(); resolve(false); return }
      res.on('data', (chunk: Buffer) => {
        const buf = carry === null ? chunk : Buffer.concat([carry, chunk])
        const at = nowUs()
        let pos = 0
        for (let end = buf.indexOf(END, pos); end >= 0; end = buf.indexOf(END, pos)) {
          onFrame(stream, buf, pos, end, at)
          pos = end + END.length
        }
        carry = pos === buf.length ? null : buf.subarray(pos)
      })
      res.on('error', () => {})
      resolve(true)
    })
    const stream: Stream = { req, seen: new Uint8Array(0) }
    req.on('error', () => resolve(false))
    streams.push(stream)
  })
}

async function open ({ url, n }: { url: string, n: number }): Promise<{ open: number, failed: number, ms: number }> {
  const start = Date.now()
  const results = await Promise.race([
    Promise.all(Array.from({ length: n }, async () => await openOne(url))),
    new Promise<boolean[]>((resolve) => setTimeout(() => resolve([]), 60_000).unref())
  ])
  const ok = results.filter((r) => r).length
  return { open: ok, failed: n - ok, ms: Date.now() - start }
}

serveRpc({
  open: open as (p: never) => unknown,
  reset: ({ tag: t, expected, count }: { tag: string, expected: number, count: number }) => {
    tag = Buffer.from(t, 'latin1')
    deliveries = 0
    otherTag = 0
    duplicates = 0
    firstUs = 0
    lastUs = 0
    for (const s of streams) s.seen = new Uint8Array(count)
    sampleEvery = Math.max(1, Math.ceil(expected / MAX_SAMPLES))
    samples = new Float64Array(Math.min(MAX_SAMPLES, Math.ceil(expected / sampleEvery) + 1))
    nSamples = 0
    return null
  },
  stats: () => ({ deliveries, otherTag, duplicates, firstUs, lastUs, latencyMs: summarize(samples.subarray(0, nSamples)), cpuMs: cpuMs() }),
  close: async () => {
    for (const s of streams) s.req.destroy()
    streams.length = 0
    return null
  }
}, async () => {
  for (const s of streams) s.req.destroy()
})
