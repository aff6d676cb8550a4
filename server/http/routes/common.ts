/** Helpers shared by the routes: session lookup, channel parsing, the JSON body. */
import type { FastifyInstance } from 'fastify'
import { channelProblem, isMeta, isService } from '../../channels.js'
import { ErrorCode, HttpError } from '../../errors.js'
import type { Session } from '../../session/any-session.js'

export const MAX_CHANNELS_PER_STREAM = 64

export function getSession (app: FastifyInstance, name: string): Session {
  const session = app.bridge.sessions.get(name)
  if (session === undefined) throw new HttpError(404, ErrorCode.UNKNOWN_SESSION, `No session named ${JSON.stringify(name.slice(0, 100))}`)
  return session
}

/** `?channel=/a&channel=/b/*` → validated, de-duplicated patterns. */
export function parseStreamChannels (raw: unknown): string[] {
  const list = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw]
  if (list.length === 0) throw new HttpError(400, ErrorCode.MISSING_CHANNEL, 'Give at least one channel: ?channel=/some/channel (repeatable; /a/* and /a/** are patterns)')
  if (list.length > MAX_CHANNELS_PER_STREAM) throw new HttpError(400, ErrorCode.TOO_MANY_CHANNELS, `At most ${MAX_CHANNELS_PER_STREAM} channels per stream`)
  const out = new Set<string>()
  for (const item of list) {
    if (typeof item !== 'string') throw new HttpError(400, ErrorCode.INVALID_CHANNEL, 'channel must be a string')
    const problem = channelProblem(item, true)
    if (problem !== null) throw new HttpError(400, ErrorCode.INVALID_CHANNEL, `Invalid channel ${JSON.stringify(item.slice(0, 200))}: ${problem}`)
    if (isMeta(item)) throw new HttpError(400, ErrorCode.META_CHANNEL, '/meta/* channels are internal to the Bayeux protocol')
    if (isService(item)) throw new HttpError(400, ErrorCode.INVALID_CHANNEL, '/service/* channels carry no broadcasts; use POST /sessions/:name/call/…')
    out.add(item)
  }
  return [...out]
}

/** The channel of a publish or call URL: `/sessions/x/publish/chat/demo` → `/chat/demo`. */
export function channelFromPath (rest: string | undefined, kind: 'publish' | 'call'): string {
  const channel = '/' + (rest ?? '')
  if (isMeta(channel)) throw new HttpError(400, ErrorCode.META_CHANNEL, 'Publishing to /meta/* is not allowed')
  const problem = channelProblem(channel, false)
  if (problem !== null) throw new HttpError(400, ErrorCode.INVALID_CHANNEL, `Invalid channel ${JSON.stringify(channel.slice(0, 200))}: ${problem}`)
  if (kind === 'call' && !isService(channel)) {
    throw new HttpError(400, ErrorCode.NOT_A_SERVICE_CHANNEL, 'Calls go to /service/* channels: POST /sessions/:name/call/service/…')
  }
  return channel
}

/** The parsed JSON body; an empty body is an error (Bayeux messages need data). */
export function requireBody (body: unknown): unknown {
  if (body === undefined) throw new HttpError(400, ErrorCode.BAD_JSON, 'The request body must be a JSON value (the message data)')
  return body
}
