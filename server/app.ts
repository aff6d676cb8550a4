/**
 * buildApp(config, deps?) — the Fastify app: the sessions (session/registry.ts), the edge (auth, body parsing,
 * errors, the route plugins in http/routes/), metrics and the lifecycle. It never listens (main.ts does);
 * sessions start opening upstream on `ready`.
 *
 * Shutdown: `bridge.beginShutdown()` (or app.close(), whose preClose calls it) turns /readyz to 503, refuses new
 * requests with 503 `shutting_down`, and ends every stream with `event: shutdown`; onClose then closes each
 * upstream client (sends /meta/disconnect) within shutdownTimeoutMs.
 */
import Fastify, { LogController } from 'fastify'
import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest, FastifyServerOptions, RouteOptions } from 'fastify'
import websocket from '@fastify/websocket'
import type { Config } from '../config/index.js'
import { redactText } from '../config/redact.js'
import { ErrorCode, HttpError, installErrorHandlers, sendHttpError } from './errors.js'
import { AccessControl, installAuth } from './http/auth.js'
import { installOpenStreams } from './http/open-streams.js'
import { installJsonBody } from './http/body.js'
import { installDynamicSessions } from './http/dynamic-sessions.js'
import { consoleAuthHooks, consoleRoutes, loadConsoleAssets } from './http/routes/console.js'
import { eventsRoutes } from './http/routes/events.js'
import { healthRoutes } from './http/routes/health.js'
import { publishRoutes } from './http/routes/publish.js'
import { sessionsRoutes } from './http/routes/sessions.js'
import { wsRoutes } from './http/routes/ws.js'
import { createLogger } from './ops/logger.js'
import type { AppLogger } from './ops/logger.js'
import { BridgeMetrics } from './ops/metrics.js'
import type { ClientFactory } from './session/bridge-session.js'
import type { Session } from './any-session.js'
import { SessionRegistry } from './registry.js'
import { openSessions } from './session/startup.js'
import { installRequestLog } from './ops/request-log.js'
import { registerCors } from './http/cors.js'
import { registerOpenApi } from './http/openapi.js'
import { adminRoutes } from './http/routes/admin.js'
import { createReloader } from './reload.js'
import type { ConfigSource, ReloadOutcome } from './reload.js'

export interface Bridge {
  readonly config: Config
  readonly sessions: ReadonlyMap<string, Session>
  /** the replica answering, when replicas share a Redis (`cluster`); null alone */
  readonly replicaId: string | null
  readonly metrics: BridgeMetrics
  /** true from the start of the shutdown */
  readonly draining: boolean
  /** streaming callers across all sessions */
  callerCount: () => number
  /** /readyz 503, new requests refused, streaming callers get `event: shutdown`. Idempotent. */
  beginShutdown: () => void
  /** settles once every configured session had its first open attempt (sessions open a few at a time) */
  readonly started: Promise<void>
  /** re-reads the configuration and applies it (reload.ts); never rejects */
  reload: (trigger: string) => Promise<ReloadOutcome>
}

declare module 'fastify' {
  interface FastifyInstance {
    bridge: Bridge
  }
  interface FastifyContextConfig {
    /** a health, readiness or metrics probe: still answered while the bridge shuts down, logged at debug */
    probe?: boolean
  }
}

export interface AppDeps {
  logger?: AppLogger
  /** replaces `new Client(url, options)` (tests, embedding) */
  createClient?: ClientFactory
  /** prom-client default process metrics (default true) */
  defaultMetrics?: boolean
  /** told of every route as it is added (tests: the API description lists them all) */
  onRoute?: (route: RouteOptions) => void
  /** re-reads the configuration for a reload (main.ts: loadConfig as at start-up); without it reload is unavailable */
  reloadSource?: ConfigSource
}

/** Fastify's own settings: our logger, one request line per request, HEAD routes, errors in the catalogue's shape. */
function fastifyOptions (config: Config, logger: AppLogger): FastifyServerOptions {
  return {
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }), // one line per request, at its level: ops/request-log.ts
    bodyLimit: config.http.bodyLimitBytes,
    return503OnClosing: false,
    // HEAD wherever GET is; the stream route answers its HEAD without opening a stream (routes/events.ts)
    exposeHeadRoutes: true,
    routerOptions: { maxParamLength: 2048 },
    // malformed URLs (bad %-escapes) are answered in the catalogue's shape too
    frameworkErrors: (err, _req, reply) => {
      // Fastify's message quotes the whole URL, query (and a token in it) included
      const message = err.code === 'FST_ERR_BAD_URL' ? 'The URL is not valid (a malformed percent-escape?)' : redactText(err.message)
      void sendHttpError(reply, new HttpError(400, ErrorCode.BAD_REQUEST, message))
    }
  }
}

/**
 * Configured sessions opening upstream at the same time at start-up; a slot passes to the next session when the
 * first attempt is over, or after STARTUP_SLOT_MS (a slow upstream does not hold the others back). Measured with
 * 1,000 long-polling sessions against a local faye (then a full GC, main.ts): settled RSS 142 MB with 20 at a time,
 * 150 MB with 50, 199 MB all at once; ready in 7 s either way.
 */
export const STARTUP_CONCURRENCY = 20
export const STARTUP_SLOT_MS = 2_000

export async function buildApp (config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const logger = deps.logger ?? createLogger(config.logLevel)
  const app: FastifyInstance = Fastify(fastifyOptions(config, logger))
  const metrics: BridgeMetrics = new BridgeMetrics(() => sessions.values(), deps.defaultMetrics ?? true)
  // replicas sharing a Redis: loaded only then (the Redis client with it)
  const cluster = config.cluster === undefined
    ? null
    : await (await import('./cluster/services.js')).ClusterNode.open(config.cluster, { log: logger, registry: metrics.registry })
  const sessions = new SessionRegistry({ config, metrics, logger, createClient: deps.createClient, cluster })
  for (const [name, sessionConfig] of Object.entries(config.sessions)) sessions.create(name, sessionConfig)
  const reloader = createReloader(app, { sessions, metrics, logger, source: deps.reloadSource ?? null })
  const bridge = createBridge(config, sessions, metrics, logger, cluster?.replicaId ?? null, async (trigger) => await reloader.reload(trigger))
  app.decorate('bridge', bridge)

  // before any route (it intercepts upgrades); streams end with their own shutdown frame (close 1001)
  await app.register(websocket, {
    options: { maxPayload: config.http.bodyLimitBytes + 1024, perMessageDeflate: false },
    errorHandler: (err, socket, req) => { req.log.debug({ err }, 'websocket error'); socket.terminate() },
    preClose: function (this: FastifyInstance, done: (err?: Error) => void) {
      bridge.beginShutdown()
      this.websocketServer.close(() => { done() })
    }
  })
  // before authentication: preflights carry no token
  await registerCors(app, config.http.cors)
  installJsonBody(app)
  installErrorHandlers(app)
  installRequestLog(app)
  app.addHook('onRequest', async (req, reply) => refuseWhileDraining(bridge, req, reply))
  // authentication and authorization of every request, after the draining check, before any body is read; then
  // the open streams are tracked with their principal (expiry, rights checked again on reload)
  const consoleAssets = loadConsoleAssets()
  installAuth(app, new AccessControl(config.auth), consoleAuthHooks(consoleAssets))
  installOpenStreams(app)
  installLifecycle(app, sessions, bridge)

  if (deps.onRoute !== undefined) app.addHook('onRoute', deps.onRoute)
  await registerOpenApi(app)
  await app.register(healthRoutes)
  await app.register(sessionsRoutes)
  await app.register(eventsRoutes)
  await app.register(publishRoutes)
  await app.register(wsRoutes)
  await app.register(consoleRoutes, { assets: consoleAssets })
  await app.register(adminRoutes)
  installDynamicSessions(app, { sessions, metrics, logger })
  return app
}

function createBridge (config: Config, sessions: SessionRegistry, metrics: BridgeMetrics, logger: AppLogger, replicaId: string | null, reload: Bridge['reload']): Bridge & { markStarted: () => void } {
  let draining = false
  let markStarted!: () => void
  const started = new Promise<void>((resolve) => { markStarted = resolve })
  const bridge = {
    config,
    sessions: sessions.map,
    replicaId,
    metrics,
    get draining () { return draining },
    started,
    markStarted,
    reload,
    callerCount: () => sessions.callerCount(),
    beginShutdown: () => {
      if (draining) return
      draining = true
      logger.info({ callers: sessions.callerCount() }, 'shutting down: ending streams')
      sessions.shutdownCallers()
    }
  }
  return bridge
}

async function refuseWhileDraining (bridge: Bridge, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
  if (!bridge.draining || req.routeOptions.config?.probe === true) return
  reply.header('Connection', 'close')
  return sendHttpError(reply, new HttpError(503, ErrorCode.SHUTTING_DOWN, 'The bridge is shutting down', { headers: { 'Retry-After': '1' } }))
}

/** Sessions open on `ready` (a few at a time); a close ends the streams, then closes every session upstream. */
function installLifecycle (app: FastifyInstance, sessions: SessionRegistry, bridge: Bridge & { markStarted: () => void }): void {
  const config = bridge.config
  app.addHook('onReady', async () => {
    void openSessions([...sessions.values()], { concurrency: STARTUP_CONCURRENCY, slotMs: STARTUP_SLOT_MS, stopped: () => bridge.draining })
      .catch((err: unknown) => { app.log.error({ err }, 'session start-up failed') })
      .finally(bridge.markStarted)
  })
  app.addHook('preClose', async () => {
    bridge.beginShutdown()
  })
  app.addHook('onClose', async () => {
    await sessions.closeAll(Math.max(100, config.shutdownTimeoutMs - 500))
  })
}
