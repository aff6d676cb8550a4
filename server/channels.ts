/**
 * Channel names and patterns as the bridge sees them: validation and matching come from client-core's public
 * exports (one grammar for both); the bridge adds pattern coverage for its refcounted upstream subscriptions.
 */
export { ChannelRouter, channelProblem, channelMatches, matchingPatterns } from '../client-core/index.js'

export function isMeta (channel: string): boolean {
  return channel === '/meta' || channel.startsWith('/meta/')
}

export function isService (channel: string): boolean {
  return channel === '/service' || channel.startsWith('/service/')
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
