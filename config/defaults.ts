/**
 * Named defaults and limits of every configuration value, shared by the schema, the docs and the server.
 * Durations are milliseconds (`…Ms`), sizes are bytes (`…Bytes`).
 */
import { ALL_CONNECTION_TYPES } from '../client-core/index.js'

export const CONFIG_EXIT_CODE = 78 // EX_CONFIG from sysexits.h

/** Name of the session defined by COMETD_BRIDGE_URL / --url (and the target of the other session env vars). */
export const DEFAULT_SESSION_NAME = 'default'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export const CONNECTION_TYPES = ALL_CONNECTION_TYPES
export const SESSION_NAME_RE = /^[A-Za-z0-9_-]{1,64}$/

export const DEFAULT_HOST = '127.0.0.1'
export const DEFAULT_PORT = 8080
export const DEFAULT_LOG_LEVEL = 'info'
export const DEFAULT_DEMO = 'auto'
export const DEFAULT_SHUTDOWN_TIMEOUT_MS = 10_000

export const DEFAULT_CONNECTION_TYPES = ALL_CONNECTION_TYPES
export const DEFAULT_BUFFER_SIZE = 1_000
export const DEFAULT_MAX_NETWORK_DELAY_MS = 10_000
export const DEFAULT_CONNECTION_TIMEOUT_MS = 10_000
export const DEFAULT_UNSUBSCRIBE_LINGER_MS = 5_000
/** ≤ 0.5 attempts/s at a refusing upstream (waits of 2.0–2.3 s), back ≤ 2.3 s after it accepts again */
export const DEFAULT_INITIAL_BACKOFF_MS = 250
export const DEFAULT_MAX_BACKOFF_MS = 2_300

export const DEFAULT_SSE_HEARTBEAT_MS = 15_000
export const DEFAULT_SSE_RETRY_MS = 2_000
export const DEFAULT_SSE_MAX_QUEUE_BYTES = 1_048_576
export const DEFAULT_SSE_WRITE_TIMEOUT_MS = 30_000
export const DEFAULT_SSE_MAX_CALLERS = 10_000

export const DEFAULT_HTTP_BODY_LIMIT_BYTES = 1_048_576
export const DEFAULT_HTTP_PUBLISH_TIMEOUT_MS = 10_000
export const DEFAULT_HTTP_CALL_TIMEOUT_MS = 10_000

export const DEFAULT_DYNAMIC_IDLE_TIMEOUT_MS = 300_000
export const DEFAULT_DYNAMIC_MAX_PER_TOKEN = 5
export const DEFAULT_DYNAMIC_MAX_TOTAL = 50

// reliable delivery (replay checkpoints, upstream tokens)
export const DEFAULT_DATA_DIR = './data'
export const DEFAULT_CHECKPOINT_INTERVAL_MS = 200
export const DEFAULT_REPLAY_START = -1
export const DEFAULT_REPLAY_FALLBACK = -2
export const DEFAULT_DEEP_RESUME_MAX_CLIENTS = 1
export const DEFAULT_DEEP_RESUME_TIMEOUT_MS = 120_000
export const DEFAULT_TOKEN_TIMEOUT_MS = 10_000
export const DEFAULT_TOKEN_MAX_REFUSALS = 3

// JWT callers, CORS
export const DEFAULT_JWT_CLOCK_TOLERANCE_SEC = 30
export const DEFAULT_JWKS_CACHE_MAX_AGE_SEC = 600
export const DEFAULT_CORS_MAX_AGE_SEC = 600

// cluster: replicas sharing one Redis (cluster-schema.ts)
export const DEFAULT_CLUSTER_LEASE_MS = 3_000
export const DEFAULT_CLUSTER_STREAM_MAX_LEN = 100_000
export const DEFAULT_CLUSTER_KEY_PREFIX = 'cometd-bridge'

/** Inclusive [min, max] of every integer option. */
export const LIMITS = {
  port: [0, 65_535],
  shutdownTimeoutMs: [0, 600_000],
  bufferSize: [0, 1_000_000],
  maxNetworkDelayMs: [100, 600_000],
  maxBatchBytes: [1_024, 67_108_864],
  connectionTimeoutMs: [0, 3_600_000],
  unsubscribeLingerMs: [0, 3_600_000],
  initialBackoffMs: [10, 60_000],
  maxBackoffMs: [100, 600_000],
  heartbeatMs: [1_000, 300_000],
  retryMs: [0, 3_600_000],
  maxQueueBytes: [1_024, 1_073_741_824],
  writeTimeoutMs: [100, 600_000],
  maxCallers: [1, 1_000_000],
  bodyLimitBytes: [1, 104_857_600],
  publishTimeoutMs: [100, 600_000],
  callTimeoutMs: [100, 600_000],
  idleTimeoutMs: [100, 604_800_000],
  maxPerToken: [1, 100_000],
  maxTotal: [1, 100_000],
  checkpointIntervalMs: [0, 60_000],
  deepResumeMaxClients: [0, 100],
  deepResumeTimeoutMs: [1_000, 3_600_000],
  tokenTimeoutMs: [100, 600_000],
  clockToleranceSec: [0, 3_600],
  jwksCacheMaxAgeSec: [1, 86_400],
  maxAgeSec: [0, 86_400],
  maxRefusals: [1, 100],
  // cluster
  leaseMs: [300, 600_000],
  streamMaxLen: [100, 100_000_000]
} as const satisfies Record<string, readonly [number, number]>
