/**
 * The shape of the configuration the server consumes (produced and validated by config/). Declared here
 * structurally so that server/ depends on the shape, not on the loader.
 */
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
  connectionTimeoutMs: number
  /** how long an upstream subscription outlives its last caller */
  unsubscribeLingerMs: number
  tls?: Record<string, unknown> | null | undefined
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

export interface BridgeConfig {
  listen: { host: string, port: number }
  logLevel: string
  demo: 'auto' | boolean
  sessions: Record<string, SessionConfig>
  sse: SseConfig
  http: HttpConfig
  shutdownTimeoutMs: number
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
