/**
 * Channel names (bayeux.md §1.4). Policy: the CometD grammar (looser than Faye's), checked client-side
 * before anything is sent: starts with "/", no empty segment, characters from
 * [A-Za-z0-9] and `! # $ ( ) * + - . @ _ { ~ } ` and space; wildcards only as the whole last segment.
 */
import { ClientError } from '../errors.js'

const SEGMENT = /^[A-Za-z0-9!#$()+\-.@_{}~ ]+$/

export type ChannelKind = 'meta' | 'service' | 'broadcast'

export function channelKind (channel: string): ChannelKind {
  if (channel === '/meta' || channel.startsWith('/meta/')) return 'meta'
  if (channel === '/service' || channel.startsWith('/service/')) return 'service'
  return 'broadcast'
}

export function isWildcard (channel: string): boolean {
  return channel.endsWith('/*') || channel.endsWith('/**')
}

/** Returns null when the name is valid, otherwise the reason. */
export function channelProblem (channel: unknown, allowWildcard: boolean): string | null {
  if (typeof channel !== 'string') return 'a channel name must be a string'
  if (channel.length < 2 || channel[0] !== '/') return 'a channel name starts with "/" and has at least one segment'
  if (channel.length > 1024) return 'a channel name is at most 1024 characters'
  const segments = channel.slice(1).split('/')
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!
    const last = i === segments.length - 1
    if (segment === '*' || segment === '**') {
      if (!allowWildcard) return 'wildcards are allowed only in subscriptions'
      if (!last) return 'a wildcard must be the last segment'
      continue
    }
    if (segment === '') return 'a channel name has no empty segment'
    if (!SEGMENT.test(segment)) return `invalid characters in segment "${segment}"`
  }
  return null
}

export function assertChannel (channel: unknown, allowWildcard: boolean): asserts channel is string {
  const problem = channelProblem(channel, allowWildcard)
  if (problem !== null) throw new ClientError(`Invalid channel ${JSON.stringify(channel)}: ${problem}`)
}

/** Does `pattern` (exact, `/a/*` or `/a/**`) match the concrete channel? */
export function channelMatches (pattern: string, channel: string): boolean {
  if (pattern === channel) return true
  if (pattern.endsWith('/**')) {
    const prefix = pattern.slice(0, -2) // keeps the trailing "/"
    return channel.startsWith(prefix) && channel.length > prefix.length
  }
  if (pattern.endsWith('/*')) {
    const prefix = pattern.slice(0, -1)
    return channel.startsWith(prefix) && channel.length > prefix.length && !channel.includes('/', prefix.length)
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
