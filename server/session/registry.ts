/**
 * The bridge's sessions: configured ones (from the config, for the life of the process) and dynamic ones (opened
 * by callers). Every session is built here, the same way: its logger, the shared metrics, the SSE settings and
 * the replay checkpoint options.
 */
import type { Config, SessionConfig } from '../../config/index.js'
import { checkDataDir } from '../event-log/checkpoint.js'
import { LazyChildLogger } from '../ops/lazy-log.js'
import type { AppLogger } from '../ops/logger.js'
import type { BridgeMetrics } from '../ops/metrics.js'
import { watchUpstream } from '../ops/upstream-log.js'
import { BridgeSession } from './bridge-session.js'
import type { ClientFactory } from './bridge-session.js'

export interface RegistryOptions {
  config: Config
  metrics: BridgeMetrics
  logger: AppLogger
  createClient?: ClientFactory | undefined
}

export class SessionRegistry {
  readonly #sessions = new Map<string, BridgeSession>()
  readonly #o: RegistryOptions

  constructor (options: RegistryOptions) {
    this.#o = options
  }

  /** The sessions by name (a live view: dynamic sessions come and go). */
  get map (): ReadonlyMap<string, BridgeSession> { return this.#sessions }

  has (name: string): boolean { return this.#sessions.has(name) }
  get (name: string): BridgeSession | undefined { return this.#sessions.get(name) }
  values (): IterableIterator<BridgeSession> { return this.#sessions.values() }

  /** Builds and registers a session (not started). Throws when its replay data directory is unusable. */
  create (name: string, sessionConfig: SessionConfig): BridgeSession {
    const { config, metrics, logger, createClient } = this.#o
    if (sessionConfig.replay.enabled) checkDataDir(config.dataDir)
    const log = new LazyChildLogger(logger, { session: name })
    const options = this.#o
    const session = new BridgeSession(name, sessionConfig, {
      // read when a caller attaches: a reload's new stream limits apply to new callers of every session
      get sse () { return options.config.sse },
      metrics,
      log,
      ...(createClient !== undefined ? { createClient } : {}),
      dataDir: config.dataDir,
      checkpointIntervalMs: config.checkpointIntervalMs
    })
    watchUpstream(session, log)
    this.#sessions.set(name, session)
    return session
  }

  /** The configuration sessions created from now on are built with (a reload). */
  reconfigure (config: Config): void {
    this.#o.config = config
  }

  /** Unregisters the session (new requests get 404 at once); closing it is the caller's. */
  remove (name: string): BridgeSession | undefined {
    const session = this.#sessions.get(name)
    this.#sessions.delete(name)
    return session
  }

  /** Streaming callers across all sessions. */
  callerCount (): number {
    let n = 0
    for (const s of this.#sessions.values()) n += s.callerCount
    return n
  }

  shutdownCallers (): void {
    for (const s of this.#sessions.values()) s.shutdownCallers()
  }

  /** Closes every session (each sends /meta/disconnect) within `budgetMs`. */
  async closeAll (budgetMs: number): Promise<void> {
    await Promise.all([...this.#sessions.values()].map(async (s) => { await s.close(budgetMs) }))
  }
}
