/**
 * The streams open now (SSE, NDJSON, WebSocket), and how one ends in-band when its caller's rights end while it
 * is open. Rights are checked when a request arrives; a stream lives longer than that, so two things end one:
 *
 * - **expiry**: a stream opened with a JWT that carries `exp` ends when the bridge stops accepting that token
 *   (`auth.jwt.onExpiry: end`, the default), with a last `token-expired` event;
 * - **revocation**: a configuration reload that takes the caller's rights away (its token removed, its session or
 *   one of its channels no longer allowed) ends the stream with a last `access-revoked` event; a WebSocket's later
 *   operations are checked with its rights as re-read.
 *
 * SSE and NDJSON get the event as their last one before the response ends, a WebSocket as its last frame before
 * close code 1008. The event is written after whatever the stream already wrote (frames are written whole, so it
 * never lands inside one); frames still queued for the caller are not lost, the resume replays them. The caller
 * reconnects (with a new token) and resumes with Last-Event-ID.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { HttpError } from '../errors.js'
import { frameOf } from '../frames.js'
import type { Frame } from '../frames.js'
import type { AccessControl, Principal } from './auth.js'
import { recheckRequest } from './auth.js'
import { requestChannels } from './channel-rules.js'

const SSE_ROUTE = '/sessions/:name/events'
const WS_ROUTE = '/sessions/:name/ws'
/** setTimeout's largest delay (~24.8 days): a later expiry is re-armed on the way */
const MAX_DELAY_MS = 2 ** 31 - 1
/** a peer that does not take the last event within this long is cut off */
const END_DEADLINE_MS = 5_000
/** WebSocket close code: policy violation (RFC 6455 §7.4.1) */
const WS_POLICY = 1008

declare module 'fastify' {
  interface FastifyInstance {
    openStreams: OpenStreams
  }
}

/** What a WebSocket route tells about its socket once the caller is attached. */
export interface SocketBinding {
  socket: WebSocket
  /** the patterns the socket holds now */
  patterns: () => readonly string[]
  /** its rights as re-read after a reload (its later operations are checked with them) */
  rightsChanged: (principal: Principal) => void
}

interface OpenStream {
  readonly req: FastifyRequest
  readonly raw: ServerResponse
  readonly ws: boolean
  socket: SocketBinding | null
  cancelExpiry: (() => void) | null
}

export interface RecheckOutcome { checked: number, revoked: number }

export class OpenStreams {
  readonly #streams = new Map<IncomingMessage, OpenStream>()

  /** A WebSocket route's socket, once its caller is attached. */
  bindSocket (req: FastifyRequest, binding: SocketBinding): void {
    const stream = this.#streams.get(req.raw)
    if (stream !== undefined) stream.socket = binding
  }

  /**
   * Every open stream's rights under `access` (a reloaded configuration): the ones that lost them end with an
   * `access-revoked` event. Never rejects.
   */
  async recheck (access: AccessControl): Promise<RecheckOutcome> {
    const streams = [...this.#streams.values()]
    const results = await Promise.all(streams.map(async (s) => await this.#recheckOne(s, access)))
    return { checked: streams.length, revoked: results.filter((revoked) => revoked).length }
  }

  /** Tracks `req` when it opens a stream (after authentication: it reads `req.principal`), and arms its expiry. */
  track (req: FastifyRequest, raw: ServerResponse, expiring: boolean): void {
    const route = req.routeOptions.url
    if (req.method !== 'GET' || (route !== SSE_ROUTE && route !== WS_ROUTE)) return
    const stream: OpenStream = { req, raw, ws: route === WS_ROUTE, socket: null, cancelExpiry: null }
    this.#streams.set(req.raw, stream)
    const expiresAt = req.principal?.expiresAt
    if (expiring && expiresAt !== undefined) {
      const frame = frameOf('token-expired', { reason: 'token-expired', expiredAt: new Date(expiresAt).toISOString() })
      stream.cancelExpiry = callAt(expiresAt, () => {
        req.log.info({ principal: req.principal?.name }, 'token expired: ending the stream')
        this.#end(stream, frame, 'token expired')
      })
    }
    const forget = (): void => {
      stream.cancelExpiry?.()
      if (this.#streams.get(req.raw) === stream) this.#streams.delete(req.raw)
    }
    req.raw.socket.once('close', forget)
    raw.once('close', () => { if (!stream.ws) forget() })
  }

  async #recheckOne (stream: OpenStream, access: AccessControl): Promise<boolean> {
    const { req } = stream
    let refusal: string | null = null
    try {
      const principal = await recheckRequest(req, access)
      const patterns = stream.socket?.patterns() ?? (stream.ws ? [] : requestChannels(req))
      const denied = principal === null ? [] : patterns.filter((p) => !access.canSubscribe(principal, p))
      if (denied.length > 0) refusal = `This token may not subscribe to ${denied.slice(0, 5).join(', ')}`
      else if (principal !== null) stream.socket?.rightsChanged(principal)
    } catch (err) {
      refusal = err instanceof HttpError ? err.message : 'the rights of this stream could not be checked again'
    }
    if (refusal === null) return false
    req.log.info({ principal: req.principal?.name, reason: refusal }, 'access revoked by a configuration reload: ending the stream')
    this.#end(stream, frameOf('access-revoked', { reason: 'access-revoked', message: refusal }), 'access revoked')
    return true
  }

  #end (stream: OpenStream, frame: Frame, why: string): void {
    stream.cancelExpiry?.()
    if (!stream.ws) {
      endResponse(stream.raw, frame.bytes(wantsNdjson(stream.req) ? 'ndjson' : 'sse'))
      return
    }
    endSocket(stream.socket?.socket, stream.req.raw, frame.bytes('ws'), why)
  }
}

/** Decorates `app.openStreams` and tracks every stream from its request on (install after authentication). */
export function installOpenStreams (app: FastifyInstance): void {
  const streams = new OpenStreams()
  app.decorate('openStreams', streams)
  app.addHook('onRequest', async (req, reply) => {
    streams.track(req, reply.raw, app.access.jwt?.onExpiry === 'end')
  })
}

function wantsNdjson (req: FastifyRequest): boolean {
  const accept = req.headers.accept
  return typeof accept === 'string' && /application\/x-ndjson/i.test(accept)
}

/** Calls `fire` at `when` (epoch ms); returns the cancel function. The timer never holds the process. */
function callAt (when: number, fire: () => void): () => void {
  let timer: NodeJS.Timeout
  const arm = (): void => {
    const delay = when - Date.now()
    timer = setTimeout(delay > MAX_DELAY_MS ? arm : fire, Math.max(0, Math.min(delay, MAX_DELAY_MS)))
    timer.unref()
  }
  arm()
  return () => { clearTimeout(timer) }
}

function endResponse (res: ServerResponse, bytes: Buffer): void {
  if (res.writableEnded || res.destroyed) return
  const socket = res.socket
  // the stream has not started (still attaching): there is nothing to end in-band, the caller just retries
  if (!res.headersSent || socket === null) { res.destroy(); return }
  const deadline = setTimeout(() => { socket.destroy() }, END_DEADLINE_MS)
  deadline.unref()
  socket.once('close', () => { clearTimeout(deadline) })
  res.end(bytes, () => { socket.end() })
}

function endSocket (ws: WebSocket | undefined, raw: IncomingMessage, bytes: Buffer, why: string): void {
  if (ws === undefined) { raw.socket.destroy(); return }
  if (ws.readyState !== ws.OPEN) return
  const deadline = setTimeout(() => { ws.terminate() }, END_DEADLINE_MS)
  deadline.unref()
  ws.once('close', () => { clearTimeout(deadline) })
  try {
    ws.send(bytes, { binary: false })
    ws.close(WS_POLICY, why)
  } catch {
    ws.terminate()
  }
}
