/** What the route plugins share: the session of the URL, a free caller slot, the JSON body, request schemas. */
import type { FastifyInstance } from 'fastify'
import { ErrorCode, HttpError } from '../../errors.js'
import type { Session } from '../../any-session.js'

export function getSession (app: FastifyInstance, name: string): Session {
  const session = app.bridge.sessions.get(name)
  if (session === undefined) throw new HttpError(404, ErrorCode.UNKNOWN_SESSION, `No session named ${JSON.stringify(name.slice(0, 100))}`)
  return session
}

/** A new stream (SSE, NDJSON, WebSocket) needs a free caller slot: at most `sse.maxCallers` across the bridge. */
export function requireCallerSlot (app: FastifyInstance): void {
  const { sse } = app.bridge.config
  if (app.bridge.callerCount() < sse.maxCallers) return
  throw new HttpError(503, ErrorCode.TOO_MANY_CALLERS, `The bridge serves at most ${sse.maxCallers} streams`, {
    headers: { 'Retry-After': String(Math.max(1, Math.ceil(sse.retryMs / 1000))) }
  })
}

/** The parsed JSON body; an empty body is an error (Bayeux messages need data). */
export function requireBody (body: unknown): unknown {
  if (body === undefined) throw new HttpError(400, ErrorCode.BAD_JSON, 'The request body must be a JSON value (the message data)')
  return body
}

/** Longest Last-Event-ID taken from a caller (longer ones are cut: no id of ours is that long). */
export const MAX_ID_LENGTH = 200

/** A caller's Last-Event-ID (header, query or frame field), trimmed and bounded; null when none. */
export function lastEventIdOf (value: unknown): string | null {
  return typeof value === 'string' && value !== '' ? value.trim().slice(0, MAX_ID_LENGTH) : null
}

/** How long a new stream waits for its upstream subscriptions before it starts anyway (a refusal within it is a 4xx). */
export function subscribeWaitMs (http: { publishTimeoutMs: number }): number {
  return Math.min(http.publishTimeoutMs, 10_000)
}

/** `:name` of the session routes. */
export const sessionParams = {
  type: 'object',
  properties: { name: { type: 'string', minLength: 1, description: 'the session name' } },
  required: ['name']
} as const

/** `:name` and the channel path after publish/ or call/. */
export const channelPathParams = {
  type: 'object',
  properties: {
    name: sessionParams.properties.name,
    '*': { type: 'string', description: 'the channel without its leading slash' }
  },
  required: ['name']
} as const

declare module 'fastify' {
  interface FastifySchema {
    /** one line on what the route does (the API description is generated from the route schemas) */
    summary?: string
  }
}

/** A session's JSON view (session/view.ts), as the API description documents it. */
export const sessionAnswer = {
  description: 'A session: state, subscriptions, counters, last error (no secrets)',
  type: 'object',
  properties: {
    name: { type: 'string' },
    url: { type: 'string', description: 'credentials and query values redacted' },
    state: { type: 'string' },
    ready: { type: 'boolean' },
    notReadyReason: { type: ['string', 'null'] },
    connectionType: { type: ['string', 'null'] },
    clientId: { type: ['string', 'null'] },
    epoch: { type: 'string' },
    lastEventId: { type: ['string', 'null'] },
    callers: { type: 'integer', minimum: 0 },
    subscriptions: { type: 'array', items: { type: 'object' } },
    buffer: { type: 'object', properties: { size: { type: 'integer' }, capacity: { type: 'integer' } }, required: ['size', 'capacity'] },
    counters: { type: 'object', additionalProperties: { type: 'number' } },
    lastError: { type: ['object', 'null'] },
    lastMessageAt: { type: ['string', 'null'] }
  },
  required: ['name', 'url', 'state', 'ready', 'epoch', 'callers', 'subscriptions', 'buffer', 'counters']
} as const
