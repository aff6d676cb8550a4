/**
 * GET /sessions/:name/ws — the WebSocket endpoint (docs/http-api.md). One JSON object per text frame both ways.
 *
 * Caller frames: `{"op":"subscribe","channel":…,"lastEventId"?:…,"ref"?:…}`, `{"op":"unsubscribe","channel":…}`,
 * `{"op":"publish","channel":…,"data":…}`, `{"op":"call","channel":"/service/…","data":…}`.
 * Server frames: `{"type":"message","id":…,"channel":…,"data":…}`, `{"type":"ack","ref":…,"op":…,…}`,
 * `{"type":"error","ref":…,"error":…,"message":…}`, `{"type":"upstream",…}`, `{"type":"gap",…}`,
 * `{"type":"slow",…}` (then close 1013), `{"type":"shutdown",…}` (then close 1001).
 *
 * The socket is one Caller of the session (same fan-out, same bounded queue and write deadline as SSE; acks and
 * errors go through that queue too, so they keep their order with the messages). Invalid frames get an error
 * frame; nothing a caller sends can crash the bridge.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket, RawData } from 'ws'
import type {} from '@fastify/websocket'
import { channelProblem, isMeta, isService } from '../../channels.js'
import { ErrorCode, HttpError } from '../../errors.js'
import { frameOf } from '../../frames.js'
import { WsSink } from '../../hub/sinks.js'
import type { Session } from '../../session/any-session.js'
import { ANONYMOUS } from '../auth.js'
import { MAX_CHANNELS_PER_STREAM, getSession } from './common.js'

interface WsRoute { Params: { name: string } }

/** Operations in flight on one socket at most (more get `too_many_requests`). */
export const MAX_PENDING_OPS = 64
const MAX_REF_LENGTH = 200
const MAX_ID_LENGTH = 200

type Ref = string | number | null

class WsError extends Error {
  constructor (readonly code: string, message: string, readonly details: Record<string, unknown> = {}) {
    super(message)
  }
}

export function wsRoutes (app: FastifyInstance): void {
  app.route<WsRoute>({
    method: 'GET',
    url: '/sessions/:name/ws',
    // runs before the upgrade: a refusal is a plain HTTP answer
    preHandler: async (req) => {
      getSession(app, req.params.name)
      const { sse } = app.bridge.config
      if (app.bridge.callerCount() >= sse.maxCallers) {
        throw new HttpError(503, ErrorCode.TOO_MANY_CALLERS, `The bridge serves at most ${sse.maxCallers} streams`, {
          headers: { 'Retry-After': String(Math.max(1, Math.ceil(sse.retryMs / 1000))) }
        })
      }
    },
    handler: async (req, reply) => {
      getSession(app, req.params.name)
      return reply.code(426).header('Upgrade', 'websocket').type('application/json; charset=utf-8')
        .send({ error: ErrorCode.BAD_REQUEST, message: 'This endpoint speaks WebSocket: send an Upgrade request' })
    },
    wsHandler: (socket: WebSocket, req: FastifyRequest) => {
      const name = (req.params as { name: string }).name
      const session = app.bridge.sessions.get(name)
      if (session === undefined) { socket.close(1011, 'session gone'); return }
      void serveSocket(app, session, socket, req)
    }
  })
}

async function serveSocket (app: FastifyInstance, session: Session, socket: WebSocket, req: FastifyRequest): Promise<void> {
  const principal = req.principal ?? ANONYMOUS
  const access = app.access
  const http = app.bridge.config.http
  const sink = new WsSink(socket, req.raw.socket)
  // frames that arrive before the caller is registered are handled right after, in order
  const early: Array<[RawData, boolean]> = []
  const collect = (data: RawData, isBinary: boolean): void => { early.push([data, isBinary]) }
  socket.on('message', collect)
  const attached = await session.attach(sink, [], null, 0)
  if ('error' in attached) { socket.close(1011, attached.error.code); return }
  if ('gone' in attached) return
  const caller = attached.caller
  caller.start()
  req.log.info({ session: session.name, caller: caller.id, principal: principal.name }, 'websocket opened')
  let pending = 0

  const send = (type: 'ack' | 'error', body: Record<string, unknown>): void => {
    caller.send(frameOf(type, body))
  }
  const fail = (ref: Ref, op: string | null, err: unknown): void => {
    if (err instanceof WsError) send('error', { ref, op, error: err.code, message: err.message, ...err.details })
    else if (err instanceof HttpError) send('error', { ref, op, error: err.code, message: err.message, ...err.details })
    else {
      req.log.error({ err }, 'websocket operation failed')
      send('error', { ref, op, error: ErrorCode.INTERNAL, message: 'Internal error' })
    }
  }

  const handle = (data: RawData, isBinary: boolean): void => {
    if (caller.closed) return
    let ref: Ref = null
    let op: string | null = null
    try {
      if (isBinary) throw new WsError(ErrorCode.BAD_REQUEST, 'Send JSON text frames')
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8')
      let frame: unknown
      try {
        frame = JSON.parse(text)
      } catch (err) {
        throw new WsError(ErrorCode.BAD_JSON, `The frame is not valid JSON: ${(err as Error).message}`)
      }
      if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) throw new WsError(ErrorCode.BAD_REQUEST, 'A frame is a JSON object with an "op"')
      const f = frame as Record<string, unknown>
      ref = validRef(f.ref)
      op = typeof f.op === 'string' ? f.op.slice(0, 32) : null
      if (pending >= MAX_PENDING_OPS) throw new WsError(ErrorCode.TOO_MANY_REQUESTS, `At most ${MAX_PENDING_OPS} operations in flight per socket`)
      switch (f.op) {
        case 'subscribe': {
          const channel = streamChannel(f.channel)
          if (!access.canSubscribe(principal, channel)) throw new WsError(ErrorCode.FORBIDDEN, `This token may not subscribe to ${channel}`)
          if (!caller.patterns.includes(channel) && caller.patterns.length >= MAX_CHANNELS_PER_STREAM) {
            throw new WsError(ErrorCode.TOO_MANY_CHANNELS, `At most ${MAX_CHANNELS_PER_STREAM} channels per socket`)
          }
          const lastEventId = typeof f.lastEventId === 'string' && f.lastEventId !== '' ? f.lastEventId.trim().slice(0, MAX_ID_LENGTH) : null
          run(ref, 'subscribe', async () => {
            const result = await session.addPatterns(caller, [channel], lastEventId, Math.min(http.publishTimeoutMs, 10_000))
            if ('gone' in result) return
            if ('error' in result) throw result.error
            send('ack', { ref, op: 'subscribe', channel, lastEventId: result.afterId })
          })
          return
        }
        case 'unsubscribe': {
          const channel = streamChannel(f.channel)
          const held = caller.patterns.includes(channel)
          session.removePatterns(caller, [channel])
          send('ack', { ref, op: 'unsubscribe', channel, wasSubscribed: held })
          return
        }
        case 'publish':
        case 'call': {
          const channel = sendChannel(f.channel, f.op)
          if (!access.canPublish(principal, channel)) throw new WsError(ErrorCode.FORBIDDEN, `This token may not ${f.op === 'call' ? 'call' : 'publish to'} ${channel}`)
          if (!('data' in f)) throw new WsError(ErrorCode.BAD_REQUEST, `${f.op} needs "data" (any JSON value)`)
          const payload = f.data
          if (f.op === 'publish') {
            run(ref, 'publish', async () => {
              const reply = await session.publish(channel, payload, http.publishTimeoutMs)
              send('ack', { ref, op: 'publish', channel, successful: reply.successful ?? true, id: reply.id ?? null })
            })
          } else {
            run(ref, 'call', async () => {
              const result = await session.call(channel, payload, http.callTimeoutMs)
              send('ack', { ref, op: 'call', channel, data: result === undefined ? null : result })
            })
          }
          return
        }
        default:
          throw new WsError(ErrorCode.BAD_REQUEST, 'Unknown op: use subscribe, unsubscribe, publish or call')
      }
    } catch (err) {
      fail(ref, op, err)
    }
  }

  const run = (ref: Ref, op: string, fn: () => Promise<void>): void => {
    pending++
    fn().catch((err: unknown) => { if (!caller.closed) fail(ref, op, err) }).finally(() => { pending-- })
  }

  socket.off('message', collect)
  socket.on('message', handle)
  for (const [data, isBinary] of early) handle(data, isBinary)
}

function validRef (ref: unknown): Ref {
  if (typeof ref === 'number' && Number.isFinite(ref)) return ref
  if (typeof ref === 'string') return ref.slice(0, MAX_REF_LENGTH)
  return null
}

/** A channel or pattern to receive: Bayeux grammar, wildcards allowed, no /meta or /service. */
function streamChannel (channel: unknown): string {
  if (typeof channel !== 'string') throw new WsError(ErrorCode.MISSING_CHANNEL, 'Give "channel": a channel name or pattern')
  const problem = channelProblem(channel, true)
  if (problem !== null) throw new WsError(ErrorCode.INVALID_CHANNEL, `Invalid channel ${JSON.stringify(channel.slice(0, 200))}: ${problem}`)
  if (isMeta(channel)) throw new WsError(ErrorCode.META_CHANNEL, '/meta/* channels are internal to the Bayeux protocol')
  if (isService(channel)) throw new WsError(ErrorCode.INVALID_CHANNEL, '/service/* channels carry no broadcasts; use op "call"')
  return channel
}

/** A channel to publish or call on: no wildcards, no /meta; calls on /service only. */
function sendChannel (channel: unknown, op: 'publish' | 'call'): string {
  if (typeof channel !== 'string') throw new WsError(ErrorCode.MISSING_CHANNEL, 'Give "channel"')
  if (isMeta(channel)) throw new WsError(ErrorCode.META_CHANNEL, 'Publishing to /meta/* is not allowed')
  const problem = channelProblem(channel, false)
  if (problem !== null) throw new WsError(ErrorCode.INVALID_CHANNEL, `Invalid channel ${JSON.stringify(channel.slice(0, 200))}: ${problem}`)
  if (op === 'call' && !isService(channel)) throw new WsError(ErrorCode.NOT_A_SERVICE_CHANNEL, 'Calls go to /service/* channels')
  return channel
}
