/**
 * The configuration reload (session/reload.ts) wired to the running app: adopting a configuration points
 * `app.bridge.config` at it (stream and HTTP limits, dynamic-session settings are read from there per request),
 * gives the registry the settings new sessions are built with, and replaces `app.access` (tokens, ACLs, JWT):
 * the auth hook reads it per request. Streams already open are checked again (http/open-streams.ts): one whose
 * caller lost its rights ends with an in-band `access-revoked` event.
 */
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config/index.js'
import { AccessControl } from './http/auth.js'
import type { AppLogger } from './ops/logger.js'
import type { BridgeMetrics } from './ops/metrics.js'
import type { SessionRegistry } from './registry.js'
import { Reloader } from './session/reload.js'
import type { ConfigSource, ReloadOutcome } from './session/reload.js'

export type { ConfigSource, ReloadOutcome } from './session/reload.js'

interface ReloadDeps {
  sessions: SessionRegistry
  metrics: BridgeMetrics
  logger: AppLogger
  source: ConfigSource | null
}

export function createReloader (app: FastifyInstance, deps: ReloadDeps): Reloader {
  const { sessions, metrics, logger } = deps
  const bridge = (): { config: Config, draining: boolean } => app.bridge
  return new Reloader({
    get config () { return bridge().config },
    source: deps.source,
    stopped: () => bridge().draining,
    has: (name) => sessions.has(name),
    remove: (name) => sessions.remove(name),
    add: (name, config) => { void sessions.create(name, config).start() },
    adopt: (config) => {
      bridge().config = config
      sessions.reconfigure(config)
      const access = new AccessControl(config.auth)
      access.ownerOf = app.access.ownerOf
      app.access = access
      // streams open now keep their rights only if the new configuration still grants them
      void app.openStreams.recheck(access).then((o) => {
        if (o.revoked > 0) logger.info({ checked: o.checked, revoked: o.revoked }, `configuration reload: ${o.revoked} of ${o.checked} open stream(s) lost their rights and were ended`)
      })
    },
    report: (outcome, trigger) => {
      metrics.configReloads.inc({ outcome: outcome.outcome })
      logOutcome(logger, outcome, trigger)
    }
  }, () => Math.max(100, Math.min(5_000, bridge().config.shutdownTimeoutMs - 500)))
}

/** One line per reload; an invalid configuration at error, with each problem's path and message (never a value). */
function logOutcome (logger: AppLogger, o: ReloadOutcome, trigger: string): void {
  switch (o.outcome) {
    case 'invalid':
      logger.error({ trigger, errors: o.errors }, `configuration reload refused, still running the previous configuration: ${o.errors.map((e) => `${e.path}: ${e.message}`).join('; ')}`)
      return
    case 'unavailable':
      logger.warn({ trigger }, `configuration reload unavailable: ${o.message}`)
      return
    default: {
      const { outcome, failed, ...plan } = o
      const level = outcome === 'failed' ? 'error' : plan.needsRestart.length > 0 ? 'warn' : 'info'
      const restart = plan.needsRestart.length > 0 ? `; needs a restart to apply: ${plan.needsRestart.join(', ')}` : ''
      logger[level]({ trigger, ...plan, failed }, `configuration reloaded (${outcome})${restart}`)
    }
  }
}
