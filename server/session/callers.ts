/**
 * The caller side of a session, one piece for both kinds: the single-replica session (bridge-session.ts, over the
 * in-memory log) and the cluster session (cluster/cluster-session.ts, over the shared Redis log). A caller attaches
 * with its patterns and Last-Event-ID, gets its resume (a `gap` when something is missing, then what it missed),
 * is routed for live events by the hub, and holds the upstream subscriptions of its patterns while it stays.
 *
 * What differs between the two kinds sits behind `CallersHost`: where the resume is read from (synchronously from
 * memory, or asynchronously from Redis), and how a pattern's upstream subscription is asked for and let go (the
 * link's refcount here, the holder's interest set in a cluster).
 */
import type { ServerResponse } from 'node:http'
import type { SseConfig } from '../../config/index.js'
import { withDeadline } from '../deadline.js'
import type { HttpError } from '../errors.js'
import type { LogEntry } from '../event-log/event-log.js'
import type { Gap, GapReason } from '../event-log/resume.js'
import { sseFrame } from '../frames.js'
import { Caller } from '../hub/caller.js'
import type { CloseReason } from '../hub/caller.js'
import type { Hub } from '../hub/hub.js'
import type { CallerSink } from '../hub/sinks.js'
import type { SessionLogger } from '../ops/lazy-log.js'
import type { BridgeMetrics } from '../ops/metrics.js'
import type { SessionStats } from './view.js'

/** `afterId`: the stream continues after this id (what a caller already has), null = from the start */
export type AttachResult = { caller: Caller, afterId: string | null } | { error: HttpError } | { gone: true }
export type AddResult = { afterId: string | null } | { error: HttpError } | { gone: true }

/** Where a caller's stream starts. */
export interface ResumeStart {
  /** sent first, when something the caller asked for cannot be served */
  gap: Gap | null
  /** what the caller missed, oldest first */
  entries: readonly LogEntry[]
  /** the stream continues after this id, null = from the start */
  afterId: string | null
  /** a resume that goes on after the attach (a deep resume upstream): prepared once the caller is routed, started once accepted */
  routed?: (caller: Caller) => { start: () => void }
}

export interface CallersHost {
  readonly name: string
  readonly sse: SseConfig
  readonly metrics: BridgeMetrics
  readonly stats: SessionStats
  readonly log: SessionLogger
  readonly hub: Hub
  /** the position of the log's newest entry: a caller routed now gets live entries after it */
  lastSeq: () => number
  /**
   * The resume of a caller with `lastEventId` on `patterns` (`deep`: a resume may reach further back upstream).
   * Synchronous for the in-memory log: nothing can be appended between the plan and the routing. A shared log
   * answers asynchronously and ends its read exactly where its live tail continues.
   */
  resume: (lastEventId: string | null, patterns: string[], deep: boolean) => ResumeStart | Promise<ResumeStart | { error: HttpError }>
  /** a caller routed while the upstream is not connected hears it at once */
  joinedWhileDown: (caller: Caller) => void
  /** asks for the upstream subscription of `pattern` (at once, before any await): its refusal, or null */
  acquire: (pattern: string, waitMs: number) => Promise<HttpError | null>
  /** lets go of one pattern's upstream subscription (a caller left, or removed it) */
  release: (pattern: string) => void
  /** a caller left, after the hub forgot it */
  left?: (caller: Caller) => void
}

export class SessionCallers {
  readonly #h: CallersHost

  constructor (host: CallersHost) {
    this.#h = host
  }

  /**
   * Registers a streaming caller: its resume (gap + what it missed), its routes for live events, then (at most
   * `waitMs`) its upstream subscriptions. A refused subscription → a JSON 4xx instead of the stream. The caller is
   * returned not started: the route hijacks the reply, then calls `caller.start()`.
   */
  async attach (res: ServerResponse | CallerSink, patterns: string[], lastEventId: string | null, waitMs: number): Promise<AttachResult> {
    const caller = new Caller(res, patterns, this.#h.sse, lastEventId, (c, reason) => { this.#detach(c, reason) })
    const planned = this.#h.resume(lastEventId, patterns, true)
    // awaited only when the host answers asynchronously: no turn passes between a memory log's plan and the routing
    const start = planned instanceof Promise ? await planned : planned
    if ('error' in start) return start
    if (caller.closed) return { gone: true }
    // synchronous from the end of the resume to the routing: the live tail continues exactly after it
    this.#sendResume(caller, start, start.gap)
    caller.lastSeq = this.#h.lastSeq()
    this.#h.hub.add(caller)
    for (const p of patterns) this.#h.hub.route(caller, p)
    const runner = start.routed?.(caller) ?? null
    const refusal = this.#subscribe(patterns, waitMs)
    this.#h.joinedWhileDown(caller)
    const refused = await refusal
    if (caller.closed) return { gone: true }
    if (refused !== null) {
      caller.discard()
      return { error: refused }
    }
    this.#h.stats.callersTotal++
    this.#h.metrics.callersTotal.inc({ session: this.#h.name })
    runner?.start()
    return { caller, afterId: start.afterId }
  }

  /**
   * WebSocket callers: adds `patterns` to a live caller — its resume after `lastEventId` for them, its routes, then
   * (at most `waitMs`) the upstream subscriptions. A refused subscription removes the patterns again.
   */
  async addPatterns (caller: Caller, patterns: string[], lastEventId: string | null, waitMs: number): Promise<AddResult> {
    const added = patterns.filter((p) => !caller.patterns.includes(p))
    const planned = this.#h.resume(lastEventId, patterns, false)
    const start = planned instanceof Promise ? await planned : planned
    if ('error' in start) return start
    if (caller.closed) return { gone: true }
    this.#sendResume(caller, start, start.gap === null ? null : { ...start.gap, subscription: patterns })
    const lastSeq = this.#h.lastSeq()
    if (caller.lastSeq < lastSeq) caller.lastSeq = lastSeq
    for (const p of added) {
      caller.addPattern(p)
      this.#h.hub.route(caller, p)
    }
    const refused = await this.#subscribe(added, waitMs)
    if (caller.closed) return { gone: true }
    if (refused !== null) {
      this.removePatterns(caller, added)
      return { error: refused }
    }
    return { afterId: start.afterId }
  }

  /** WebSocket callers: stops delivering `patterns` to a live caller and lets go of their upstream subscriptions. */
  removePatterns (caller: Caller, patterns: readonly string[]): void {
    for (const p of patterns) {
      if (!caller.removePattern(p)) continue
      this.#h.hub.unroute(caller, p)
      this.#h.release(p)
    }
  }

  /** One log entry to every matching caller, counted. */
  deliver (entry: LogEntry): void {
    const delivered = this.#h.hub.deliver(entry)
    if (delivered === 0) return
    this.#h.stats.eventsOut += delivered
    this.#h.metrics.eventsOut.inc({ session: this.#h.name }, delivered)
  }

  /** A `gap` event to one caller (`shown`: what it is told, when it says more than the gap itself). */
  sendGap (caller: Caller, gap: Gap, shown: object = gap): void {
    this.countGap(gap.reason)
    caller.send(sseFrame('gap', shown), undefined, false)
  }

  countGap (reason: GapReason): void {
    this.#h.stats.gaps++
    this.#h.metrics.gaps.inc({ session: this.#h.name, reason })
  }

  /** Waits at most `waitMs` (a subscription still pending then is no refusal): the first refusal, or null. */
  async #subscribe (patterns: string[], waitMs: number): Promise<HttpError | null> {
    const refusals = await Promise.all(patterns.map(async (p) => {
      try {
        return await withDeadline(this.#h.acquire(p, waitMs), waitMs, 'subscription')
      } catch {
        return null
      }
    }))
    return refusals.find((r) => r !== null) ?? null
  }

  #sendResume (caller: Caller, start: ResumeStart, shownGap: object | null): void {
    if (start.gap !== null) this.sendGap(caller, start.gap, shownGap ?? start.gap)
    for (const entry of start.entries) caller.send(entry.frame, entry.id, false)
  }

  #detach (caller: Caller, reason: CloseReason): void {
    const h = this.#h
    if (!h.hub.remove(caller)) return
    h.left?.(caller)
    for (const p of caller.patterns) h.release(p)
    h.log.info({ caller: caller.id, reason, lastEventId: caller.lastWrittenId, durationMs: Date.now() - caller.createdAt }, 'stream closed')
    if (reason === 'slow') {
      h.stats.slowDrops++
      h.metrics.slowDrops.inc({ session: h.name, reason: caller.slowReason ?? 'unknown' })
      h.log.warn({ caller: caller.id, reason: caller.slowReason, lastEventId: caller.lastWrittenId, maxQueuedBytes: caller.maxQueuedBytes }, 'slow caller dropped')
    }
  }
}
