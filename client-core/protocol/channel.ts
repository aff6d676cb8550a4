/**
 * Channel names (bayeux.md §1.4). Policy: the CometD grammar (looser than Faye's), checked client-side
 * before anything is sent: starts with "/", no empty segment, characters from
 * [A-Za-z0-9] and `! # $ ( ) * + - . @ _ { ~ } ` and space; wildcards only as the whole last segment.
 *
 * Everything here runs per message (validation per publish, matching per received event), so the common paths
 * allocate nothing: names are scanned character by character, and `ChannelRouter` answers "who is subscribed to
 * this channel" from a bounded per-channel cache.
 */
import { ClientError } from '../errors.js'

const SLASH = 0x2f
const STAR = 0x2a

/** Characters allowed in a segment, by char code (the SEGMENT grammar above, `*` excluded). */
const SEGMENT_CHAR: Uint8Array = (() => {
  const table = new Uint8Array(128)
  const allowed = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$()+-.@_{}~ '
  for (let i = 0; i < allowed.length; i++) table[allowed.charCodeAt(i)] = 1
  return table
})()

export type ChannelKind = 'meta' | 'service' | 'broadcast'

export function channelKind (channel: string): ChannelKind {
  if (channel === '/meta' || channel.startsWith('/meta/')) return 'meta'
  if (channel === '/service' || channel.startsWith('/service/')) return 'service'
  return 'broadcast'
}

export function isWildcard (channel: string): boolean {
  return channel.endsWith('/*') || channel.endsWith('/**')
}

/** Returns null when the name is valid, otherwise the reason. Allocates nothing for a valid name. */
export function channelProblem (channel: unknown, allowWildcard: boolean): string | null {
  if (typeof channel !== 'string') return 'a channel name must be a string'
  const length = channel.length
  if (length < 2 || channel.charCodeAt(0) !== SLASH) return 'a channel name starts with "/" and has at least one segment'
  if (length > 1024) return 'a channel name is at most 1024 characters'
  let start = 1
  while (true) {
    let end = channel.indexOf('/', start)
    const last = end < 0
    if (last) end = length
    const size = end - start
    if ((size === 1 || size === 2) && channel.charCodeAt(start) === STAR && channel.charCodeAt(end - 1) === STAR) {
      if (!allowWildcard) return 'wildcards are allowed only in subscriptions'
      if (!last) return 'a wildcard must be the last segment'
    } else {
      if (size === 0) return 'a channel name has no empty segment'
      for (let i = start; i < end; i++) {
        const code = channel.charCodeAt(i)
        if (code >= 128 || SEGMENT_CHAR[code] === 0) return `invalid characters in segment "${channel.slice(start, end)}"`
      }
    }
    if (last) return null
    start = end + 1
  }
}

export function assertChannel (channel: unknown, allowWildcard: boolean): asserts channel is string {
  const problem = channelProblem(channel, allowWildcard)
  if (problem !== null) throw new ClientError(`Invalid channel ${JSON.stringify(channel)}: ${problem}`)
}

/** Does `channel` start with the first `length` characters of `prefix`? (startsWith without slicing) */
function startsWithPart (channel: string, prefix: string, length: number): boolean {
  if (channel.length < length) return false
  for (let i = length - 1; i >= 0; i--) {
    if (channel.charCodeAt(i) !== prefix.charCodeAt(i)) return false
  }
  return true
}

/** Does `pattern` (exact, `/a/*` or `/a/**`) match the concrete channel? */
export function channelMatches (pattern: string, channel: string): boolean {
  if (pattern === channel) return true
  const n = pattern.length
  if (n < 2 || pattern.charCodeAt(n - 1) !== STAR) return false
  if (pattern.charCodeAt(n - 2) === SLASH) { // `/a/*`: the prefix keeps the trailing "/"
    const prefix = n - 1
    return channel.length > prefix && startsWithPart(channel, pattern, prefix) && channel.indexOf('/', prefix) < 0
  }
  if (n >= 3 && pattern.charCodeAt(n - 2) === STAR && pattern.charCodeAt(n - 3) === SLASH) { // `/a/**`
    const prefix = n - 2
    return channel.length > prefix && startsWithPart(channel, pattern, prefix)
  }
  return false
}

/** Every pattern that matches a concrete channel: `/a/b/c` → `/a/b/c`, `/a/b/*`, `/a/b/**`, `/a/**`, `/**`. */
export function matchingPatterns (channel: string): string[] {
  const out = [channel]
  const segments = channel.split('/') // ['', 'a', 'b', 'c']
  for (let n = segments.length - 1; n >= 1; n--) {
    const prefix = segments.slice(0, n).join('/') + '/'
    if (n === segments.length - 1) out.push(prefix + '*')
    out.push(prefix + '**')
  }
  return out
}

interface Route<T> {
  readonly pattern: string
  readonly value: T
  /** `[value]`: what match() returns for an exact hit while no wildcard is registered */
  readonly alone: readonly T[]
  /** wildcards: the pattern without its `*` / `**` (ends with "/"); exact: '' */
  readonly prefix: string
  /** 0 exact, 1 `/a/*`, 2 `/a/**` */
  readonly kind: 0 | 1 | 2
}

const NOTHING: readonly never[] = Object.freeze([])

/**
 * A map from channel patterns (exact, `/a/*`, `/a/**`) to values, answering which values match a concrete channel
 * in the order `matchingPatterns` lists their patterns (exact, then the deepest wildcard first, `*` before `**`).
 * Each pattern matches a channel once, even a channel that is itself spelled like a wildcard.
 *
 * `match()` allocates nothing when the channel was seen before or when no wildcard is registered: with wildcards,
 * the answer per channel is cached, at most `maxCached` channels (the oldest entry goes first), and the whole cache
 * is dropped whenever a pattern is added or removed. The returned arrays are shared: read them, do not change them.
 */
export class ChannelRouter<T> {
  readonly #routes = new Map<string, Route<T>>()
  /** wildcard routes, longest prefix first, `*` before `**` on the same prefix */
  #wildcards: Array<Route<T>> = []
  readonly #cache = new Map<string, readonly T[]>()
  readonly maxCached: number

  constructor (maxCached = 1024) {
    if (!(maxCached >= 1)) throw new RangeError('maxCached must be at least 1')
    this.maxCached = Math.floor(maxCached)
  }

  get size (): number { return this.#routes.size }
  /** channels whose answer is cached (≤ maxCached) */
  get cachedChannels (): number { return this.#cache.size }

  get (pattern: string): T | undefined { return this.#routes.get(pattern)?.value }
  has (pattern: string): boolean { return this.#routes.has(pattern) }
  keys (): IterableIterator<string> { return this.#routes.keys() }

  * values (): IterableIterator<T> {
    for (const route of this.#routes.values()) yield route.value
  }

  set (pattern: string, value: T): this {
    const previous = this.#routes.get(pattern)
    if (previous !== undefined && previous.value === value) return this
    const n = pattern.length
    const kind = pattern.endsWith('/**') ? 2 : pattern.endsWith('/*') ? 1 : 0
    const prefix = kind === 0 ? '' : pattern.slice(0, n - kind)
    this.#routes.set(pattern, { pattern, value, alone: Object.freeze([value]), prefix, kind })
    this.#changed()
    return this
  }

  delete (pattern: string): boolean {
    if (!this.#routes.delete(pattern)) return false
    this.#changed()
    return true
  }

  clear (): void {
    if (this.#routes.size === 0) return
    this.#routes.clear()
    this.#changed()
  }

  /** The values whose pattern matches `channel`, most specific first. */
  match (channel: string): readonly T[] {
    if (this.#wildcards.length === 0) return this.#routes.get(channel)?.alone ?? NOTHING
    let found = this.#cache.get(channel)
    if (found !== undefined) return found
    found = this.#compute(channel)
    if (this.#cache.size >= this.maxCached) this.#cache.delete(this.#cache.keys().next().value!)
    this.#cache.set(channel, found)
    return found
  }

  #compute (channel: string): readonly T[] {
    const exact = this.#routes.get(channel)
    let out: T[] | null = exact === undefined ? null : [exact.value]
    for (const route of this.#wildcards) {
      if (route.pattern === channel) continue // already there as the exact match
      const prefix = route.prefix
      if (!channel.startsWith(prefix)) continue
      if (route.kind === 1 && channel.indexOf('/', prefix.length) >= 0) continue
      if (out === null) out = []
      out.push(route.value)
    }
    return out === null ? NOTHING : out
  }

  #changed (): void {
    this.#cache.clear()
    const wildcards: Array<Route<T>> = []
    for (const route of this.#routes.values()) if (route.kind !== 0) wildcards.push(route)
    wildcards.sort((a, b) => b.prefix.length - a.prefix.length || a.kind - b.kind)
    this.#wildcards = wildcards
  }
}
