/**
 * A Salesforce-Streaming-API-like CometD server for tests: a REAL cometd-nodejs-server 1.2.1 with
 * a server extension, an HTTP wrapper and a replay store on top, imitating what
 * ../shared/reference/bayeux.md §4 documents. We cannot reach Salesforce; this is the stand-in.
 *
 *   const sf = await startSalesforceLike({ tokens: ['tok'], timeoutMs: 2000, retention: { count: 5 } })
 *   t.teardown(sf.close)
 *   sf.url                                     // http://127.0.0.1:<port>/cometd/59.0
 *   const ev = sf.publish('/event/Order__e', { Amount__c: 1 })   // ev.data.event.replayId
 *
 * IMITATED (documented in §4):
 *   - Endpoint `/cometd/<version>` (default '59.0'; sub-paths such as /cometd/59.0/connect accepted,
 *     as CometD clients append the message type). `/cometd` alone → HTTP 400
 *     `API version in the URI is mandatory`; a version below 37 → HTTP 400 `Unsupported API version`.
 *   - Long-polling only: handshake lists ['long-polling']; a WebSocket upgrade gets
 *     HTTP 400 `Invalid connection type` and the socket is closed; a /meta/connect whose
 *     connectionType is not 'long-polling' gets `400::Invalid connection type`.
 *   - Request body limit 32,768 bytes → HTTP 413 (option maxBodyBytes).
 *   - `Authorization: Bearer <token>` (or the old `OAuth <token>`) checked on EVERY message:
 *       handshake, bad/missing token → {successful:false, error:'403::Handshake denied',
 *         ext:{sfdc:{failureReason:'401::Authentication invalid'}}, advice:{reconnect:'none'}}
 *       any other message (token revoked mid-session) → {successful:false,
 *         error:'401::Authentication invalid', advice:{reconnect:'none'}} (+ subscription on
 *         /meta/subscribe and /meta/unsubscribe). The session itself is left alone (it expires).
 *   - Unknown / expired session (cometd's 402::session_unknown, e.g. no BAYEUX_BROWSER cookie, or
 *     expireSession()/expireAll(), or maxIntervalMs without a connect) → {successful:false,
 *     error:'403::Unknown client', advice:{reconnect:'handshake', interval:0}} on every reply (id and
 *     channel as cometd builds them: no `subscription` on a /meta/subscribe);
 *     unknownClientAdvice 'none' imitates the `reconnect:none` variant (faye#492). A /meta/connect
 *     held when its session is expired returns AT ONCE with that error.
 *   - Handshake reply ext {replay:true, 'payload.format':true}; connect replies carry advice
 *     {reconnect:'retry', interval:0, timeout:<timeoutMs, default 110000>}; the session expires
 *     server-side after maxIntervalMs (default 40000) without a connect (cometd's sweeper, ~1 s grain).
 *   - Replay: events {channel, data:{event:{replayId, createdDate}, payload}}; replayIds increase per
 *     channel and are NOT contiguous (one counter for all channels, from firstReplayId, default 1000).
 *     Retention per channel is bounded (retention.count and/or retention.ageMs; oldest evicted).
 *     /meta/subscribe ext.replay = {"<channel>": N} (a map; entries for other channels ignored; no
 *     entry = -1; integers or integer strings): -1 new only, -2 every retained event, N = every
 *     retained event with replayId > N, where N must be the id of a RETAINED event of that channel.
 *     Otherwise → {successful:false, subscription, error:'400::The replayId {N} you provided was
 *     invalid. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.'}
 *     and nothing is subscribed. Replayed events are queued to the session synchronously after the
 *     subscription is in place (so they precede any later live event); cometd drains a session's queue
 *     into every non-connect response, so they arrive in the subscribe's own HTTP response, BEFORE
 *     its reply (even while a connect is held). Clients must accept events ahead of the reply.
 *   - Limits: setHandshakeLimit(true) or maxClients live sessions → handshake {successful:false,
 *     error:'403::Organization concurrent user limit exceeded', advice:{reconnect:'none'}};
 *     setDailyLimit(true) → every /meta/connect {successful:false,
 *     error:'403::Organization total events daily limit exceeded', advice:{reconnect:'none'}}
 *     (§4 gives no advice for the daily limit: 'none' is our guess).
 *   - The event store models Salesforce's retention, not the session: it survives stop()/start()
 *     (same port, every session lost) and publish() while stopped stores without delivering.
 *
 * NOT IMITATED: HTTPS/My Domain (plain http unless `tls`); the Content-Type requirement; retired
 * versions 23–36 beyond the 400; time-based 24 h/72 h retention unless ageMs is given; the COMPACT
 * `payload.format` (ext is advertised, data is always JSON); PushTopic `data.sobject`/`event.type`
 * and CDC's ChangeEventHeader (payload is whatever you pass); channel existence checks (any channel
 * can be subscribed, cometd wildcards work live but never replay); client-side publish (denied with
 * cometd's 403::publish_denied, as Salesforce events are published through other APIs); Salesforce's
 * own cookies (only cometd's BAYEUX_BROWSER, which is required); `multiple-clients` advice (off:
 * maxSessionsPerBrowser -1); 5xx errors; a client's advice.timeout still shortens its held connect
 * (cometd behaviour). An unknown session wins over a bad token (403::Unknown client, not 401).
 *
 * cometd-nodejs-server internals relied on (checked against 1.2.1):
 *   - server.handle(req, res) uses `req.body` when set: the wrapper parses the JSON itself, enforces
 *     the size limit and tags every message with its bearer token (a Symbol property). cometd's
 *     `context.request` is ONE shared object, overwritten by each request and cleared when any
 *     response finishes, so it is wrong for a reply produced later (a held connect): not used.
 *   - `message.reply` exists before incoming extensions run; an incoming extension that answers false
 *     makes cometd write 404::message_deleted into it, which our outgoing extension replaces with the
 *     fields stored on the reply under a Symbol. Replies pass through server outgoing extensions as
 *     (server, session, session, reply) with session null when unknown, and are serialized after.
 *   - private ServerSession._scheduler (the held /meta/connect): resume() answers it now (expiry,
 *     revoke), and its `_timeout` is cleared on stop() (a ref'd timer nothing else cancels).
 */
import { createRequire } from 'node:module'
import type http from 'node:http'
import type { Socket } from 'node:net'
import type { CometDServer, Options as CometDOptions, ServerExtension, ServerMessage, ServerSession } from 'cometd-nodejs-server'
import { clearHeldConnects } from './cometd-server.js'
import { baseUrl, closeServer, createHttpServer, idempotent, listen, type TlsOptions, type TrackedServer } from './net-util.js'

const require = createRequire(import.meta.url)
const lib = require('cometd-nodejs-server') as typeof import('cometd-nodejs-server')

export const SF_DEFAULT_TOKEN = 'sf-test-token'
export const SF_HANDSHAKE_DENIED = '403::Handshake denied'
export const SF_AUTH_INVALID = '401::Authentication invalid'
export const SF_UNKNOWN_CLIENT = '403::Unknown client'
export const SF_CONCURRENT_LIMIT = '403::Organization concurrent user limit exceeded'
export const SF_DAILY_LIMIT = '403::Organization total events daily limit exceeded'
export const SF_INVALID_CONNECTION_TYPE = '400::Invalid connection type'

/** The exact error Salesforce gives for an expired or unknown replayId. */
export function sfInvalidReplayError(replayId: unknown): string {
  return `400::The replayId {${String(replayId)}} you provided was invalid. Please provide a valid ID, -2 to replay all events, or -1 to replay only new events.`
}

/** Valid tokens: a collection (copied) or a predicate. */
export type TokenSource = Iterable<string> | ((token: string) => boolean)

export interface SalesforceLikeOptions {
  /** Default '59.0'; mounted at /cometd/<version>. */
  version?: string
  /** Default [SF_DEFAULT_TOKEN]. */
  tokens?: TokenSource
  /** Held /meta/connect and connect advice.timeout; default 110000 (tests: ~2000). */
  timeoutMs?: number
  /** Session expiry without a connect; default 40000. */
  maxIntervalMs?: number
  /** Bounded per-channel event retention; default { count: 100 }. */
  retention?: { count?: number; ageMs?: number }
  /** First replayId handed out; default 1000. */
  firstReplayId?: number
  /** Advice on 403::Unknown client; default 'handshake'. */
  unknownClientAdvice?: 'handshake' | 'none'
  /** Handshakes fail with the concurrent-user limit while this many sessions live; default unlimited. */
  maxClients?: number
  /** HTTP 413 above this many body bytes; default 32768. */
  maxBodyBytes?: number
  /** Extra cometd-nodejs-server options (override ours: timeout, maxInterval, maxSessionsPerBrowser -1). */
  cometdOptions?: CometDOptions
  port?: number
  tls?: TlsOptions
}

export interface SalesforceEvent {
  channel: string
  data: { event: { replayId: number; createdDate: string }; payload: unknown }
}

export interface AttemptCounter {
  /** Messages received on the meta channel (HTTP level, whatever the outcome). */
  attempts: number
  /** Successful replies sent. */
  successes: number
}

export interface SalesforceCounters {
  handshakes: AttemptCounter
  subscribes: AttemptCounter
  connects: AttemptCounter
  /** 403::Unknown client replies. */
  unknownClient: number
  /** 403::Handshake denied + 401::Authentication invalid replies. */
  authFailures: number
  /** 403::Organization ... limit replies. */
  limitErrors: number
  /** Events delivered by replay on subscribe. */
  replayed: number
}

export interface SalesforceLike {
  /** http://127.0.0.1:<port>/cometd/<version> */
  readonly url: string
  readonly port: number
  readonly version: string
  /** The current cometd-nodejs-server object (replaced by start()). */
  readonly cometd: CometDServer
  readonly server: http.Server
  /** Open TCP connections. */
  readonly connections: number
  /** Live counters (kept across stop()/start()); resetCounters() zeroes them. */
  readonly counters: SalesforceCounters
  resetCounters(): void
  /** Stores an event (replayId assigned) and delivers it live when running. */
  publish(channel: string, payload: unknown): SalesforceEvent
  /** Retained events of a channel, oldest first (a copy). */
  events(channel: string): SalesforceEvent[]
  /** Replaces the valid tokens (clears revocations). */
  setTokens(tokens: TokenSource): void
  /** Makes a token invalid from now on; held connects of sessions using it return at once. */
  revoke(token: string): void
  /** Makes a token valid again (adds it to a collection; lifts a revocation). */
  grant(token: string): void
  setHandshakeLimit(on: boolean): void
  setDailyLimit(on: boolean): void
  setUnknownClientAdvice(mode: 'handshake' | 'none'): void
  /** Live session ids, oldest first. */
  clientIds(): string[]
  sessions(): number
  /** Expires one session (default: the newest); false when none. */
  expireSession(clientId?: string): boolean
  /** Expires every session; returns how many. */
  expireAll(): number
  /** Closes the listener, destroys sockets, drops every session; keeps port, events, tokens, counters. */
  stop(): Promise<void>
  /** Listens again on the same port with a fresh cometd server. */
  start(): Promise<void>
  close(): Promise<void>
}

const TOKEN = Symbol('sf.token')
const OVERRIDE = Symbol('sf.override')
const REPLAY = Symbol('sf.replay')

interface ReplayRequest {
  channel: string
  /** Replay events with replayId > after. */
  after: number
}

type Fields = Partial<Omit<ServerMessage, 'reply'>>
interface Tagged {
  [TOKEN]?: string | null
  [OVERRIDE]?: Fields
  [REPLAY]?: ReplayRequest[]
}
type Msg = ServerMessage & Tagged

/** The private held-connect handle (see header). */
interface PrivateSession {
  _scheduler?: { _timeout?: NodeJS.Timeout | null; resume?: () => void } | null
}

type Cb = (failure?: Error, result?: boolean) => void

const AUTH_RE = /^(?:Bearer|OAuth)\s+(\S+)\s*$/i

function parseReplayId(raw: unknown): number | null {
  if (typeof raw === 'number' && Number.isSafeInteger(raw)) return raw
  if (typeof raw === 'string' && /^\s*-?\d+\s*$/.test(raw)) {
    const n = Number(raw)
    return Number.isSafeInteger(n) ? n : null
  }
  return null
}

function asList(subscription: unknown): string[] {
  if (Array.isArray(subscription)) return subscription.filter((s): s is string => typeof s === 'string')
  return typeof subscription === 'string' ? [subscription] : []
}

function httpError(res: http.ServerResponse, status: number, text = ''): void {
  res.statusCode = status
  if (text) res.setHeader('Content-Type', 'text/plain')
  res.end(text)
}

function newCounters(): SalesforceCounters {
  return {
    handshakes: { attempts: 0, successes: 0 },
    subscribes: { attempts: 0, successes: 0 },
    connects: { attempts: 0, successes: 0 },
    unknownClient: 0,
    authFailures: 0,
    limitErrors: 0,
    replayed: 0,
  }
}

export async function startSalesforceLike(opts: SalesforceLikeOptions = {}): Promise<SalesforceLike> {
  const version = opts.version ?? '59.0'
  const mount = `/cometd/${version}`
  const timeoutMs = opts.timeoutMs ?? 110_000
  const maxIntervalMs = opts.maxIntervalMs ?? 40_000
  const retentionCount = Math.max(1, opts.retention?.count ?? 100)
  const retentionAgeMs = opts.retention?.ageMs
  const maxClients = opts.maxClients ?? Infinity
  const maxBodyBytes = opts.maxBodyBytes ?? 32_768
  const tls = opts.tls !== undefined
  let unknownAdvice = opts.unknownClientAdvice ?? 'handshake'
  let port = opts.port ?? 0

  // --- tokens ---------------------------------------------------------------------------------
  let tokenSet: Set<string> | null = null
  let tokenFn: ((token: string) => boolean) | null = null
  const revoked = new Set<string>()
  function setTokens(tokens: TokenSource): void {
    if (typeof tokens === 'function') {
      tokenSet = null
      tokenFn = tokens
    } else {
      tokenSet = new Set(tokens)
      tokenFn = null
    }
    revoked.clear()
  }
  setTokens(opts.tokens ?? [SF_DEFAULT_TOKEN])
  const tokenValid = (token: string | null | undefined): boolean =>
    typeof token === 'string' && !revoked.has(token) && (tokenSet ? tokenSet.has(token) : tokenFn!(token))

  // --- event store (survives restarts) -------------------------------------------------------
  const store = new Map<string, SalesforceEvent[]>()
  let nextReplayId = opts.firstReplayId ?? 1000
  function retained(channel: string): SalesforceEvent[] {
    const list = store.get(channel)
    if (!list) return []
    if (retentionAgeMs !== undefined) {
      const cutoff = Date.now() - retentionAgeMs
      while (list.length > 0 && Date.parse(list[0]!.data.event.createdDate) < cutoff) list.shift()
    }
    return list
  }

  // --- state ----------------------------------------------------------------------------------
  let counters = newCounters()
  let handshakeLimit = false
  let dailyLimit = false
  let cometd!: CometDServer
  let tracked!: TrackedServer
  let live = new Set<ServerSession>()
  let running = false
  let closed = false
  const sessionToken = new WeakMap<ServerSession, string>()
  const expired = new WeakSet<ServerSession>()
  let dropping: ServerSession | null = null // its own /meta/disconnect delivery is swallowed

  function deny(message: Msg, fields: Fields, cb: Cb): void {
    const reply = message.reply as Msg | undefined
    if (reply) {
      const o: Fields = { successful: false, ...fields }
      if ((message.channel === '/meta/subscribe' || message.channel === '/meta/unsubscribe') && message.subscription !== undefined) {
        o.subscription = message.subscription
      }
      reply[OVERRIDE] = o
    }
    cb(undefined, false) // cometd writes 404::message_deleted; outgoing() applies OVERRIDE
  }

  function unknownClient(reply: Msg): void {
    reply.successful = false
    reply.error = SF_UNKNOWN_CLIENT
    reply.advice = unknownAdvice === 'none' ? { reconnect: 'none' } : { reconnect: 'handshake', interval: 0 }
    delete reply.ext
    counters.unknownClient++
  }

  /** Validates ext.replay for every subscribed channel; null when all are valid. */
  function replayPlan(message: Msg): { plan: ReplayRequest[] } | { error: string } {
    const ext = message.ext as { replay?: unknown } | undefined
    const map = ext && typeof ext.replay === 'object' && ext.replay !== null ? (ext.replay as Record<string, unknown>) : {}
    const plan: ReplayRequest[] = []
    for (const channel of asList(message.subscription)) {
      if (!Object.prototype.hasOwnProperty.call(map, channel)) continue // no entry: new events only
      const raw = map[channel]
      const n = parseReplayId(raw)
      if (n === -1) continue
      if (n === -2) {
        plan.push({ channel, after: -Infinity })
        continue
      }
      if (n === null || n < 0 || !retained(channel).some((e) => e.data.event.replayId === n)) {
        return { error: sfInvalidReplayError(raw) }
      }
      plan.push({ channel, after: n })
    }
    return { plan }
  }

  const extension: ServerExtension = {
    incoming(_server, session, message: Msg, cb) {
      const token = message[TOKEN]
      const valid = tokenValid(token)
      if (message.channel === '/meta/handshake') {
        if (!valid) {
          counters.authFailures++
          deny(message, { error: SF_HANDSHAKE_DENIED, ext: { sfdc: { failureReason: SF_AUTH_INVALID } }, advice: { reconnect: 'none' } }, cb)
          return
        }
        if (handshakeLimit || live.size >= maxClients) {
          counters.limitErrors++
          deny(message, { error: SF_CONCURRENT_LIMIT, advice: { reconnect: 'none' } }, cb)
          return
        }
        sessionToken.set(session, token!)
        cb(undefined, true)
        return
      }
      if (!valid) {
        counters.authFailures++
        deny(message, { error: SF_AUTH_INVALID, advice: { reconnect: 'none' } }, cb)
        return
      }
      sessionToken.set(session, token!)
      if (message.channel === '/meta/connect') {
        if (message.connectionType !== undefined && message.connectionType !== 'long-polling') {
          deny(message, { error: SF_INVALID_CONNECTION_TYPE }, cb)
          return
        }
        if (dailyLimit) {
          counters.limitErrors++
          deny(message, { error: SF_DAILY_LIMIT, advice: { reconnect: 'none' } }, cb)
          return
        }
      }
      if (message.channel === '/meta/subscribe') {
        const result = replayPlan(message)
        if ('error' in result) {
          deny(message, { error: result.error }, cb)
          return
        }
        if (result.plan.length > 0 && message.reply) (message.reply as Msg)[REPLAY] = result.plan
      }
      cb(undefined, true)
    },

    outgoing(_server, _sender, session, message: Msg, cb) {
      if (message.channel === '/meta/disconnect' && session !== null && session === dropping) {
        cb(undefined, false) // the /meta/disconnect that session.disconnect() queues on expiry
        return
      }
      const override = message[OVERRIDE]
      if (override) Object.assign(message, override)
      if (message.error === '402::session_unknown' || (message.channel === '/meta/connect' && session && expired.has(session))) {
        unknownClient(message)
      }
      if (message.successful === true) {
        switch (message.channel) {
          case '/meta/handshake':
            counters.handshakes.successes++
            message.ext = { ...(message.ext as object | undefined), replay: true, 'payload.format': true }
            break
          case '/meta/connect':
            counters.connects.successes++
            message.advice = { reconnect: 'retry', interval: 0, timeout: timeoutMs }
            break
          case '/meta/subscribe': {
            counters.subscribes.successes++
            const plan = message[REPLAY]
            if (plan && session) {
              // Synchronous, so replayed events are queued before any later live publish.
              for (const { channel, after } of plan) {
                for (const ev of retained(channel)) {
                  if (ev.data.event.replayId > after) {
                    counters.replayed++
                    session.deliver(null, ev.channel, ev.data)
                  }
                }
              }
            }
            break
          }
        }
      }
      cb(undefined, true)
    },
  }

  function heldConnect(session: ServerSession): PrivateSession['_scheduler'] {
    return (session as unknown as PrivateSession)._scheduler ?? null
  }

  function expire(session: ServerSession): void {
    expired.add(session)
    dropping = session
    try {
      session.disconnect() // removes it (sessionRemoved, unsubscribes); its /meta/disconnect is dropped
    } finally {
      dropping = null
    }
    heldConnect(session)?.resume?.() // answers a held connect now, as 403::Unknown client
  }

  function handleRequest(cometdServer: CometDServer, req: http.IncomingMessage, res: http.ServerResponse): void {
    const path = (req.url ?? '/').split('?')[0] ?? '/'
    if (path !== mount && !path.startsWith(mount + '/')) {
      req.resume()
      if (path === '/cometd' || path === '/cometd/') return httpError(res, 400, 'API version in the URI is mandatory')
      const m = /^\/cometd\/(\d+)(?:\.\d+)?(?:\/|$)/.exec(path)
      if (m && Number(m[1]) < 37) return httpError(res, 400, 'Unsupported API version')
      return httpError(res, 404)
    }
    if (req.method !== 'POST') {
      req.resume()
      return httpError(res, 400)
    }
    const chunks: Buffer[] = []
    let size = 0
    let tooLarge = false
    req.on('data', (chunk: Buffer) => {
      if (tooLarge) return
      size += chunk.length
      if (size > maxBodyBytes) {
        tooLarge = true
        chunks.length = 0
        res.setHeader('Connection', 'close')
        httpError(res, 413)
        return
      }
      chunks.push(chunk)
    })
    req.on('end', () => {
      if (tooLarge) return
      let parsed: unknown
      try {
        parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'))
      } catch {
        return httpError(res, 400)
      }
      const messages = (Array.isArray(parsed) ? parsed : [parsed]) as unknown[]
      if (messages.length === 0 || !messages.every((m) => typeof m === 'object' && m !== null && !Array.isArray(m))) {
        return httpError(res, 400)
      }
      const auth = AUTH_RE.exec(req.headers.authorization ?? '')
      const token = auth?.[1] ?? null
      for (const m of messages as Msg[]) {
        m[TOKEN] = token
        if (m.channel === '/meta/handshake') counters.handshakes.attempts++
        else if (m.channel === '/meta/connect') counters.connects.attempts++
        else if (m.channel === '/meta/subscribe') counters.subscribes.attempts++
      }
      ;(req as http.IncomingMessage & { body?: unknown }).body = messages
      cometdServer.handle(req, res)
    })
    req.on('error', () => res.destroy())
  }

  function refuseUpgrade(_req: http.IncomingMessage, socket: Socket): void {
    const body = 'Invalid connection type'
    socket.once('error', () => undefined)
    socket.end(
      `HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    )
    socket.once('finish', () => socket.destroy())
  }

  async function start(): Promise<void> {
    if (closed) throw new Error('startSalesforceLike: start() after close()')
    if (running) return
    const server = lib.createCometDServer({
      timeout: timeoutMs,
      interval: 0,
      maxInterval: maxIntervalMs,
      maxSessionsPerBrowser: -1,
      ...opts.cometdOptions,
    })
    const sessions = new Set<ServerSession>()
    server.addListener('sessionAdded', (s: ServerSession) => sessions.add(s))
    server.addListener('sessionRemoved', (s: ServerSession) => sessions.delete(s))
    server.policy = {
      // Streaming API clients cannot publish through CometD.
      canPublish: (_session, _message, _channel, cb) => cb(undefined, false),
    }
    server.addExtension(extension)
    const t = createHttpServer((req, res) => handleRequest(server, req, res), opts.tls)
    t.server.on('upgrade', refuseUpgrade)
    port = await listen(t.server, port).catch((err: unknown) => {
      server.close()
      throw err
    })
    cometd = server
    tracked = t
    live = sessions
    running = true
  }

  async function stop(): Promise<void> {
    if (!running) return
    running = false
    cometd.close() // the sweeper timer
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
    version,
    get cometd() {
      return cometd
    },
    get server() {
      return tracked.server
    },
    get connections() {
      return tracked.sockets.size
    },
    get counters() {
      return counters
    },
    resetCounters() {
      counters = newCounters()
    },
    publish(channel: string, payload: unknown): SalesforceEvent {
      if (!channel.startsWith('/') || channel === '/' || channel.includes('*')) {
        throw new Error(`startSalesforceLike: invalid channel ${channel}`)
      }
      const ev: SalesforceEvent = {
        channel,
        data: { event: { replayId: nextReplayId++, createdDate: new Date().toISOString() }, payload },
      }
      let list = store.get(channel)
      if (!list) store.set(channel, (list = []))
      list.push(ev)
      while (list.length > retentionCount) list.shift()
      retained(channel) // age eviction
      if (running) {
        let failure: Error | undefined
        cometd.createServerChannel(channel).publish(null, ev.data, (err) => (failure = err))
        if (failure) throw failure
      }
      return ev
    },
    events: (channel: string) => retained(channel).slice(),
    setTokens,
    revoke(token: string) {
      tokenSet?.delete(token)
      revoked.add(token)
      if (!running) return
      for (const s of [...live]) if (sessionToken.get(s) === token) heldConnect(s)?.resume?.()
    },
    grant(token: string) {
      revoked.delete(token)
      tokenSet?.add(token)
    },
    setHandshakeLimit(on: boolean) {
      handshakeLimit = on
    },
    setDailyLimit(on: boolean) {
      dailyLimit = on
    },
    setUnknownClientAdvice(mode: 'handshake' | 'none') {
      unknownAdvice = mode
    },
    clientIds: () => [...live].map((s) => s.id),
    sessions: () => live.size,
    expireSession(clientId?: string): boolean {
      if (!running) return false
      const session = clientId !== undefined ? cometd.getServerSession(clientId) : [...live].at(-1)
      if (!session || !live.has(session)) return false
      expire(session)
      return true
    },
    expireAll(): number {
      if (!running) return 0
      const all = [...live]
      for (const s of all) expire(s)
      return all.length
    },
    stop,
    start,
    close: idempotent(async () => {
      closed = true
      await stop()
    }),
  }
}
