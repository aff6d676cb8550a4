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
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify'
import type { WebSocket, RawData } from 'ws'
import type {} from '@fastify/websocket'
import { ErrorCode, HttpError } from '../../errors.js'
import { frameOf } from '../../frames.js'
import type { Caller } from '../../hub/caller.js'
import { WsSink } from '../../hub/sinks.js'
import type { Session } from '../../any-session.js'
import { ANONYMOUS } from '../auth.js'
import type { AccessControl, Principal } from '../auth.js'
import { MAX_CHANNELS_PER_STREAM, WS_HINTS, sendChannel, streamPattern } from '../channel-rules.js'
import { getSession, lastEventIdOf, requireCallerSlot, sessionParams, subscribeWaitMs } from './common.js'

interface WsRoute { Params: { name: string } }

/** Operations in flight on one socket at most (more get `too_many_requests`). */
export const MAX_PENDING_OPS = 64
const MAX_REF_LENGTH = 200

type Ref = string | number | null

export const wsRoutes: FastifyPluginAsync = async (app) => {
  app.route<WsRoute>({
    method: 'GET',
    url: '/sessions/:name/ws',
    config: { access: 'session' },
    schema: { params: sessionParams, summary: 'A WebSocket: subscribe, unsubscribe, publish and call in JSON frames', tags: ['streams'] },
    // runs before the upgrade: a refusal is a plain HTTP answer
    preHandler: async (req) => {
      getSession(app, req.params.name)
      requireCallerSlot(app)
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
  const sink = new WsSink(socket, req.raw.socket)
  // frames that arrive before the caller is registered are handled right after, in order
  const early: Array<[RawData, boolean]> = []
  const collect = (data: RawData, isBinary: boolean): void => { early.push([data, isBinary]) }
  socket.on('message', collect)
  const attached = await session.callers.attach(sink, [], null, 0)
  if ('error' in attached) { socket.close(1011, attached.error.code); return }
  if ('gone' in attached) return
  attached.caller.start()
  const principal = req.principal ?? ANONYMOUS
  req.log.info({ session: session.name, caller: attached.caller.id, principal: principal.name }, 'websocket opened')
  // the rights are read per operation: a configuration reload replaces app.access and may change this principal
  const connection = new SocketOps(session, attached.caller, principal, () => app.access, req)
  app.openStreams.bindSocket(req, { socket, patterns: () => attached.caller.patterns, rightsChanged: (p) => { connection.principal = p } })
  socket.off('message', collect)
  socket.on('message', (data: RawData, isBinary: boolean) => { connection.handle(data, isBinary) })
  for (const [data, isBinary] of early) connection.handle(data, isBinary)
}

/** The operations of one socket: each frame parsed, checked, run, and answered with an ack or an error frame. */
class SocketOps {
  #pending = 0

  constructor (
    readonly session: Session,
    readonly caller: Caller,
    public principal: Principal,
    readonly accessNow: () => AccessControl,
    readonly req: FastifyRequest
  ) {}

  handle (data: RawData, isBinary: boolean): void {
    if (this.caller.closed) return
    let ref: Ref = null
    let op: string | null = null
    try {
      const f = parseFrame(data, isBinary)
      ref = validRef(f.ref)
      op = typeof f.op === 'string' ? f.op.slice(0, 32) : null
      if (this.#pending >= MAX_PENDING_OPS) throw new HttpError(429, ErrorCode.TOO_MANY_REQUESTS, `At most ${MAX_PENDING_OPS} operations in flight per socket`)
      switch (f.op) {
        case 'subscribe': this.#subscribe(ref, f); return
        case 'unsubscribe': this.#unsubscribe(ref, f); return
        case 'publish':
        case 'call': this.#send(ref, f, f.op); return
        default:
          throw new HttpError(400, ErrorCode.BAD_REQUEST, 'Unknown op: use subscribe, unsubscribe, publish or call')
      }
    } catch (err) {
      this.#fail(ref, op, err)
    }
  }

  #subscribe (ref: Ref, f: Record<string, unknown>): void {
    const channel = streamPattern(f.channel, WS_HINTS)
    if (!this.accessNow().canSubscribe(this.principal, channel)) throw new HttpError(403, ErrorCode.FORBIDDEN, `This token may not subscribe to ${channel}`)
    const { caller, session } = this
    if (!caller.patterns.includes(channel) && caller.patterns.length >= MAX_CHANNELS_PER_STREAM) {
      throw new HttpError(400, ErrorCode.TOO_MANY_CHANNELS, `At most ${MAX_CHANNELS_PER_STREAM} channels per socket`)
    }
    const lastEventId = lastEventIdOf(f.lastEventId)
    this.#run(ref, 'subscribe', async () => {
      const result = await session.callers.addPatterns(caller, [channel], lastEventId, subscribeWaitMs(this.#http))
      if ('gone' in result) return
      if ('error' in result) throw result.error
      this.#reply('ack', { ref, op: 'subscribe', channel, lastEventId: result.afterId })
    })
  }

  #unsubscribe (ref: Ref, f: Record<string, unknown>): void {
    const channel = streamPattern(f.channel, WS_HINTS)
    const held = this.caller.patterns.includes(channel)
    this.session.callers.removePatterns(this.caller, [channel])
    this.#reply('ack', { ref, op: 'unsubscribe', channel, wasSubscribed: held })
  }

  #send (ref: Ref, f: Record<string, unknown>, op: 'publish' | 'call'): void {
    const channel = sendChannel(f.channel, op, WS_HINTS)
    if (!this.accessNow().canPublish(this.principal, channel)) throw new HttpError(403, ErrorCode.FORBIDDEN, `This token may not ${op === 'call' ? 'call' : 'publish to'} ${channel}`)
    if (!('data' in f)) throw new HttpError(400, ErrorCode.BAD_REQUEST, `${op} needs "data" (any JSON value)`)
    const payload = f.data
    const { session } = this
    if (op === 'publish') {
      this.#run(ref, op, async () => {
        const reply = await session.publish(channel, payload, this.#http.publishTimeoutMs)
        this.#reply('ack', { ref, op, channel, successful: reply.successful ?? true, id: reply.id ?? null })
      })
    } else {
      this.#run(ref, op, async () => {
        const result = await session.call(channel, payload, this.#http.callTimeoutMs)
        this.#reply('ack', { ref, op, channel, data: result === undefined ? null : result })
      })
    }
  }

  get #http (): { publishTimeoutMs: number, callTimeoutMs: number } {
    return this.req.server.bridge.config.http
  }

  #run (ref: Ref, op: string, fn: () => Promise<void>): void {
    this.#pending++
    fn().catch((err: unknown) => { if (!this.caller.closed) this.#fail(ref, op, err) }).finally(() => { this.#pending-- })
  }

  #reply (type: 'ack' | 'error', body: Record<string, unknown>): void {
    this.caller.send(frameOf(type, body))
  }

  #fail (ref: Ref, op: string | null, err: unknown): void {
    if (err instanceof HttpError) {
      this.#reply('error', { ref, op, error: err.code, message: err.message, ...err.details })
      return
    }
    this.req.log.error({ err }, 'websocket operation failed')
    this.#reply('error', { ref, op, error: ErrorCode.INTERNAL, message: 'Internal error' })
  }
}

/** One caller frame: a JSON object in a text frame. */
function parseFrame (data: RawData, isBinary: boolean): Record<string, unknown> {
  if (isBinary) throw new HttpError(400, ErrorCode.BAD_REQUEST, 'Send JSON text frames')
  const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8')
  let frame: unknown
  try {
    frame = JSON.parse(text)
  } catch (err) {
    throw new HttpError(400, ErrorCode.BAD_JSON, `The frame is not valid JSON: ${(err as Error).message}`)
  }
  if (typeof frame !== 'object' || frame === null || Array.isArray(frame)) throw new HttpError(400, ErrorCode.BAD_REQUEST, 'A frame is a JSON object with an "op"')
  return frame as Record<string, unknown>
}

function validRef (ref: unknown): Ref {
  if (typeof ref === 'number' && Number.isFinite(ref)) return ref
  if (typeof ref === 'string') return ref.slice(0, MAX_REF_LENGTH)
  return null
}
