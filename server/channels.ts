/**
 * Channel names and patterns as the bridge sees them: the grammar, the kinds and matching are client-core's public
 * exports (one definition for the client, the config and the bridge); the bridge adds pattern coverage for its
 * refcounted upstream subscriptions and its access lists.
 */
import { channelKind } from '../client-core/index.js'

export { ChannelRouter, channelKind, channelProblem, channelMatches, isWildcard, matchingPatterns } from '../client-core/index.js'

export function isMeta (channel: string): boolean {
  return channelKind(channel) === 'meta'
}

export function isService (channel: string): boolean {
  return channelKind(channel) === 'service'
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
