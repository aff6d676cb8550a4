/**
 * The caller's channels, checked once for every entry point (SSE/NDJSON query, publish/call path, WebSocket
 * frames) and for the access lists: the Bayeux grammar, no /meta, /service only for calls. A route declares
 * which channels it takes (`config.channels`); `requestChannels` parses them once per request, for the access
 * check and the handler alike.
 */
import type { FastifyRequest } from 'fastify'
import { channelProblem, isMeta, isService } from '../channels.js'
import { ErrorCode, HttpError } from '../errors.js'

export const MAX_CHANNELS_PER_STREAM = 64

/** Where a route's channels come from: `?channel=` patterns to receive, or the path after publish/ or call/. */
export type RouteChannels = 'stream' | 'publish' | 'call'

declare module 'fastify' {
  interface FastifyContextConfig {
    channels?: RouteChannels
  }
}

/** Advice in the errors, per entry point: how to call a /service channel, and where calls go. */
export interface Hints { service: string, call: string }
export const HTTP_HINTS: Hints = { service: 'use POST /sessions/:name/call/…', call: ': POST /sessions/:name/call/service/…' }
export const WS_HINTS: Hints = { service: 'use op "call"', call: '' }

function invalid (channel: string, problem: string): HttpError {
  return new HttpError(400, ErrorCode.INVALID_CHANNEL, `Invalid channel ${JSON.stringify(channel.slice(0, 200))}: ${problem}`)
}

/** A channel or pattern to receive: Bayeux grammar, wildcards allowed, no /meta or /service. */
export function streamPattern (channel: unknown, hints: Hints = HTTP_HINTS): string {
  if (typeof channel !== 'string') throw new HttpError(400, ErrorCode.MISSING_CHANNEL, 'Give "channel": a channel name or pattern (a string)')
  const problem = channelProblem(channel, true)
  if (problem !== null) throw invalid(channel, problem)
  if (isMeta(channel)) throw new HttpError(400, ErrorCode.META_CHANNEL, '/meta/* channels are internal to the Bayeux protocol')
  if (isService(channel)) throw new HttpError(400, ErrorCode.INVALID_CHANNEL, `/service/* channels carry no broadcasts; ${hints.service}`)
  return channel
}

/** `?channel=/a&channel=/b/*` → validated, de-duplicated patterns (at least one, at most 64). */
export function streamPatterns (raw: unknown): string[] {
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]
  if (list.length === 0) throw new HttpError(400, ErrorCode.MISSING_CHANNEL, 'Give at least one channel: ?channel=/some/channel (repeatable; /a/* and /a/** are patterns)')
  if (list.length > MAX_CHANNELS_PER_STREAM) throw new HttpError(400, ErrorCode.TOO_MANY_CHANNELS, `At most ${MAX_CHANNELS_PER_STREAM} channels per stream`)
  return [...new Set(list.map((item) => streamPattern(item)))]
}

/** A channel to publish or call on: no wildcards, no /meta; calls on /service only. */
export function sendChannel (channel: unknown, kind: 'publish' | 'call', hints: Hints = HTTP_HINTS): string {
  if (typeof channel !== 'string') throw new HttpError(400, ErrorCode.MISSING_CHANNEL, 'Give "channel"')
  if (isMeta(channel)) throw new HttpError(400, ErrorCode.META_CHANNEL, 'Publishing to /meta/* is not allowed')
  const problem = channelProblem(channel, false)
  if (problem !== null) throw invalid(channel, problem)
  if (kind === 'call' && !isService(channel)) throw new HttpError(400, ErrorCode.NOT_A_SERVICE_CHANNEL, `Calls go to /service/* channels${hints.call}`)
  return channel
}

const parsed = new WeakMap<FastifyRequest, string[]>()

/** The channels the request's route declares, parsed once (the access check and the handler share them). */
export function requestChannels (req: FastifyRequest): string[] {
  const known = parsed.get(req)
  if (known !== undefined) return known
  const kind = req.routeOptions.config?.channels
  let channels: string[] = []
  if (kind === 'stream') channels = streamPatterns((req.query as { channel?: unknown } | undefined)?.channel)
  else if (kind !== undefined) channels = [sendChannel('/' + ((req.params as { '*'?: string })['*'] ?? ''), kind)]
  parsed.set(req, channels)
  return channels
}
