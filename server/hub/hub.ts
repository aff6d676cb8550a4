/**
 * The hub: which caller receives which event. Callers are routed by the channel patterns they asked for; each
 * logged event goes to every matching caller once (a caller on several matching patterns gets it once), in log
 * order. The hub knows neither the upstream nor how events are kept: the session feeds it the log's tail.
 */
import { ChannelRouter, channelMatches } from '../channels.js'
import type { Frame } from '../frames.js'
import type { Caller } from './caller.js'

/** A numbered event as the hub delivers it (the event log's entries are such events). */
export interface HubEvent {
  /** position in the session's log: a caller gets each position once, in order */
  seq: number
  id: string
  channel: string
  frame: Frame
  /** replay sessions: the upstream replay position */
  replayId?: number | string
}

/** A caller's live filter: `skip` this event, `deliver` it, or `done` (deliver, and drop the filter). */
export type LiveFilter = (event: HubEvent) => 'skip' | 'deliver' | 'done'

/**
 * The callers of one pattern: a Set to add and remove, and an array of the same callers for delivery, rebuilt after
 * a change (callers come and go far less often than events): iterating a Set costs an iterator step per caller per
 * event, which does not always stay free of allocation.
 */
class Route {
  readonly callers = new Set<Caller>()
  #list: Caller[] | null = null

  get list (): readonly Caller[] { return this.#list ??= [...this.callers] }

  add (caller: Caller): void {
    if (this.callers.has(caller)) return
    this.callers.add(caller)
    this.#list = null
  }

  delete (caller: Caller): void {
    if (this.callers.delete(caller)) this.#list = null
  }
}

export class Hub {
  readonly #callers = new Set<Caller>()
  /** callers by the pattern they asked for; match() answers a channel without building its pattern list */
  readonly #byPattern = new ChannelRouter<Route>()
  /** callers catching up elsewhere (a deep resume): no live delivery until released */
  readonly #held = new Set<Caller>()
  readonly #filters = new Map<Caller, LiveFilter>()

  get size (): number { return this.#callers.size }

  callers (): IterableIterator<Caller> { return this.#callers.values() }

  add (caller: Caller): void { this.#callers.add(caller) }

  /** Forgets the caller (routes, hold, filter); false when it was not here. Its patterns are left to the caller. */
  remove (caller: Caller): boolean {
    if (!this.#callers.delete(caller)) return false
    this.#held.delete(caller)
    this.#filters.delete(caller)
    for (const p of caller.patterns) this.unroute(caller, p)
    return true
  }

  /** Live events matching `pattern` go to the caller from now on. */
  route (caller: Caller, pattern: string): void {
    let route = this.#byPattern.get(pattern)
    if (route === undefined) this.#byPattern.set(pattern, route = new Route())
    route.add(caller)
  }

  unroute (caller: Caller, pattern: string): void {
    const route = this.#byPattern.get(pattern)
    route?.delete(caller)
    if (route?.callers.size === 0) this.#byPattern.delete(pattern)
  }

  callersOf (pattern: string): number { return this.#byPattern.get(pattern)?.callers.size ?? 0 }

  hold (caller: Caller): void { this.#held.add(caller) }
  release (caller: Caller): void { this.#held.delete(caller) }
  filter (caller: Caller, filter: LiveFilter): void { this.#filters.set(caller, filter) }

  /** Fans one logged event out to the matching callers; returns how many got it. */
  deliver (entry: HubEvent): number {
    const seq = entry.seq
    const held = this.#held.size > 0
    const filtered = this.#filters.size > 0
    let delivered = 0
    const routes = this.#byPattern.match(entry.channel)
    for (let r = 0; r < routes.length; r++) {
      const callers = routes[r]!.list
      for (let i = 0; i < callers.length; i++) {
        const caller = callers[i]!
        if (caller.lastSeq >= seq) continue
        if (held && this.#held.has(caller)) continue // catching up: it gets this from the log when it joins
        caller.lastSeq = seq
        if (filtered && this.#skips(caller, entry)) continue
        caller.send(entry.frame, entry.id)
        delivered++
      }
    }
    return delivered
  }

  /** An in-band event (not a message) to every caller, or to those whose patterns match `channel`. */
  announce (frame: Frame, channel?: string): void {
    for (const caller of this.#callers) {
      if (channel === undefined || caller.patterns.some((p) => channelMatches(p, channel))) caller.send(frame, undefined, false)
    }
  }

  /** An in-band event to the callers of exactly `pattern`. */
  announceTo (pattern: string, frame: Frame): void {
    const route = this.#byPattern.get(pattern)
    if (route !== undefined) for (const caller of route.list) caller.send(frame, undefined, false)
  }

  /** `event: shutdown` to every caller (a jittered retry hint, so they do not all come back at once), then closed. */
  shutdown (retryMs: number): void {
    for (const caller of [...this.#callers]) caller.shutdown(retryMs + Math.round(Math.random() * retryMs))
  }

  #skips (caller: Caller, entry: HubEvent): boolean {
    const filter = this.#filters.get(caller)
    if (filter === undefined) return false
    const verdict = filter(entry)
    if (verdict === 'done') this.#filters.delete(caller)
    return verdict === 'skip'
  }
}
