/**
 * A REAL Faye 1.4.3 Bayeux server (faye.NodeAdapter) on 127.0.0.1, for interop tests.
 * Speaks long-polling (and the other HTTP types) plus websocket on the same mount.
 *
 *   const faye = await startFaye({ timeoutSec: 3 })
 *   t.teardown(faye.close)
 *   faye.url     // http://127.0.0.1:<port>/cometd
 *   faye.wsUrl   // ws://127.0.0.1:<port>/cometd
 *   await faye.publish('/chat', { text: 'hi' })   // server-side publish
 *   await faye.stop(); await faye.start()         // restart on the same port, sessions lost
 *
 * Faye facts to keep in mind (see shared/reference/peers.md): no /service request/response (a
 * subscribe to /service/* is `403:/service/x:Forbidden channel`), unknown client is
 * `401:<id>:Unknown client`, deliveries keep the publisher's id, config is in seconds.
 * publish() goes through Faye's in-process client, whose message ids are small base-36 counters:
 * the delivered event carries that id, which can equal one of the receiver's own request ids
 * (observed: connect reply id "3" followed by an event with id "3" in the same response).
 * faye ships no types, so the small surface used here is typed locally and loaded via createRequire.
 */
import { createRequire } from 'node:module'
import type http from 'node:http'
import {
  baseUrl,
  closeServer,
  createHttpServer,
  idempotent,
  listen,
  type TlsOptions,
  type TrackedServer,
} from './net-util.js'
import { delay, withDeadline } from './wait.js'

/**
 * Faye's server extension shape, in its 3-argument form. Faye picks the form by arity
 * (`fn.length >= 3` → (message, request, callback), else (message, callback)): write all three.
 */
export interface FayeExtension {
  incoming?: (message: FayeMessage, request: unknown, callback: (message: FayeMessage) => void) => void
  outgoing?: (message: FayeMessage, request: unknown, callback: (message: FayeMessage) => void) => void
}

export interface FayeMessage {
  channel: string
  id?: string
  clientId?: string
  data?: unknown
  error?: string
  successful?: boolean
  ext?: Record<string, unknown>
  [key: string]: unknown
}

/** Faye's thenable "Publication"/"Subscription" (Deferrable). */
interface FayeDeferrable {
  then(callback: (value: unknown) => void, errback: (reason: unknown) => void): unknown
}

export interface FayeClientLike {
  publish(channel: string, data: unknown): FayeDeferrable
  subscribe(channel: string, onMessage: (data: unknown) => void): FayeDeferrable & { cancel(): void }
  disconnect(): FayeDeferrable | undefined
  getState(): string
}

export interface FayeNodeAdapter {
  attach(server: http.Server): void
  getClient(): FayeClientLike
  addExtension(extension: FayeExtension): void
  removeExtension(extension: FayeExtension): void
  close(): void
  on(event: 'handshake' | 'disconnect', fn: (clientId: string) => void): void
  on(event: 'subscribe' | 'unsubscribe', fn: (clientId: string, channel: string) => void): void
  on(event: 'publish', fn: (clientId: string | null, channel: string, data: unknown) => void): void
}

interface FayeModule {
  NodeAdapter: new (options: Record<string, unknown>) => FayeNodeAdapter
}

const require = createRequire(import.meta.url)
const faye = require('faye') as FayeModule

export interface StartFayeOptions {
  /** Seconds a /meta/connect is held (Faye `timeout`); default 60 like Faye. Sessions die at 2×. */
  timeoutSec?: number
  /** Mount path; default '/cometd' (Faye also answers any sub-path, e.g. /cometd/handshake). */
  mount?: string
  /** Port to listen on; default 0 (ephemeral). */
  port?: number
  /** Serve HTTPS/WSS with this key/cert (see selfSignedCert()). */
  tls?: TlsOptions
  /** Seconds between websocket/eventsource pings (Faye `ping`). */
  ping?: number
  /** Server extensions, installed on every (re)start. */
  extensions?: FayeExtension[]
}

export interface FayePeer {
  /** http(s)://127.0.0.1:<port><mount> */
  readonly url: string
  /** ws(s)://127.0.0.1:<port><mount> */
  readonly wsUrl: string
  readonly port: number
  /** The current NodeAdapter (replaced by start()). */
  readonly bayeux: FayeNodeAdapter
  /** The current node:http(s) server (replaced by start()). */
  readonly server: http.Server
  /** Number of TCP connections currently open to the server. */
  readonly connections: number
  /** Server-side publish through bayeux.getClient(); resolves when Faye accepted it. */
  publish(channel: string, data: unknown): Promise<void>
  /** Closes the listener and destroys every socket; the port number is kept for start(). */
  stop(): Promise<void>
  /** Listens again on the same port with a fresh NodeAdapter (all sessions lost). */
  start(): Promise<void>
  /** stop() for good; idempotent. */
  close(): Promise<void>
}

function toPromise(d: FayeDeferrable): Promise<unknown> {
  return new Promise((resolve, reject) => {
    d.then(resolve, reject)
  })
}

export async function startFaye(opts: StartFayeOptions = {}): Promise<FayePeer> {
  const mount = opts.mount ?? '/cometd'
  const tls = opts.tls !== undefined
  let port = opts.port ?? 0
  let bayeux!: FayeNodeAdapter
  let tracked!: TrackedServer
  let internalClient: FayeClientLike | undefined
  let running = false
  let closed = false

  async function start(): Promise<void> {
    if (closed) throw new Error('startFaye: start() after close()')
    if (running) return
    const adapterOptions: Record<string, unknown> = { mount }
    if (opts.timeoutSec !== undefined) adapterOptions['timeout'] = opts.timeoutSec
    if (opts.ping !== undefined) adapterOptions['ping'] = opts.ping
    bayeux = new faye.NodeAdapter(adapterOptions)
    for (const ext of opts.extensions ?? []) bayeux.addExtension(ext)
    tracked = createHttpServer((_req, res) => {
      // Reached only for paths outside the mount (attach() takes over the mount).
      res.statusCode = 404
      res.end('not found')
    }, opts.tls)
    bayeux.attach(tracked.server)
    internalClient = undefined
    port = await listen(tracked.server, port)
    running = true
  }

  async function stop(): Promise<void> {
    if (!running) return
    running = false
    const client = internalClient
    internalClient = undefined
    if (client) {
      // The in-process client would otherwise keep cycling /meta/connect (and re-handshaking)
      // against the closed engine, with Faye's ref'd timers. disconnect() only acts when connected.
      const d = client.disconnect()
      if (d) await withDeadline(toPromise(d), 1000, 'faye internal client disconnect').catch(() => undefined)
    }
    bayeux.close() // flushes held connects and clears the engine's timers
    await closeServer(tracked.server, tracked.sockets)
    await delay(0)
  }

  await start()

  return {
    get url() {
      return baseUrl(port, tls, mount)
    },
    get wsUrl() {
      return `${tls ? 'wss' : 'ws'}://127.0.0.1:${port}${mount}`
    },
    get port() {
      return port
    },
    get bayeux() {
      return bayeux
    },
    get server() {
      return tracked.server
    },
    get connections() {
      return tracked.sockets.size
    },
    async publish(channel: string, data: unknown) {
      if (!running) throw new Error('startFaye: publish() while stopped')
      internalClient ??= bayeux.getClient()
      await withDeadline(toPromise(internalClient.publish(channel, data)), 5000, `faye publish to ${channel}`)
    },
    stop,
    start,
    close: idempotent(async () => {
      closed = true
      await stop()
    }),
  }
}
