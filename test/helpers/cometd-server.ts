/**
 * A REAL cometd-nodejs-server 1.2.1 (the official Node CometD server, long-polling only) on
 * 127.0.0.1, for interop tests. Installed by default:
 *   - /service/echo: answers the caller privately with {channel:'/service/echo', id:<request id>,
 *     data:<request data>}, so the official client's remoteCall() and our client's request/response
 *     correlation work. The public session.deliver() cannot carry an id, so this uses the private
 *     ServerSession._deliver(sender, message) (checked per call: fails loudly if it disappears).
 *   - /service/slow: accepted (publish reply successful:true) and never answered, for timeouts.
 *   - a security policy refusing subscribe and publish on /forbidden and /forbidden/**.
 *
 * Wire facts verified on 127.0.0.1 with raw fetch POSTs (see helpers.test.ts "cometd-server - wire"):
 *   - handshake reply: {id, channel, successful:true, clientId:<40 hex>, version:'1.0',
 *     supportedConnectionTypes:['long-polling'], advice:{reconnect:'retry', timeout:<timeout>, interval:0}}
 *     plus `Set-Cookie: BAYEUX_BROWSER=<40 hex>; HttpOnly`; later requests must send that cookie.
 *   - echo: POST [{channel:'/service/echo', id:'7', data, clientId}] answers 200
 *     [{id:'7', channel:'/service/echo', data}, {id:'7', channel:'/service/echo', successful:true}]
 *     (the echo rides on the publish's own response, before the reply; with ack:true it waits for
 *     the next /meta/connect instead).
 *   - subscribe /forbidden/x → {successful:false, error:'403::subscribe_denied', subscription:'/forbidden/x'}
 *   - publish /forbidden/x → {successful:false, error:'403::publish_denied'}
 *   - no BAYEUX_BROWSER cookie or unknown clientId → error '402::session_unknown'
 *     (advice {reconnect:'handshake', interval:0} on handshake/connect only)
 *   - canHandshake false → '403::handshake_denied' with advice {reconnect:'none'}
 *   - POST [] / bad JSON / GET → HTTP 400, empty body.
 */
import { createRequire } from 'node:module'
import type http from 'node:http'
import type {
  CometDServer,
  Options as CometDOptions,
  ServerChannel,
  ServerExtension,
  ServerMessage,
  ServerSession,
} from 'cometd-nodejs-server'
import {
  baseUrl,
  closeServer,
  createHttpServer,
  idempotent,
  listen,
  type TlsOptions,
  type TrackedServer,
} from './net-util.js'

const require = createRequire(import.meta.url)
const lib = require('cometd-nodejs-server') as typeof import('cometd-nodejs-server')
const ackLib = require('cometd-nodejs-server/ack-extension') as typeof import('cometd-nodejs-server/ack-extension.js')

export type { CometDServer, ServerMessage, ServerSession }

type Verdict = boolean | Promise<boolean>

/** Simplified policy hooks; they run after the built-in /forbidden/** rule. */
export interface PolicyHooks {
  canHandshake?: (message: ServerMessage) => Verdict
  canSubscribe?: (channel: string, message: ServerMessage) => Verdict
  canPublish?: (channel: string, message: ServerMessage) => Verdict
}

export interface StartCometdOptions {
  /** cometd-nodejs-server options (timeout ms, maxInterval ms, maxSessionsPerBrowser, ...). */
  options?: CometDOptions
  /** Install AcknowledgedMessagesExtension (server side of the client's AckExtension). */
  ack?: boolean
  policy?: PolicyHooks
  /** Mount path; default '/cometd' (sub-paths such as /cometd/handshake are accepted). */
  mount?: string
  port?: number
  tls?: TlsOptions
}

export interface CometdPeer {
  readonly url: string
  readonly port: number
  /** The current server object (replaced by start()). */
  readonly cometd: CometDServer
  readonly server: http.Server
  /** Number of TCP connections currently open to the server. */
  readonly connections: number
  /** Messages received on /service/echo and /service/slow (current server object only). */
  readonly serviceCalls: ServerMessage[]
  /** Server-side publish to every subscriber of `channel` (and of matching wildcards). */
  publish(channel: string, data: unknown): Promise<void>
  /** Number of live server sessions. */
  sessions(): number
  /** Closes the listener and destroys every socket; the port number is kept. */
  stop(): Promise<void>
  /** Listens again on the same port with a fresh server object (all sessions lost). */
  start(): Promise<void>
  close(): Promise<void>
}

export const ECHO_CHANNEL = '/service/echo'
export const SLOW_CHANNEL = '/service/slow'

export function isForbiddenChannel(name: string): boolean {
  return name === '/forbidden' || name.startsWith('/forbidden/')
}

type Cb = (failure?: Error, result?: boolean) => void

function decide(builtIn: boolean, hook: (() => Verdict) | undefined, callback: Cb): void {
  if (!builtIn) {
    callback(undefined, false)
    return
  }
  if (!hook) {
    callback(undefined, true)
    return
  }
  Promise.resolve()
    .then(hook)
    .then(
      (ok) => callback(undefined, ok),
      (err: unknown) => callback(err instanceof Error ? err : new Error(String(err))),
    )
}

/** The private per-session delivery that keeps a message id (see header). */
interface PrivateSession {
  _deliver(sender: ServerSession | null, message: ServerMessage, callback?: Cb): void
  _scheduler?: { _timeout: NodeJS.Timeout | null } | null
}

/**
 * A held /meta/connect owns a ref'd setTimeout for `timeout` ms that nothing cancels when the socket dies:
 * clear them (and forget the sessions), or a stopped server keeps the process alive for up to 30 s.
 */
export function clearHeldConnects(live: Set<ServerSession>): void {
  for (const s of live) {
    const scheduler = (s as unknown as PrivateSession)._scheduler
    if (scheduler?._timeout) {
      clearTimeout(scheduler._timeout)
      scheduler._timeout = null
    }
  }
  live.clear()
}

function installServices(cometd: CometDServer, calls: ServerMessage[]): void {
  const echo = cometd.createServerChannel(ECHO_CHANNEL)
  echo.addListener('message', (session: ServerSession, _ch: ServerChannel, message: ServerMessage, cb: Cb) => {
    calls.push(message)
    const priv = session as unknown as PrivateSession
    if (typeof priv._deliver !== 'function') {
      cb(new Error('cometd-nodejs-server: ServerSession._deliver is gone; /service/echo needs another way'))
      return
    }
    // A reply without data would be no valid Bayeux event (the CometD JS client warns and drops it).
    const reply: ServerMessage = { channel: ECHO_CHANNEL, data: message.data ?? null }
    if (message.id !== undefined) reply.id = message.id
    priv._deliver(session, reply)
    cb(undefined, true)
  })
  const slow = cometd.createServerChannel(SLOW_CHANNEL)
  slow.addListener('message', (_s: ServerSession, _ch: ServerChannel, message: ServerMessage, cb: Cb) => {
    calls.push(message) // never answered
    cb(undefined, true)
  })
}

export async function startCometd(opts: StartCometdOptions = {}): Promise<CometdPeer> {
  const mount = opts.mount ?? '/cometd'
  const tls = opts.tls !== undefined
  let port = opts.port ?? 0
  let cometd!: CometDServer
  let tracked!: TrackedServer
  let live = new Set<ServerSession>()
  let calls: ServerMessage[] = []
  let running = false
  let closed = false

  async function start(): Promise<void> {
    if (closed) throw new Error('startCometd: start() after close()')
    if (running) return
    const server = lib.createCometDServer({ ...opts.options })
    const sessions = new Set<ServerSession>()
    server.addListener('sessionAdded', (s: ServerSession) => sessions.add(s))
    server.addListener('sessionRemoved', (s: ServerSession) => sessions.delete(s))
    const policy = opts.policy ?? {}
    server.policy = {
      canHandshake: (_session, message, cb) =>
        decide(true, policy.canHandshake && (() => policy.canHandshake!(message)), cb),
      canSubscribe: (_session, message, channel, cb) =>
        decide(!isForbiddenChannel(channel.name), policy.canSubscribe && (() => policy.canSubscribe!(channel.name, message)), cb),
      canPublish: (_session, message, channel, cb) =>
        decide(!isForbiddenChannel(channel.name), policy.canPublish && (() => policy.canPublish!(channel.name, message)), cb),
    }
    if (opts.ack) server.addExtension(new ackLib.AcknowledgedMessagesExtension() as ServerExtension)
    const serviceCalls: ServerMessage[] = []
    installServices(server, serviceCalls)

    const t = createHttpServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0] ?? '/'
      if (path === mount || path.startsWith(mount.endsWith('/') ? mount : mount + '/')) {
        server.handle(req, res)
      } else {
        res.statusCode = 404
        res.end()
      }
    }, opts.tls)
    port = await listen(t.server, port).catch((err: unknown) => {
      server.close()
      throw err
    })
    cometd = server
    tracked = t
    live = sessions
    calls = serviceCalls
    running = true
  }

  async function stop(): Promise<void> {
    if (!running) return
    running = false
    cometd.close() // stops the sweeper timer
    clearHeldConnects(live)
    await closeServer(tracked.server, tracked.sockets)
  }

  await start()

  return {
    get url() {
      return baseUrl(port, tls, mount)
    },
    get port() {
      return port
    },
    get cometd() {
      return cometd
    },
    get server() {
      return tracked.server
    },
    get connections() {
      return tracked.sockets.size
    },
    get serviceCalls() {
      return calls
    },
    publish(channel: string, data: unknown) {
      if (!running) return Promise.reject(new Error('startCometd: publish() while stopped'))
      return new Promise<void>((resolve, reject) => {
        cometd.createServerChannel(channel).publish(null, data, (failure) => {
          if (failure) reject(failure)
          else resolve()
        })
      })
    },
    sessions: () => live.size,
    stop,
    start,
    close: idempotent(async () => {
      closed = true
      await stop()
    }),
  }
}
