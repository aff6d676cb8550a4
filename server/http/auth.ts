/**
 * Caller authentication and per-channel authorization (docs/security.md).
 *
 * - Tokens come from config `auth.tokens` (the token, or its SHA-256). A request presents one as
 *   `Authorization: Bearer <token>`; `?access_token=` is accepted only on SSE streams and only with
 *   `auth.allowQueryToken: true` (EventSource cannot set headers).
 * - Comparison is constant-time: the presented token is hashed with SHA-256 and compared with every configured
 *   digest using crypto.timingSafeEqual, without stopping at the first match.
 * - 401 without a token or with a wrong one (`WWW-Authenticate: Bearer`), 403 outside its rights, on every
 *   route except /healthz and /readyz (and /metrics, GET /sessions[/:name] when `auth.public` opens them).
 * - With no tokens configured the bridge serves loopback callers only (everyone with
 *   `auth.allowUnauthenticated: true`); such callers have every right.
 * - Every route declares its policy in its own `config`: `access` (who may use it), `channels` (which of its
 *   channels the access lists check), `public` (opened by `auth.public.*`), `queryToken` (may carry
 *   ?access_token=). A route that declares no access is refused to tokens (403): new routes must decide.
 *
 * Tokens are never logged: messages never contain them, the logger drops request headers and redacts the token
 * query parameter in every spelling this module accepts (one rule for both: config/redact.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { QUERY_TOKEN_PARAM, queryTokens } from '../../config/redact.js'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { channelMatches, patternCovers } from '../channels.js'
import type { AuthConfig, TokenConfig } from '../../config/index.js'
import { ErrorCode, HttpError } from '../errors.js'
import { requestChannels } from './channel-rules.js'
import type { Principal } from './principal.js'
import { JwtVerifier } from './jwt.js'

export type { Principal } from './principal.js'

/** What a route requires beyond a valid token; routes may declare it as `config: { access }`. */
export type RouteAccess = 'open' | 'authenticated' | 'session' | 'console' | 'metrics' | 'admin' | 'deny'

declare module 'fastify' {
  interface FastifyRequest {
    /** the authenticated caller; null on open routes */
    principal: Principal | null
  }
  interface FastifyInstance {
    access: AccessControl
  }
  interface FastifyContextConfig {
    access?: RouteAccess
    /** `auth.public.sessions` / `auth.public.metrics` open this route (GET) without a token */
    public?: 'sessions' | 'metrics'
    /** the route may take the token as ?access_token= (EventSource cannot set headers): SSE streams only */
    queryToken?: boolean
  }
}

export const ANONYMOUS: Principal = Object.freeze({
  id: 'anonymous',
  name: 'anonymous',
  anonymous: true,
  allSessions: true,
  sessions: new Set<string>(),
  subscribe: ['/**'],
  publish: ['/**'],
  console: true,
  metrics: true,
  createSessions: true,
  admin: true
})

const MAX_TOKEN_LENGTH = 4096

function sha256 (text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest()
}

interface Entry { digest: Buffer, principal: Principal }

export class AccessControl {
  readonly config: AuthConfig
  readonly #entries: Entry[]
  /** callers with a signed JWT (auth.jwt), tried when a token matches no entry */
  readonly jwt: JwtVerifier | null
  /** owner (principal id) of a dynamic session, undefined for configured (or unknown) sessions */
  ownerOf: (session: string) => string | undefined = () => undefined

  constructor (config: AuthConfig) {
    this.config = config
    this.#entries = this.config.tokens.map((t, i) => ({ digest: digestOf(t), principal: principalOf(t, i) }))
    this.jwt = this.config.jwt !== undefined ? new JwtVerifier(this.config.jwt) : null
  }

  /** true when tokens (or JWTs) are configured (every request needs one) */
  get required (): boolean { return this.#entries.length > 0 || this.jwt !== null }

  /** The principal of a presented token, or null. Constant-time in the token; every entry is compared. */
  authenticate (token: string): Principal | null {
    if (token.length === 0 || token.length > MAX_TOKEN_LENGTH) return null
    const digest = sha256(token)
    let found: Principal | null = null
    for (const entry of this.#entries) {
      const equal = timingSafeEqual(digest, entry.digest)
      if (equal && found === null) found = entry.principal
    }
    return found
  }

  sessionAllowed (p: Principal, session: string): boolean {
    if (p.anonymous) return true
    const owner = this.ownerOf(session)
    if (owner !== undefined) return owner === p.id
    return p.allSessions || p.sessions.has(session)
  }

  canSubscribe (p: Principal, pattern: string): boolean {
    return p.anonymous || p.subscribe.some((allowed) => patternCovers(allowed, pattern))
  }

  canPublish (p: Principal, channel: string): boolean {
    return p.anonymous || p.publish.some((allowed) => channelMatches(allowed, channel))
  }
}

function digestOf (entry: TokenConfig): Buffer {
  if (typeof entry.token === 'string') return sha256(entry.token)
  return Buffer.from(String(entry.sha256).toLowerCase(), 'hex')
}

function principalOf (entry: TokenConfig, index: number): Principal {
  return Object.freeze({
    id: `#${index}`,
    name: entry.name ?? `token-${index}`,
    anonymous: false,
    allSessions: entry.sessions.includes('*'),
    sessions: new Set(entry.sessions.filter((s) => s !== '*')),
    subscribe: [...entry.subscribe],
    publish: [...entry.publish],
    console: entry.console,
    metrics: entry.metrics,
    createSessions: entry.createSessions,
    admin: entry.admin
  })
}

export function isLoopbackAddress (address: string | undefined): boolean {
  if (address === undefined) return false
  const a = address.toLowerCase()
  if (a === '::1') return true
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4)
}

/** `localhost:8080`, `127.0.0.1`, `[::1]:80` … */
function isLoopbackHostHeader (host: string): boolean {
  const m = /^(\[[^\]]*\]|[^:]*)(?::\d*)?$/.exec(host.trim().toLowerCase())
  if (m === null) return false
  const name = m[1]!.replace(/^\[|\]$/g, '')
  return name === 'localhost' || name.endsWith('.localhost') || isLoopbackAddress(name)
}

function sameOrigin (origin: string, host: string): boolean {
  try {
    return new URL(origin).host === host.trim().toLowerCase()
  } catch {
    return false
  }
}

export function forbidden (message: string): HttpError {
  return new HttpError(403, ErrorCode.FORBIDDEN, message)
}

function unauthorized (message: string, invalidToken: boolean): HttpError {
  const challenge = invalidToken ? 'Bearer realm="cometd-bridge", error="invalid_token"' : 'Bearer realm="cometd-bridge"'
  return new HttpError(401, ErrorCode.UNAUTHORIZED, message, { headers: { 'WWW-Authenticate': challenge } })
}

function wantsNdjson (req: FastifyRequest): boolean {
  const accept = req.headers.accept
  return typeof accept === 'string' && /application\/x-ndjson/i.test(accept)
}

/** What the route declares it needs; a 404 (no route) needs a token, and tells an anonymous caller nothing. */
function routeAccess (req: FastifyRequest): RouteAccess {
  if (req.routeOptions.url === undefined) return 'authenticated'
  return req.routeOptions.config?.access ?? 'deny'
}

/** `auth.public.*` opens this request (GET) without a token. */
function isPublic (req: FastifyRequest, cfg: AuthConfig): boolean {
  const opened = req.routeOptions.config?.public
  if (opened === 'metrics') return cfg.public.metrics
  return opened === 'sessions' && cfg.public.sessions && (req.method === 'GET' || req.method === 'HEAD')
}

export interface AuthHooks {
  /** answers a 401/403 of a browser navigation to the console (HTML instead of JSON); true when answered */
  htmlRefusal?: (req: FastifyRequest, reply: FastifyReply, err: HttpError) => boolean
}

/** Installs the onRequest hook that authenticates and authorizes every request (before any body is read). */
export function installAuth (app: FastifyInstance, access: AccessControl, hooks: AuthHooks = {}): void {
  app.decorate('access', access)
  app.decorateRequest('principal', null)

  app.addHook('onRequest', async (req, reply) => {
    // read per request: a configuration reload replaces app.access (server/reload.ts)
    const access = app.access
    const need = routeAccess(req)
    if (need === 'open' || isPublic(req, access.config)) return
    try {
      const principal = await authenticateRequest(req, access)
      req.principal = principal
      authorize(req, principal, need, access)
    } catch (err) {
      // a refused request must not cost its body: close instead of reading (draining) it for keep-alive
      if (hasBody(req)) reply.header('Connection', 'close')
      if (err instanceof HttpError && need === 'console' && hooks.htmlRefusal?.(req, reply, err) === true) return reply
      throw err
    }
  })
}

/**
 * A request's rights under `access` (a reloaded configuration), as if it arrived now: its principal, null when
 * the route needs none, or the HttpError that would refuse it.
 */
export async function recheckRequest (req: FastifyRequest, access: AccessControl): Promise<Principal | null> {
  const need = routeAccess(req)
  if (need === 'open' || isPublic(req, access.config)) return null
  const principal = await authenticateRequest(req, access)
  authorize(req, principal, need, access)
  return principal
}

function hasBody (req: FastifyRequest): boolean {
  const length = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0')
}

function authenticateRequest (req: FastifyRequest, access: AccessControl): Principal | Promise<Principal> {
  const cfg = access.config
  if (!access.required) {
    if (!cfg.allowUnauthenticated) {
      if (!isLoopbackAddress(req.socket?.remoteAddress ?? req.ip)) throw forbidden('This bridge has no auth.tokens configured and serves loopback callers only')
      // a web page the local user visits must not drive a token-less bridge: no cross-origin requests
      // (cross-site POSTs, WebSockets), no foreign Host names (DNS rebinding onto 127.0.0.1)
      const host = req.headers.host ?? ''
      if (!isLoopbackHostHeader(host)) throw forbidden('Without auth.tokens only loopback Host names are served (localhost, 127.0.0.1, [::1])')
      const origin = req.headers.origin
      if (typeof origin === 'string' && origin !== '' && !sameOrigin(origin, host)) throw forbidden('Without auth.tokens cross-origin requests are refused')
    }
    return ANONYMOUS
  }
  const header = req.headers.authorization
  // read from the raw query with the rule the log redaction uses (config/redact.ts), so both agree on every spelling
  const q = req.url.indexOf('?')
  const queryToken = q < 0 ? [] : queryTokens(req.url.slice(q + 1))
  let token: string | null = null
  if (typeof header === 'string' && header !== '') {
    const m = /^Bearer[ ]+([^\s]+)\s*$/i.exec(header)
    if (m === null) throw unauthorized('The Authorization header must be "Bearer <token>"', true)
    token = m[1]!
  } else if (queryToken.length > 0) {
    const sseStream = req.routeOptions.config?.queryToken === true && !wantsNdjson(req)
    if (!cfg.allowQueryToken || !sseStream) {
      throw unauthorized(`${QUERY_TOKEN_PARAM} in the URL is accepted only on SSE streams with auth.allowQueryToken: true; send Authorization: Bearer <token>`, true)
    }
    if (queryToken.length > 1) throw unauthorized(`Give ${QUERY_TOKEN_PARAM} once`, true)
    token = queryToken[0]!
  }
  if (token === null) throw unauthorized('A token is required: Authorization: Bearer <token>', false)
  const principal = access.authenticate(token)
  if (principal !== null) return principal
  if (access.jwt !== null) return access.jwt.authenticate(token)
  throw unauthorized('Invalid token', true)
}

function authorize (req: FastifyRequest, p: Principal, need: RouteAccess, access: AccessControl): void {
  switch (need) {
    case 'authenticated':
      return
    case 'deny':
      if (p.anonymous) return
      throw forbidden('This route is not open to tokens')
    case 'console':
      if (!p.console) throw forbidden('This token may not use the console (console: true)')
      return
    case 'metrics':
      if (!p.metrics) throw forbidden('This token may not read metrics (metrics: true)')
      return
    case 'admin':
      if (!p.admin) throw forbidden('This token may not administer the bridge (admin: true)')
      return
    case 'session':
      authorizeSessionRoute(req, p, access)
      return
    case 'open':
      return
  }
}

function authorizeSessionRoute (req: FastifyRequest, p: Principal, access: AccessControl): void {
  const name = (req.params as { name?: string }).name ?? ''
  if (!access.sessionAllowed(p, name)) throw forbidden(`This token may not use session ${JSON.stringify(name.slice(0, 100))}`)
  const kind = req.routeOptions.config?.channels
  if (kind === undefined) return
  const channels = requestChannels(req)
  if (kind === 'stream') {
    const denied = channels.filter((pattern) => !access.canSubscribe(p, pattern))
    if (denied.length > 0) throw forbidden(`This token may not subscribe to ${denied.slice(0, 5).join(', ')}`)
    return
  }
  const channel = channels[0]!
  if (!access.canPublish(p, channel)) throw forbidden(`This token may not ${kind === 'call' ? 'call' : 'publish to'} ${channel}`)
}

/** For handlers: the request's principal; null on routes opened by `auth.public` (no token was checked). */
export function requestPrincipal (req: FastifyRequest): Principal | null {
  return req.principal
}
