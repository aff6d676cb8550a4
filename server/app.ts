/**
 * buildApp(config, deps?) — the Fastify app with every route, one BridgeSession per configured session, metrics
 * and the shutdown hooks. It never listens (main.ts does); sessions start opening upstream on `ready`.
 *
 * Shutdown: `bridge.beginShutdown()` (or app.close(), whose preClose calls it) turns /readyz to 503, refuses new
 * requests with 503 `shutting_down`, and ends every SSE stream with `event: shutdown`; onClose then closes each
 * upstream client (sends /meta/disconnect) within shutdownTimeoutMs.
 */
import Fastify from 'fastify'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { BridgeConfig } from './config-types.js'
import { ErrorCode, HttpError, installErrorHandlers, sendHttpError } from './errors.js'
import { createLogger } from './ops/logger.js'
import type { AppLogger } from './ops/logger.js'
import { BridgeMetrics } from './ops/metrics.js'
import { BridgeSession } from './session/bridge-session.js'
import type { Session } from './session/any-session.js'
import { checkDataDir } from './event-log/checkpoint.js'
import { DEFAULT_DATA_DIR } from './upstream/reliability.js'
import type { ClientFactory } from './session/bridge-session.js'
import { callRoutes } from './http/routes/call.js'
import { eventsRoutes } from './http/routes/events.js'
import { healthRoutes } from './http/routes/health.js'
import { publishRoutes } from './http/routes/publish.js'
import { sessionsRoutes } from './http/routes/sessions.js'
// issue 7: WebSocket, auth/ACL, dynamic sessions, console
import websocket from '@fastify/websocket'
import { AccessControl, installAuth } from './http/auth.js'
import { installDynamicSessions } from './http/dynamic-sessions.js'
import { consoleAuthHooks, consoleRoutes, loadConsoleAssets } from './http/routes/console.js'
import { wsRoutes } from './http/routes/ws.js'
import { openSessions } from './session/startup.js'
import { LazyChildLogger } from './ops/lazy-log.js'

export interface Bridge {
  readonly config: BridgeConfig
  readonly sessions: ReadonlyMap<string, Session>
  /** the replica answering, when replicas share a Redis (`cluster`); null alone */
  readonly replicaId: string | null
  readonly metrics: BridgeMetrics
  /** true from the start of the shutdown */
  readonly draining: boolean
  /** SSE callers across all sessions */
  callerCount: () => number
  /** /readyz 503, new requests refused, SSE callers get `event: shutdown`. Idempotent. */
  beginShutdown: () => void
  /** settles once every configured session had its first open attempt (sessions open a few at a time) */
  readonly started: Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance {
    bridge: Bridge
  }
}

export interface AppDeps {
  logger?: AppLogger
  /** replaces `new Client(url, options)` (tests, embedding) */
  createClient?: ClientFactory
  /** prom-client default process metrics (default true) */
  defaultMetrics?: boolean
}

/**
 * Configured sessions opening upstream at the same time at start-up; a slot passes to the next session when the
 * first attempt is over, or after STARTUP_SLOT_MS (a slow upstream does not hold the others back). Measured with
 * 1,000 long-polling sessions against a local faye (then a full GC, main.ts): settled RSS 142 MB with 20 at a time,
 * 150 MB with 50, 199 MB all at once; ready in 7 s either way.
 */
export const STARTUP_CONCURRENCY = 20
export const STARTUP_SLOT_MS = 2_000

/** Requests still answered while draining. */
const DRAIN_ALLOWED = new Set(['/healthz', '/readyz', '/metrics'])

export async function buildApp (config: BridgeConfig, deps: AppDeps = {}): Promise<FastifyInstance> {
  const logger = deps.logger ?? createLogger(config.logLevel)
  const app: FastifyInstance = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.http.bodyLimitBytes,
    return503OnClosing: false,
    // HEAD on the SSE route would open a stream without a body: only the declared methods exist
    exposeHeadRoutes: false,
    routerOptions: { maxParamLength: 2048 },
    // malformed URLs (bad %-escapes) are answered in the catalogue's shape too
    frameworkErrors: (err, _req, reply) => {
      void sendHttpError(reply, new HttpError(400, ErrorCode.BAD_REQUEST, err.message))
    }
  })

  const sessions = new Map<string, Session>()
  let started!: () => void
  const startedP = new Promise<void>((resolve) => { started = resolve })
  const metrics = new BridgeMetrics(() => sessions.values(), deps.defaultMetrics ?? true)
  let draining = false
  // replicas sharing a Redis: loaded only then (the Redis client with it)
  const cluster = config.cluster === undefined
    ? null
    : await (await import('./cluster/services.js')).ClusterNode.open(config.cluster, { log: logger, registry: metrics.registry })
  const bridge: Bridge = {
    config,
    sessions,
    replicaId: cluster?.replicaId ?? null,
    metrics,
    get draining () { return draining },
    started: startedP,
    callerCount: () => {
      let n = 0
      for (const s of sessions.values()) n += s.callerCount
      return n
    },
    beginShutdown: () => {
      if (draining) return
      draining = true
      logger.info({ callers: bridge.callerCount() }, 'shutting down: ending streams')
      for (const s of sessions.values()) s.shutdownCallers()
    }
  }
  for (const [name, sessionConfig] of Object.entries(config.sessions)) {
    const log = new LazyChildLogger(logger, { session: name })
    const opts = {
      sse: config.sse,
      metrics,
      log,
      ...(deps.createClient !== undefined ? { createClient: deps.createClient } : {}),
      // issue 6: replay checkpoints
      dataDir: config.dataDir,
      checkpointIntervalMs: config.checkpointIntervalMs
    }
    if (sessionConfig.replay?.enabled === true) checkDataDir(config.dataDir ?? DEFAULT_DATA_DIR)
    sessions.set(name, cluster !== null ? cluster.session(name, sessionConfig, opts) : new BridgeSession(name, sessionConfig, opts))
  }
  app.decorate('bridge', bridge)
  // issue 7: before any route (it intercepts upgrades); streams end with their own shutdown frame (close 1001)
  await app.register(websocket, {
    options: { maxPayload: config.http.bodyLimitBytes + 1024, perMessageDeflate: false },
    errorHandler: (err, socket, req) => { req.log.debug({ err }, 'websocket error'); socket.terminate() },
    preClose: function (this: FastifyInstance, done: (err?: Error) => void) {
      bridge.beginShutdown()
      this.websocketServer.close(() => { done() })
    }
  })

  // Any content type is read as JSON text (curl -d sends form-urlencoded by default).
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => {
    const text = typeof body === 'string' ? body : body.toString('utf8')
    if (text.trim() === '') {
      done(new HttpError(400, ErrorCode.BAD_JSON, 'The request body must be a JSON value (the message data)'), undefined)
      return
    }
    try {
      done(null, JSON.parse(text))
    } catch (err) {
      done(new HttpError(400, ErrorCode.BAD_JSON, `The request body is not valid JSON: ${(err as Error).message}`), undefined)
    }
  })

  installErrorHandlers(app)

  app.addHook('onRequest', async (req, reply) => {
    if (!draining) return
    const path = req.url.split('?')[0] ?? ''
    if (DRAIN_ALLOWED.has(path)) return
    reply.header('Connection', 'close')
    return sendHttpError(reply, new HttpError(503, ErrorCode.SHUTTING_DOWN, 'The bridge is shutting down', { headers: { 'Retry-After': '1' } }))
  })

  // issue 7: authentication and authorization of every request (auth.ts), after the draining check
  const consoleAssets = loadConsoleAssets()
  installAuth(app, new AccessControl(config.auth), consoleAuthHooks(consoleAssets))

  app.addHook('onReady', async () => {
    void openSessions([...sessions.values()], { concurrency: STARTUP_CONCURRENCY, slotMs: STARTUP_SLOT_MS, stopped: () => draining })
      .catch((err: unknown) => { logger.error({ err }, 'session start-up failed') })
      .finally(started)
  })
  app.addHook('preClose', async () => {
    bridge.beginShutdown()
  })
  app.addHook('onClose', async () => {
    const budget = Math.max(100, config.shutdownTimeoutMs - 500)
    await Promise.all([...sessions.values()].map(async (s) => { await s.close(budget) }))
    await cluster?.close()
  })

  healthRoutes(app)
  sessionsRoutes(app)
  eventsRoutes(app)
  publishRoutes(app)
  callRoutes(app)
  wsRoutes(app)
  consoleRoutes(app, consoleAssets)
  installDynamicSessions(app, { sessions, metrics, logger, ...(deps.createClient !== undefined ? { createClient: deps.createClient } : {}) })
  return app
}
