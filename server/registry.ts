/**
 * The bridge's sessions: configured ones (from the config, for the life of the process) and dynamic ones (opened
 * by callers). Every session is built here, the same way: its logger, the shared metrics, the SSE settings and
 * the replay checkpoint options. With replicas on Redis (`cluster`), configured sessions are cluster sessions
 * (cluster/cluster-session.ts); dynamic ones stay this replica's own.
 */
import type { Config, SessionConfig } from '../config/index.js'
import { checkDataDir } from './event-log/checkpoint.js'
import { LazyChildLogger } from './ops/lazy-log.js'
import type { AppLogger } from './ops/logger.js'
import type { BridgeMetrics } from './ops/metrics.js'
import { watchUpstream } from './ops/upstream-log.js'
import { BridgeSession } from './session/bridge-session.js'
import type { ClientFactory } from './session/bridge-session.js'
import type { Session } from './any-session.js'
import type { ClusterNode } from './cluster/services.js'

export interface RegistryOptions {
  config: Config
  metrics: BridgeMetrics
  logger: AppLogger
  createClient?: ClientFactory | undefined
  /** this replica of a cluster (`cluster` configured), null alone */
  cluster?: ClusterNode | null
}

export class SessionRegistry {
  readonly #sessions = new Map<string, Session>()
  readonly #o: RegistryOptions

  constructor (options: RegistryOptions) {
    this.#o = options
  }

  /** The sessions by name (a live view: dynamic sessions come and go). */
  get map (): ReadonlyMap<string, Session> { return this.#sessions }

  has (name: string): boolean { return this.#sessions.has(name) }
  get (name: string): Session | undefined { return this.#sessions.get(name) }
  values (): IterableIterator<Session> { return this.#sessions.values() }

  /** Builds and registers a session (not started). Throws when its replay data directory is unusable. */
  create (name: string, sessionConfig: SessionConfig, kind: 'configured' | 'dynamic' = 'configured'): Session {
    const { config, metrics, logger, createClient, cluster } = this.#o
    if (sessionConfig.replay.enabled) checkDataDir(config.dataDir)
    const log = new LazyChildLogger(logger, { session: name })
    const o = this.#o
    const options = {
      // read when a caller attaches: a reload's new stream limits apply to new callers of every session
      get sse () { return o.config.sse },
      metrics,
      log,
      ...(createClient !== undefined ? { createClient } : {}),
      dataDir: config.dataDir,
      checkpointIntervalMs: config.checkpointIntervalMs
    }
    let session: Session
    if (cluster != null && kind === 'configured') {
      session = cluster.session(name, sessionConfig, options)
    } else {
      const local = new BridgeSession(name, sessionConfig, options)
      watchUpstream(local, log)
      session = local
    }
    this.#sessions.set(name, session)
    return session
  }

  /** The configuration sessions created from now on are built with (a reload). */
  reconfigure (config: Config): void {
    this.#o.config = config
  }

  /** Unregisters the session (new requests get 404 at once); closing it is the caller's. */
  remove (name: string): Session | undefined {
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

  /** Closes every session (each sends /meta/disconnect) within `budgetMs`, then this replica's cluster parts. */
  async closeAll (budgetMs: number): Promise<void> {
    await Promise.all([...this.#sessions.values()].map(async (s) => { await s.close(budgetMs) }))
    await this.#o.cluster?.close()
  }
}
