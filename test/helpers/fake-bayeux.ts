/**
 * SCRIPTED FAKE Bayeux servers (NOT a real peer): each request/frame is answered by a test-supplied
 * handler, to produce wire faults that real servers cannot (malformed JSON, wrong types, missing
 * fields, HTTP errors, cut sockets, arbitrary websocket frames). For protocol behaviour, test against
 * the real peers in faye.ts and cometd-server.ts instead.
 *
 *   const fake = await startScriptedFake((messages) =>
 *     messages[0]?.channel === '/meta/connect' ? { destroy: true } : { body: happyPath(messages) })
 *   t.teardown(fake.close)
 *
 *   const wsFake = await startScriptedFakeWs((messages, ctx) => { ctx.send('not json'); ctx.terminate() })
 *
 * `happyPath(messages)` builds successful replies for every message, so a script overrides only the
 * step it is about. Every request (HTTP) and frame (ws) is recorded in `requests` / `frames`.
 */
import type http from 'node:http'
import type { Socket } from 'node:net'
import { WebSocketServer, type WebSocket, type RawData } from 'ws'
import {
  baseUrl,
  closeServer,
  createHttpServer,
  idempotent,
  listen,
  type TlsOptions,
} from './net-util.js'

/** A Bayeux message as the fake sees it (nothing is validated). */
export interface FakeMessage {
  channel?: string
  id?: string
  clientId?: string
  [key: string]: unknown
}

export interface FakeRequest {
  /** 0-based index of this request (or frame) since start. */
  index: number
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  rawBody: string
  /** True when rawBody was not a JSON array/object (messages is then []). */
  malformed: boolean
}

export interface ScriptedReply {
  /** HTTP status; default 200. */
  status?: number
  /** A string is sent verbatim (use it for malformed JSON); anything else is JSON.stringify'd. */
  body?: string | object | unknown[]
  headers?: Record<string, string>
  /** Wait before answering (or destroying). */
  delayMs?: number
  /** Destroy the socket instead of answering: true = close (FIN), 'reset' = RST. */
  destroy?: boolean | 'reset'
}

export type ScriptedHandler = (
  messages: FakeMessage[],
  req: FakeRequest,
) => ScriptedReply | Promise<ScriptedReply>

export interface ScriptedFakeOptions {
  /** Path prefix answered by the handler; default '/cometd' (sub-paths included). */
  mount?: string
  tls?: TlsOptions
  port?: number
}

export interface ScriptedFake {
  readonly url: string
  readonly port: number
  readonly server: http.Server
  /** Every request handled so far. */
  readonly requests: FakeRequest[]
  readonly connections: number
  close(): Promise<void>
}

let clientCounter = 0

/** Successful replies for each message (handshake, connect, subscribe, unsubscribe, disconnect, publish). */
export function happyPath(messages: FakeMessage[], opts: { clientId?: string; timeout?: number } = {}): object[] {
  const clientId = opts.clientId ?? `fake-client-${++clientCounter}`
  return messages.map((m) => {
    const base = { id: m.id, channel: m.channel, successful: true }
    switch (m.channel) {
      case '/meta/handshake':
        return {
          ...base,
          version: '1.0',
          clientId,
          supportedConnectionTypes: ['long-polling', 'websocket'],
          advice: { reconnect: 'retry', interval: 0, timeout: opts.timeout ?? 30_000 },
        }
      case '/meta/connect':
        return { ...base, advice: { reconnect: 'retry', interval: 0, timeout: opts.timeout ?? 30_000 } }
      case '/meta/subscribe':
      case '/meta/unsubscribe':
        return { ...base, subscription: m['subscription'] }
      default:
        return base
    }
  })
}

function parseMessages(raw: string): { messages: FakeMessage[]; malformed: boolean } {
  try {
    const parsed: unknown = JSON.parse(raw)
    if (Array.isArray(parsed)) return { messages: parsed as FakeMessage[], malformed: false }
    if (parsed !== null && typeof parsed === 'object') return { messages: [parsed as FakeMessage], malformed: false }
  } catch {
    // fall through
  }
  return { messages: [], malformed: true }
}

function underMount(url: string | undefined, mount: string): boolean {
  const path = (url ?? '/').split('?')[0] ?? '/'
  return path === mount || path.startsWith(mount.endsWith('/') ? mount : `${mount}/`)
}

function destroySocket(socket: Socket, how: true | 'reset'): void {
  if (how === 'reset' && !socket.destroyed) socket.resetAndDestroy()
  else socket.destroy()
}

/** An HTTP scripted fake: POST bodies are parsed and passed to `handler`. */
export async function startScriptedFake(
  handler: ScriptedHandler,
  opts: ScriptedFakeOptions = {},
): Promise<ScriptedFake> {
  const mount = opts.mount ?? '/cometd'
  const requests: FakeRequest[] = []
  const timers = new Set<NodeJS.Timeout>()

  const sleep = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const timer = setTimeout(() => {
        timers.delete(timer)
        resolve()
      }, ms)
      timer.unref() // the held socket keeps the loop alive; close() clears these
      timers.add(timer)
    })

  const tracked = createHttpServer((req, res) => {
    if (!underMount(req.url, mount)) {
      res.statusCode = 404
      res.end()
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const rawBody = Buffer.concat(chunks).toString('utf8')
      const { messages, malformed } = parseMessages(rawBody)
      const info: FakeRequest = {
        index: requests.length,
        method: req.method ?? 'GET',
        url: req.url ?? '/',
        headers: req.headers,
        rawBody,
        malformed,
      }
      requests.push(info)
      void (async () => {
        let reply: ScriptedReply
        try {
          reply = await handler(messages, info)
        } catch (err) {
          reply = { status: 500, body: `scripted fake handler threw: ${String(err)}` }
        }
        if (reply.delayMs && reply.delayMs > 0) await sleep(reply.delayMs)
        if (res.destroyed || res.writableEnded) return
        if (reply.destroy) {
          destroySocket(req.socket, reply.destroy)
          return
        }
        const body =
          reply.body === undefined ? '' : typeof reply.body === 'string' ? reply.body : JSON.stringify(reply.body)
        res.writeHead(reply.status ?? 200, {
          'content-type': 'application/json;charset=utf-8',
          ...reply.headers,
        })
        res.end(body)
      })()
    })
  }, opts.tls)

  const port = await listen(tracked.server, opts.port ?? 0)
  return {
    url: baseUrl(port, opts.tls !== undefined, mount),
    port,
    server: tracked.server,
    requests,
    get connections() {
      return tracked.sockets.size
    },
    close: idempotent(async () => {
      for (const t of timers) clearTimeout(t)
      timers.clear()
      await closeServer(tracked.server, tracked.sockets)
    }),
  }
}

/** What a websocket script can do with the connection it is answering. */
export interface FakeWsContext {
  /** 0-based index of this connection. */
  connection: number
  socket: WebSocket
  request: http.IncomingMessage
  /** Sends a frame: a string verbatim (malformed JSON welcome), anything else JSON.stringify'd. */
  send(frame: string | object | unknown[]): void
  /** Drops the TCP connection without a close frame. */
  terminate(): void
  /** Sends a close frame. */
  close(code?: number, reason?: string): void
}

export type ScriptedWsHandler = (
  messages: FakeMessage[],
  ctx: FakeWsContext,
  frame: FakeRequest,
) => void | Promise<void>

export interface ScriptedFakeWs extends ScriptedFake {
  /** ws(s)://127.0.0.1:<port><mount> */
  readonly wsUrl: string
  /** Every frame received (as FakeRequest, method 'WS'). */
  readonly frames: FakeRequest[]
  /** Currently open websocket connections. */
  readonly sockets: ReadonlySet<WebSocket>
}

/**
 * A websocket scripted fake: each text frame is parsed and passed to `handler`, which answers
 * through `ctx`. HTTP requests under the mount go to `opts.http` (default: 400 empty body).
 */
export async function startScriptedFakeWs(
  handler: ScriptedWsHandler,
  opts: ScriptedFakeOptions & { http?: ScriptedHandler } = {},
): Promise<ScriptedFakeWs> {
  const mount = opts.mount ?? '/cometd'
  const httpFake = await startScriptedFake(opts.http ?? (() => ({ status: 400 })), opts)
  const wss = new WebSocketServer({ noServer: true })
  const frames: FakeRequest[] = []
  const sockets = new Set<WebSocket>()
  let connections = 0

  httpFake.server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    if (!underMount(req.url, mount)) {
      socket.destroy()
      return
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws)
      ws.on('close', () => sockets.delete(ws))
      ws.on('error', () => undefined)
      const ctx: FakeWsContext = {
        connection: connections++,
        socket: ws,
        request: req,
        send: (frame) => {
          if (ws.readyState === ws.OPEN) ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
        },
        terminate: () => ws.terminate(),
        close: (code, reason) => ws.close(code, reason),
      }
      ws.on('message', (data: RawData, isBinary: boolean) => {
        const rawBody = isBinary ? '' : data.toString()
        const { messages, malformed } = parseMessages(rawBody)
        const info: FakeRequest = {
          index: frames.length,
          method: 'WS',
          url: req.url ?? '/',
          headers: req.headers,
          rawBody,
          malformed: malformed || isBinary,
        }
        frames.push(info)
        Promise.resolve()
          .then(() => handler(messages, ctx, info))
          .catch(() => ws.terminate())
      })
    })
  })

  return {
    get url() {
      return httpFake.url
    },
    wsUrl: `${opts.tls ? 'wss' : 'ws'}://127.0.0.1:${httpFake.port}${mount}`,
    port: httpFake.port,
    server: httpFake.server,
    requests: httpFake.requests,
    frames,
    sockets,
    get connections() {
      return httpFake.connections
    },
    close: idempotent(async () => {
      for (const ws of sockets) ws.terminate()
      wss.close()
      await httpFake.close()
    }),
  }
}
