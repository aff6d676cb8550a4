/**
 * SSE callers, many per process, with minimal overhead: raw node:http GETs (agent: false, one socket each), chunks
 * read as latin1 strings, a delivery counted per `"t":` found in a frame (the publish stamp of the bench data) and
 * its latency = arrival − stamp (µs, shared monotonic clock). Frames split across chunks are carried over.
 *
 *   call('open', { url, n, batch })    → { open, failed, ms }   (bounded: 120 s)
 *   call('reset', {})                  starts counting (deliveries, latencies of tag `p`)
 *   call('stats', { tag })             → { deliveries, firstUs, lastUs, p50, p99, ... }
 *   call('close', {})                  destroys every stream
 */
import http from 'node:http'
import { serveRpc } from '../lib/proc.js'
import { cpuMs, nowUs, rssMB } from '../lib/clock.js'
import { summarize } from '../lib/stats.js'

const MAX_SAMPLES = 4_000_000
const streams: http.ClientRequest[] = []
let deliveries = 0
let otherTag = 0
let firstUs = 0
let lastUs = 0
let tag = ''
let samples = new Float64Array(1024)
let nSamples = 0
let sampleEvery = 1
let seen = 0

function onFrames (text: string, at: number): void {
  let i = text.indexOf('"t":')
  while (i >= 0) {
    // the tag precedes: {"p":"<tag>","s":..,"t":..}
    const pAt = text.lastIndexOf('"p":"', i)
    const pEnd = text.indexOf('"', pAt + 5)
    const isOurs = pAt >= 0 && text.slice(pAt + 5, pEnd) === tag
    if (isOurs) {
      let j = i + 4
      let t = 0
      for (let c = text.charCodeAt(j); c >= 48 && c <= 57; c = text.charCodeAt(++j)) t = t * 10 + (c - 48)
      deliveries++
      if (firstUs === 0) firstUs = at
      lastUs = at
      if (seen++ % sampleEvery === 0) {
        if (nSamples === samples.length && samples.length < MAX_SAMPLES) {
          const next = new Float64Array(Math.min(MAX_SAMPLES, samples.length * 2))
          next.set(samples)
          samples = next
        }
        if (nSamples < samples.length) samples[nSamples++] = (at - t) / 1000
      }
    } else {
      otherTag++
    }
    i = text.indexOf('"t":', i + 4)
  }
}

function openOne (url: string): Promise<boolean> {
  return new Promise((resolve) => {
    let carry = ''
    const req = http.get(url, { agent: false, headers: { Accept: 'text/event-stream' } }, (res) => {
      if (res.statusCode !== 200) { res.resume(); req.destroy(); resolve(false); return }
      res.setEncoding('latin1')
      res.on('data', (chunk: string) => {
        const text = carry === '' ? chunk : carry + chunk
        const end = text.lastIndexOf('\n\n')
        if (end < 0) { carry = text; return }
        carry = end + 2 === text.length ? '' : text.slice(end + 2)
        onFrames(end + 2 === text.length ? text : text.slice(0, end + 2), nowUs())
      })
      res.on('error', () => {})
      resolve(true)
    })
    req.on('error', () => resolve(false))
    req.setTimeout(30_000, () => { /* idle callers are expected: heartbeats every 15 s */ })
    streams.push(req)
  })
}

async function open ({ url, n, batch }: { url: string, n: number, batch?: number }): Promise<{ open: number, failed: number, ms: number }> {
  const start = Date.now()
  let ok = 0
  let failed = 0
  const size = batch ?? 250
  for (let i = 0; i < n && Date.now() - start < 120_000; i += size) {
    const results = await Promise.all(Array.from({ length: Math.min(size, n - i) }, () => openOne(url)))
    for (const r of results) if (r) ok++; else failed++
  }
  return { open: ok, failed, ms: Date.now() - start }
}

serveRpc({
  open: open as (p: never) => unknown,
  reset: ({ tag: t, expected }: { tag: string, expected: number }) => {
    tag = t
    deliveries = 0
    otherTag = 0
    firstUs = 0
    lastUs = 0
    nSamples = 0
    seen = 0
    sampleEvery = Math.max(1, Math.ceil(expected / MAX_SAMPLES))
    return null
  },
  stats: () => ({ deliveries, otherTag, firstUs, lastUs, latencyMs: summarize(samples.subarray(0, nSamples)), cpuMs: cpuMs(), rssMB: rssMB() }),
  close: async () => {
    for (const req of streams) req.destroy()
    streams.length = 0
    return null
  }
}, async () => {
  for (const req of streams) req.destroy()
})
