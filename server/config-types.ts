/**
 * The shape of the configuration the server consumes (produced and validated by config/). Declared here
 * structurally so that server/ depends on the shape, not on the loader.
 */
import type { ReplayConfig } from './event-log/replay.js'
import type { UpstreamAuthConfig } from './upstream/token.js'
import type { ClusterConfig } from './cluster/config.js'

export type ConnectionTypeName = 'websocket' | 'long-polling'

export interface SessionConfig {
  url: string
  connectionTypes: ConnectionTypeName[]
  headers: Record<string, string>
  /** held for ever, even with no caller */
  subscribe: string[]
  /** messages kept for resume */
  bufferSize: number
  maxNetworkDelayMs: number
  /** the largest upstream request body / websocket frame of publishes (client-core `maxBatchBytes`); absent = its default */
  maxBatchBytes?: number | undefined
  connectionTimeoutMs: number
  /** how long an upstream subscription outlives its last caller */
  unsubscribeLingerMs: number
  tls?: Record<string, unknown> | null | undefined
  /** issue 6: acknowledged delivery (CometD ack extension) */
  ack?: boolean | undefined
  /** issue 6: Salesforce replay with durable checkpoints (replay.ts) */
  replay?: ReplayConfig | undefined
  /** issue 6: upstream Bearer token from a file, a command or an OAuth refresh token (token.ts) */
  auth?: UpstreamAuthConfig | null | undefined
}

export interface SseConfig {
  heartbeatMs: number
  retryMs: number
  maxQueueBytes: number
  writeTimeoutMs: number
  maxCallers: number
}

export interface HttpConfig {
  bodyLimitBytes: number
  publishTimeoutMs: number
  callTimeoutMs: number
}

/** One caller token and its rights (docs/security.md). Exactly one of token / sha256. */
export interface TokenEntry {
  name?: string | undefined
  token?: string | undefined
  /** hex SHA-256 of the token */
  sha256?: string | undefined
  /** configured session names, or "*" for all of them */
  sessions: string[]
  subscribe: string[]
  /** publish and call */
  publish: string[]
  console: boolean
  metrics: boolean
  createSessions: boolean
}

export interface AuthConfig {
  tokens: TokenEntry[]
  allowQueryToken: boolean
  allowUnauthenticated: boolean
  public: { metrics: boolean, sessions: boolean }
}

export interface DynamicSessionsConfig {
  enabled: boolean
  allowUrls: string[]
  idleTimeoutMs: number
  maxPerToken: number
  maxTotal: number
}

export const AUTH_DEFAULTS: AuthConfig = {
  tokens: [],
  allowQueryToken: false,
  allowUnauthenticated: false,
  public: { metrics: false, sessions: false }
}

export const DYNAMIC_SESSIONS_DEFAULTS: DynamicSessionsConfig = {
  enabled: false,
  allowUrls: [],
  idleTimeoutMs: 300_000,
  maxPerToken: 5,
  maxTotal: 50
}

export interface BridgeConfig {
  listen: { host: string, port: number }
  logLevel: string
  demo: 'auto' | boolean
  sessions: Record<string, SessionConfig>
  sse: SseConfig
  http: HttpConfig
  shutdownTimeoutMs: number
  /** caller auth (absent = AUTH_DEFAULTS) */
  auth?: AuthConfig
  /** POST /sessions (absent = disabled) */
  dynamicSessions?: DynamicSessionsConfig
  /** issue 6: where replay checkpoints are kept (absent = ./data) */
  dataDir?: string
  /** issue 6: checkpoint writes are coalesced to at most one per interval (absent = 200 ms) */
  checkpointIntervalMs?: number
  /** replicas sharing one Redis (absent = this bridge runs alone) */
  cluster?: ClusterConfig | undefined
}

/** Values used when the server itself adds a session (the embedded demo). Mirrors the config defaults. */
export const SESSION_DEFAULTS: Omit<SessionConfig, 'url'> = {
  connectionTypes: ['websocket', 'long-polling'],
  headers: {},
  subscribe: [],
  bufferSize: 1000,
  maxNetworkDelayMs: 10_000,
  connectionTimeoutMs: 10_000,
  unsubscribeLingerMs: 5_000
}
