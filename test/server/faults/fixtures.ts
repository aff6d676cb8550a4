/**
 * Shared by the reliability tests: a numbered publisher on the upstream side that records what it sent and when,
 * a bridge built with the server fixtures, and the accounting of what an SSE caller received against what was sent.
 */
import net from 'node:net'
import type { FastifyInstance } from 'fastify'
import { localSession, makeConfig, startBridge } from '../fixtures/bridge.js'
import type { ConfigOverrides, SessionInput, SseEvent, SseStream, Teardown } from '../fixtures/bridge.js'
import type { BridgeSession } from '../../../server/session/bridge-session.js'
import { delay, waitFor } from '../../helpers/wait.js'

export interface Sent { n: number, at: number }

export interface Publisher {
  /** messages the upstream server accepted, in order */
  readonly sent: Sent[]
  /** publish calls that failed (the server was down): not sent */
  readonly failed: number
  readonly last: number
  stop: () => Promise<void>
}

/**
 * Publishes `{ n }` on `channel` every `periodMs` through the upstream server's own API (server-side publish) and
 * records the messages it accepted. At most `max` messages; stopped on teardown.
 */
export function startPublisher (t: Teardown, publish: (channel: string, data: unknown) => Promise<void>, channel: string, periodMs = 20, max = 5_000): Publisher {
  const sent: Sent[] = []
  let failed = 0
  let n = 0
  let stopped = false
  const loop = (async () => {
    while (!stopped && n < max) {
      const k = ++n
      const at = Date.now()
      try {
        await publish(channel, { n: k })
        sent.push({ n: k, at })
      } catch {
        failed++
      }
      await delay(periodMs)
    }
  })()
  const stop = async (): Promise<void> => { stopped = true; await loop }
  t.teardown(stop)
  return { sent, get failed () { return failed }, get last () { return sent.at(-1)?.n ?? 0 }, stop }
}

export interface BridgeOn {
  app: FastifyInstance
  base: string
  session: BridgeSession
  logs: { lines: Array<Record<string, unknown>> }
}

/** A bridge with one session `s` on `url` (the server fixtures' fast defaults), listening on 127.0.0.1. */
export async function bridgeOn (t: Teardown, url: string, session: Partial<SessionInput> = {}, over: ConfigOverrides = {}): Promise<BridgeOn> {
  const { app, base, logs } = await startBridge(t, makeConfig({ s: { url, ...session } }, over))
  const s = localSession(app, 's')
  await waitFor(() => s.state === 'connected', { timeoutMs: 15_000, message: () => `session s connected (is ${s.state})` })
  return { app, base, session: s, logs }
}

/** `n` of every `event: message` of a stream, in arrival order. */
export function receivedNs (sse: SseStream): number[] {
  return sse.messages().map((m) => (m.data as { n: number }).n)
}

/** data of the `event: upstream` frames. */
export function upstreamEvents (sse: SseStream): Array<{ status: string, reason?: string, mayHaveMissed?: boolean, [k: string]: unknown }> {
  return sse.events.filter((e: SseEvent) => e.event === 'upstream').map((e) => JSON.parse(e.data) as { status: string })
}

export interface Accounting {
  sent: number
  received: number
  distinct: number
  duplicated: number
  outOfOrder: number
  /** sent and never received */
  lost: number[]
}

export function account (sent: Sent[], got: number[]): Accounting {
  const set = new Set(got)
  let outOfOrder = 0
  for (let i = 1; i < got.length; i++) if (got[i]! <= got[i - 1]!) outOfOrder++
  return {
    sent: sent.length,
    received: got.length,
    distinct: set.size,
    duplicated: got.length - set.size,
    outOfOrder,
    lost: sent.filter((s) => !set.has(s.n)).map((s) => s.n)
  }
}

/** Compact "1-5, 9, 12-14" for a comment. */
export function ranges (ns: number[]): string {
  const out: string[] = []
  for (let i = 0; i < ns.length; i++) {
    let j = i
    while (j + 1 < ns.length && ns[j + 1] === ns[j]! + 1) j++
    out.push(i === j ? `${ns[i]}` : `${ns[i]}-${ns[j]}`)
    i = j
  }
  return out.length > 12 ? `${out.slice(0, 12).join(', ')}, …` : out.join(', ')
}

/** Waits (bounded) until the stream received message `n` or later. */
export async function waitForN (sse: SseStream, n: number, timeoutMs = 10_000): Promise<void> {
  await waitFor(() => receivedNs(sse).some((k) => k >= n), { timeoutMs, message: () => `message ${n} (last received ${receivedNs(sse).at(-1)})` })
}

export interface Recovery {
  /** ms from `backAt` (the link restored) to the caller's `event: upstream` with status up */
  upMs: number
  /** the last number published before `up` arrived */
  upSent: number
  acc: Accounting
}

/**
 * The second half of every cut/stall scenario: the link was restored at `backAt`; waits (bounded) for the caller's
 * `up`, lets the publisher run `tailMs` more, stops it, waits until the caller has the last number, and accounts.
 */
export async function recoverAndDrain (sse: SseStream, pub: Publisher, backAt: number, opts: { upTimeoutMs?: number, tailMs?: number } = {}): Promise<Recovery> {
  await waitFor(() => upstreamEvents(sse).some((e) => e.status === 'up'), { timeoutMs: opts.upTimeoutMs ?? 15_000, message: 'event: upstream up' })
  const upMs = Date.now() - backAt
  const upSent = pub.last
  await delay(opts.tailMs ?? 500)
  await pub.stop()
  await waitForN(sse, pub.last)
  return { upMs, upSent, acc: account(pub.sent, receivedNs(sse)) }
}

/** Polls (10 ms) until `pred`, then returns the time it became true; bounded. */
export async function timeUntil (pred: () => boolean, timeoutMs: number, message: string): Promise<number> {
  await waitFor(pred, { timeoutMs, intervalMs: 10, message })
  return Date.now()
}

export interface TrackedLink { openedAt: number, closedByBridgeAt: number | null }

export interface LinkTracker {
  url: (path: string) => string
  readonly links: TrackedLink[]
  close: () => Promise<void>
}

/**
 * A plain TCP relay on 127.0.0.1:0 in front of `port` (e.g. the fault proxy) that records, for every connection the
 * bridge opens, when the bridge closed it (FIN or RST from the bridge's side). The fault proxy itself keeps a
 * stalled link open and forwards no FIN, so this is how a test sees the bridge drop a dead socket.
 */
export async function startLinkTracker (t: Teardown, port: number): Promise<LinkTracker> {
  const links: TrackedLink[] = []
  const sockets = new Set<import('node:net').Socket>()
  const server = net.createServer((client) => {
    const link: TrackedLink = { openedAt: Date.now(), closedByBridgeAt: null }
    links.push(link)
    const upstream = net.connect(port, '127.0.0.1')
    sockets.add(client)
    sockets.add(upstream)
    const mark = (): void => { link.closedByBridgeAt ??= Date.now() }
    client.on('end', mark)
    client.on('close', () => { mark(); sockets.delete(client); upstream.destroy() })
    upstream.on('close', () => { sockets.delete(upstream); client.destroy() })
    client.on('error', () => undefined)
    upstream.on('error', () => undefined)
    client.pipe(upstream)
    upstream.pipe(client)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const p = (server.address() as import('node:net').AddressInfo).port
  let closing: Promise<void> | null = null
  const close = (): Promise<void> => (closing ??= new Promise<void>((resolve) => {
    server.close(() => resolve())
    for (const s of sockets) s.destroy()
  }))
  t.teardown(close)
  return { url: (path) => `http://127.0.0.1:${p}${path}`, links, close }
}
