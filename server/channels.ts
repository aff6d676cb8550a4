/**
 * Channel names and patterns as the bridge sees them (same grammar as client-core: "/a/b", "/a/*", "/a/**").
 * Kept here because the server uses client-core only through its public exports.
 */
const SEGMENT = /^[A-Za-z0-9!#$()+\-.@_{}~ ]+$/

export const MAX_CHANNEL_LENGTH = 1024

/** null when valid, otherwise the reason. */
export function channelProblem (channel: string, allowWildcard: boolean): string | null {
  if (channel.length < 2 || channel[0] !== '/') return 'a channel name starts with "/" and has at least one segment'
  if (channel.length > MAX_CHANNEL_LENGTH) return `a channel name is at most ${MAX_CHANNEL_LENGTH} characters`
  const segments = channel.slice(1).split('/')
  for (let i = 0; i < segments.length; i++) {
    const segment = segments[i]!
    if (segment === '*' || segment === '**') {
      if (!allowWildcard) return 'wildcards are allowed only when subscribing'
      if (i !== segments.length - 1) return 'a wildcard must be the last segment'
      continue
    }
    if (segment === '') return 'a channel name has no empty segment'
    if (!SEGMENT.test(segment)) return `invalid characters in segment "${segment}"`
  }
  return null
}

export function isMeta (channel: string): boolean {
  return channel === '/meta' || channel.startsWith('/meta/')
}

export function isService (channel: string): boolean {
  return channel === '/service' || channel.startsWith('/service/')
}

/** Does the pattern (exact, `/a/*` or `/a/**`) match the concrete channel? */
export function channelMatches (pattern: string, channel: string): boolean {
  if (pattern === channel) return true
  if (pattern.endsWith('/**')) {
    const prefix = pattern.slice(0, -2)
    return channel.startsWith(prefix) && channel.length > prefix.length
  }
  if (pattern.endsWith('/*')) {
    const prefix = pattern.slice(0, -1)
    return channel.startsWith(prefix) && channel.length > prefix.length && !channel.includes('/', prefix.length)
  }
  return false
}

/** Every pattern that matches a concrete channel: `/a/b` → `/a/b`, `/a/*`, `/a/**`, `/**`. */
export function matchingPatterns (channel: string): string[] {
  const out = [channel]
  const segments = channel.split('/')
  for (let n = segments.length - 1; n >= 1; n--) {
    const prefix = segments.slice(0, n).join('/') + '/'
    if (n === segments.length - 1) out.push(prefix + '*')
    out.push(prefix + '**')
  }
  return out
}

/** Does every channel matched by `inner` also match `outer`? (`/a/**` covers `/a/*`, `/a/b/**`, `/a/b`.) */
export function patternCovers (outer: string, inner: string): boolean {
  if (outer === inner) return true
  if (outer.endsWith('/**')) {
    const prefix = outer.slice(0, -2)
    return inner.startsWith(prefix) && inner.length > prefix.length
  }
  if (outer.endsWith('/*')) {
    const prefix = outer.slice(0, -1)
    const rest = inner.slice(prefix.length)
    return inner.startsWith(prefix) && rest.length > 0 && !rest.includes('/') && rest !== '**'
  }
  return false
}
