/**
 * Streams opened with a token that expires (a JWT's `exp`) end when the bridge stops accepting that token, with
 * an in-band `token-expired` event: SSE and NDJSON get it as their last event before the response ends, a
 * WebSocket as its last frame before close code 1008. Rights are checked when a stream opens; without this a
 * caller whose token lapsed would keep reading for as long as the connection lives. The caller reconnects with
 * a fresh token and resumes with Last-Event-ID. `auth.jwt.onExpiry: keep` leaves streams open instead.
 *
 * The event is written on the response (or socket) itself, after whatever the stream already wrote: frames are
 * written whole, so it never lands inside one; frames still queued for the caller are not lost, the resume
 * replays them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { frameOf } from '../frames.js'

const SSE_ROUTE = '/sessions/:name/events'
const WS_ROUTE = '/sessions/:name/ws'
/** setTimeout's largest delay (~24.8 days): a later expiry is re-armed on the way */
const MAX_DELAY_MS = 2 ** 31 - 1
/** a peer that does not take the last event within this long is cut off */
const END_DEADLINE_MS = 5_000
/** WebSocket close code: policy violation (RFC 6455 §7.4.1) */
const WS_POLICY = 1008

function expiredFrame (expiresAt: number): ReturnType<typeof frameOf> {
  return frameOf('token-expired', { reason: 'token-expired', expiredAt: new Date(expiresAt).toISOString() })
}

function wantsNdjson (req: FastifyRequest): boolean {
  const accept = req.headers.accept
  return typeof accept === 'string' && /application\/x-ndjson/i.test(accept)
}

/** Calls `fire` at `at` (epoch ms); returns the cancel function. The timer never holds the process. */
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

function endSocket (ws: WebSocket | undefined, raw: IncomingMessage, bytes: Buffer): void {
  if (ws === undefined) { raw.socket.destroy(); return }
  if (ws.readyState !== ws.OPEN) return
  const deadline = setTimeout(() => { ws.terminate() }, END_DEADLINE_MS)
  deadline.unref()
  ws.once('close', () => { clearTimeout(deadline) })
  try {
    ws.send(bytes, { binary: false })
    ws.close(WS_POLICY, 'token expired')
  } catch {
    ws.terminate()
  }
}

/** Installs the onRequest hook (after authentication: it reads `req.principal`) that arms the expiry of streams. */
export function installStreamExpiry (app: FastifyInstance): void {
  const sockets = new WeakMap<IncomingMessage, WebSocket>()
  const expiring = new WeakSet<IncomingMessage>()
  app.websocketServer?.on('connection', (ws: WebSocket, raw: IncomingMessage) => {
    if (expiring.has(raw)) sockets.set(raw, ws)
  })

  app.addHook('onRequest', async (req, reply) => {
    const principal = req.principal
    const expiresAt = principal?.expiresAt
    const route = req.routeOptions.url
    if (expiresAt === undefined || req.method !== 'GET' || (route !== SSE_ROUTE && route !== WS_ROUTE)) return
    const frame = expiredFrame(expiresAt)
    const fire = (): void => {
      req.log.info({ principal: principal?.name }, 'token expired: ending the stream')
      if (route === SSE_ROUTE) endResponse(reply.raw, frame.bytes(wantsNdjson(req) ? 'ndjson' : 'sse'))
      else endSocket(sockets.get(req.raw), req.raw, frame.bytes('ws'))
    }
    if (route === WS_ROUTE) expiring.add(req.raw)
    const cancel = callAt(expiresAt, fire)
    req.raw.socket.once('close', cancel)
    if (route === SSE_ROUTE) reply.raw.once('close', cancel)
  })
}
