/**
 * Dynamic sessions (config `dynamicSessions`): a caller with `createSessions` opens an upstream session of its own
 * with `POST /sessions {url, headers?, connectionTypes?}` (201 `{name}`), owned by its token (only that token may
 * use or delete it), ends it with `DELETE /sessions/:name` (sends /meta/disconnect), and a session without any
 * streaming caller or request for `idleTimeoutMs` is closed. The URL must pass the SSRF guard (ssrf.ts).
 * Limits: `maxPerToken` per owner, `maxTotal` in all.
 */
import { randomBytes } from 'node:crypto'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { z } from 'zod'
import { ALL_CONNECTION_TYPES } from '../../client-core/index.js'
import { forbidden } from './auth.js'
import { defaultSession, HEADER_NAME_RE, TRANSPORT_HEADERS } from '../../config/index.js'
import type { DynamicSessionsConfig, SessionConfig } from '../../config/index.js'
import { ErrorCode, HttpError } from '../errors.js'
import type { AppLogger } from '../ops/logger.js'
import type { BridgeMetrics } from '../ops/metrics.js'
import type { SessionRegistry } from '../registry.js'
import { redactUrl } from '../../config/redact.js'
import { checkUpstreamUrl, parseAllowUrls } from './ssrf.js'
import { sessionParams } from './routes/common.js'

export interface DynamicDeps {
  /** the bridge's sessions (dynamic sessions are added to and removed from them) */
  sessions: SessionRegistry
  metrics: BridgeMetrics
  logger: AppLogger
}

interface DynamicEntry {
  owner: string
  ownerName: string
  createdAt: number
  lastActive: number
}

/** A caller may not set the transport's headers (as the config may not), nor speak for a proxy or its client address. */
const FORBIDDEN_HEADERS = new Set([...TRANSPORT_HEADERS,
  'proxy-authorization', 'forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip'])

const bodySchema = z.strictObject({
  url: z.string(),
  headers: z.record(
    z.string().regex(HEADER_NAME_RE, { error: 'is not a valid HTTP header name' })
      .refine((n) => !FORBIDDEN_HEADERS.has(n.toLowerCase()), { error: 'cannot be set' }),
    // eslint-disable-next-line no-control-regex
    z.string().max(16_384).refine((v) => !/[\r\n\0]/.test(v), { error: 'must not contain CR, LF or NUL' })
  ).refine((h) => Object.keys(h).length <= 32, { error: 'at most 32 headers' }).optional(),
  connectionTypes: z.array(z.enum(ALL_CONNECTION_TYPES)).min(1).max(ALL_CONNECTION_TYPES.length)
    .refine((v) => new Set(v).size === v.length, { error: 'must not repeat a connection type' }).optional()
})

export class DynamicSessions {
  readonly #entries = new Map<string, DynamicEntry>()
  readonly #deps: DynamicDeps
  readonly #app: FastifyInstance
  #timer: NodeJS.Timeout | null = null

  constructor (app: FastifyInstance, deps: DynamicDeps) {
    this.#app = app
    this.#deps = deps
  }

  get config (): DynamicSessionsConfig { return this.#app.bridge.config.dynamicSessions }

  ownerOf (name: string): string | undefined { return this.#entries.get(name)?.owner }
  isDynamic (name: string): boolean { return this.#entries.has(name) }
  get size (): number { return this.#entries.size }

  countOf (owner: string): number {
    let n = 0
    for (const e of this.#entries.values()) if (e.owner === owner) n++
    return n
  }

  touch (name: string): void {
    const e = this.#entries.get(name)
    if (e !== undefined) e.lastActive = Date.now()
  }

  create (req: FastifyRequest): { name: string, url: string } {
    const cfg = this.config
    const p = req.principal
    if (p === null) throw new HttpError(401, ErrorCode.UNAUTHORIZED, 'A token is required')
    if (!p.createSessions) throw forbidden('This token may not create sessions (createSessions: true)')
    const parsed = bodySchema.safeParse(req.body)
    if (!parsed.success) {
      const problems = parsed.error.issues.slice(0, 5).map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; ')
      throw new HttpError(400, ErrorCode.BAD_REQUEST, `Expected {url, headers?, connectionTypes?}: ${problems}`)
    }
    const body = parsed.data
    const check = checkUpstreamUrl(body.url, parseAllowUrls(cfg.allowUrls))
    if (!check.ok) {
      req.log.warn({ owner: p.name, rule: check.rule, reason: check.reason }, 'dynamic session refused by the URL guard')
      throw new HttpError(check.status, check.status === 400 ? ErrorCode.INVALID_URL : ErrorCode.URL_NOT_ALLOWED, check.reason, { details: { rule: check.rule } })
    }
    if (this.countOf(p.id) >= cfg.maxPerToken) {
      throw new HttpError(429, ErrorCode.TOO_MANY_SESSIONS, `This token already has ${cfg.maxPerToken} dynamic sessions (dynamicSessions.maxPerToken)`)
    }
    if (this.#entries.size >= cfg.maxTotal) {
      throw new HttpError(429, ErrorCode.TOO_MANY_SESSIONS, `The bridge already has ${cfg.maxTotal} dynamic sessions (dynamicSessions.maxTotal)`)
    }
    if (this.#app.bridge.draining) throw new HttpError(503, ErrorCode.SHUTTING_DOWN, 'The bridge is shutting down', { headers: { 'Retry-After': '1' } })
    let name: string
    do name = `dyn-${randomBytes(6).toString('hex')}`
    while (this.#deps.sessions.has(name))
    const defaults = defaultSession(check.url)
    const sessionConfig: SessionConfig = {
      ...defaults,
      headers: { ...(body.headers ?? {}) },
      connectionTypes: body.connectionTypes ?? defaults.connectionTypes,
      tls: { rejectUnauthorized: true }
    }
    // a dynamic session is this replica's own, also in a cluster (docs/scale-out.md)
    const session = this.#deps.sessions.create(name, sessionConfig, 'dynamic')
    const now = Date.now()
    this.#entries.set(name, { owner: p.id, ownerName: p.name, createdAt: now, lastActive: now })
    void session.start() // settles when the first attempt is over; never rejects
    this.#schedule()
    this.#deps.logger.info({ session: name, owner: p.name, url: redactUrl(check.url), connectionTypes: sessionConfig.connectionTypes }, 'dynamic session created')
    return { name, url: redactUrl(check.url) }
  }

  /** Removes the session (new requests get 404 at once), then closes it upstream (sends /meta/disconnect). */
  async remove (name: string, why: 'deleted' | 'idle'): Promise<void> {
    const entry = this.#entries.get(name)
    if (entry === undefined || !this.#deps.sessions.has(name)) return
    this.#entries.delete(name)
    const session = this.#deps.sessions.remove(name)!
    const budget = Math.max(100, Math.min(5_000, this.#app.bridge.config.shutdownTimeoutMs - 500))
    this.#deps.logger.info({ session: name, owner: entry.ownerName, reason: why, ageMs: Date.now() - entry.createdAt }, 'dynamic session closing')
    await session.close(budget)
    await forgetMetrics(this.#deps.metrics, name)
  }

  /** The idle reaper runs while dynamic sessions exist. */
  #schedule (): void {
    if (this.#timer !== null) return
    const every = Math.max(50, Math.min(5_000, Math.floor(this.config.idleTimeoutMs / 4)))
    this.#timer = setInterval(() => { this.#reap() }, every)
    this.#timer.unref()
  }

  #reap (): void {
    const now = Date.now()
    const idleMs = this.config.idleTimeoutMs
    for (const [name, entry] of this.#entries) {
      const session = this.#deps.sessions.get(name)
      if (session === undefined) continue
      if (session.callerCount > 0) { entry.lastActive = now; continue }
      if (now - entry.lastActive >= idleMs) void this.remove(name, 'idle').catch(() => {})
    }
    if (this.#entries.size === 0) this.stop()
  }

  stop (): void {
    if (this.#timer !== null) clearInterval(this.#timer)
    this.#timer = null
  }
}

/** Drops the metric series of a session that is gone (dynamic session names would otherwise pile up). */
async function forgetMetrics (metrics: BridgeMetrics, name: string): Promise<void> {
  type Removable = { get: () => Promise<{ values: Array<{ labels: Record<string, string | number> }> }>, remove: (l: Record<string, string | number>) => void }
  for (const metric of metrics.registry.getMetricsAsArray() as unknown as Removable[]) {
    try {
      const data = await metric.get()
      const seen = new Set<string>()
      for (const value of data.values) {
        const labels = value.labels
        if (labels.session !== name) continue
        const { le: _le, quantile: _q, ...rest } = labels
        const key = JSON.stringify(rest)
        if (seen.has(key)) continue
        seen.add(key)
        metric.remove(rest)
      }
    } catch {}
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    dynamicSessions: DynamicSessions
  }
}

/** Routes POST /sessions and DELETE /sessions/:name (when enabled), activity tracking, the idle reaper. */
export function installDynamicSessions (app: FastifyInstance, deps: DynamicDeps): DynamicSessions {
  const dynamic = new DynamicSessions(app, deps)
  app.decorate('dynamicSessions', dynamic)
  app.access.ownerOf = (name) => dynamic.ownerOf(name)

  // any request naming a dynamic session counts as activity
  app.addHook('onRequest', async (req) => {
    const name = (req.params as { name?: unknown } | undefined)?.name
    if (typeof name === 'string') dynamic.touch(name)
  })
  app.addHook('onClose', async () => { dynamic.stop() })

  if (!(app.bridge.config.dynamicSessions?.enabled ?? false)) return dynamic

  app.post('/sessions', {
    config: { access: 'authenticated' },
    schema: { summary: 'Open a dynamic session to an allowed upstream URL', tags: ['sessions'] }
  }, async (req, reply) => {
    const created = dynamic.create(req)
    return reply.code(201).header('Location', `/sessions/${created.name}`).send({ name: created.name, url: created.url })
  })

  app.delete<{ Params: { name: string } }>('/sessions/:name', {
    config: { access: 'session' },
    schema: { params: sessionParams, summary: 'Close a dynamic session', tags: ['sessions'] }
  }, async (req, reply) => {
    const name = req.params.name
    if (!dynamic.isDynamic(name)) {
      if (!app.bridge.sessions.has(name)) throw new HttpError(404, ErrorCode.UNKNOWN_SESSION, `No session named ${JSON.stringify(name.slice(0, 100))}`)
      throw new HttpError(409, ErrorCode.NOT_DELETABLE, 'Only dynamic sessions can be deleted; configured sessions live as long as the bridge')
    }
    await dynamic.remove(name, 'deleted')
    return reply.code(204).send()
  })
  return dynamic
}
