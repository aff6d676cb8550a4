/**
 * Environment variables → a partial config ("overlay"). Every variable is in ENV_OPTIONS (the docs and
 * --help list them from there). Empty values count as unset. The session variables all target the session
 * named `default`, which COMETD_BRIDGE_URL alone defines (sidecar use).
 */
import { closest, formatPath, type ConfigIssue } from './issues.js'
import { jsonErrorPlace } from './json-error.js'
import { DEFAULT_SESSION_NAME } from './defaults.js'
import { isPlainObject, setOwn, type Env } from './vars.js'

export const ENV_PREFIX = 'COMETD_BRIDGE_'
/** Names the config file (like --config, which wins). */
export const CONFIG_ENV = 'COMETD_BRIDGE_CONFIG'
/**
 * Names a file of defaults that the config file overrides (the container image sets it, so that a mounted config
 * file wins over what the image chose for listen, dataDir and shutdownTimeoutMs).
 */
export const DEFAULTS_ENV = 'COMETD_BRIDGE_DEFAULTS'

/** How the text of a variable becomes a value; the schema then validates it as if it came from a file. */
type Kind = 'string' | 'int' | 'bool' | 'demo' | 'logLevel' | 'list' | 'headers' | 'token'

export interface EnvOption {
  readonly name: string
  readonly path: readonly string[]
  readonly kind: Kind
}

const S = ['sessions', DEFAULT_SESSION_NAME] as const

export const ENV_OPTIONS: readonly EnvOption[] = [
  { name: 'COMETD_BRIDGE_HOST', path: ['listen', 'host'], kind: 'string' },
  { name: 'COMETD_BRIDGE_PORT', path: ['listen', 'port'], kind: 'int' },
  { name: 'COMETD_BRIDGE_LOG_LEVEL', path: ['logLevel'], kind: 'logLevel' },
  { name: 'COMETD_BRIDGE_DEMO', path: ['demo'], kind: 'demo' },
  { name: 'COMETD_BRIDGE_SHUTDOWN_TIMEOUT_MS', path: ['shutdownTimeoutMs'], kind: 'int' },
  { name: 'COMETD_BRIDGE_URL', path: [...S, 'url'], kind: 'string' },
  { name: 'COMETD_BRIDGE_CONNECTION_TYPES', path: [...S, 'connectionTypes'], kind: 'list' },
  { name: 'COMETD_BRIDGE_SUBSCRIBE', path: [...S, 'subscribe'], kind: 'list' },
  { name: 'COMETD_BRIDGE_HEADERS', path: [...S, 'headers'], kind: 'headers' },
  { name: 'COMETD_BRIDGE_BUFFER_SIZE', path: [...S, 'bufferSize'], kind: 'int' },
  { name: 'COMETD_BRIDGE_MAX_NETWORK_DELAY_MS', path: [...S, 'maxNetworkDelayMs'], kind: 'int' },
  { name: 'COMETD_BRIDGE_MAX_BATCH_BYTES', path: [...S, 'maxBatchBytes'], kind: 'int' },
  { name: 'COMETD_BRIDGE_CONNECTION_TIMEOUT_MS', path: [...S, 'connectionTimeoutMs'], kind: 'int' },
  { name: 'COMETD_BRIDGE_UNSUBSCRIBE_LINGER_MS', path: [...S, 'unsubscribeLingerMs'], kind: 'int' },
  { name: 'COMETD_BRIDGE_TLS_REJECT_UNAUTHORIZED', path: [...S, 'tls', 'rejectUnauthorized'], kind: 'bool' },
  { name: 'COMETD_BRIDGE_TLS_CA', path: [...S, 'tls', 'ca'], kind: 'string' },
  { name: 'COMETD_BRIDGE_SSE_HEARTBEAT_MS', path: ['sse', 'heartbeatMs'], kind: 'int' },
  { name: 'COMETD_BRIDGE_SSE_RETRY_MS', path: ['sse', 'retryMs'], kind: 'int' },
  { name: 'COMETD_BRIDGE_SSE_MAX_QUEUE_BYTES', path: ['sse', 'maxQueueBytes'], kind: 'int' },
  { name: 'COMETD_BRIDGE_SSE_WRITE_TIMEOUT_MS', path: ['sse', 'writeTimeoutMs'], kind: 'int' },
  { name: 'COMETD_BRIDGE_SSE_MAX_CALLERS', path: ['sse', 'maxCallers'], kind: 'int' },
  { name: 'COMETD_BRIDGE_HTTP_BODY_LIMIT_BYTES', path: ['http', 'bodyLimitBytes'], kind: 'int' },
  { name: 'COMETD_BRIDGE_HTTP_PUBLISH_TIMEOUT_MS', path: ['http', 'publishTimeoutMs'], kind: 'int' },
  { name: 'COMETD_BRIDGE_HTTP_CALL_TIMEOUT_MS', path: ['http', 'callTimeoutMs'], kind: 'int' },
  { name: 'COMETD_BRIDGE_TOKEN', path: ['auth', 'tokens'], kind: 'token' },
  { name: 'COMETD_BRIDGE_ALLOW_QUERY_TOKEN', path: ['auth', 'allowQueryToken'], kind: 'bool' },
  { name: 'COMETD_BRIDGE_ALLOW_UNAUTHENTICATED', path: ['auth', 'allowUnauthenticated'], kind: 'bool' },
  // reliable delivery
  { name: 'COMETD_BRIDGE_DATA_DIR', path: ['dataDir'], kind: 'string' },
  { name: 'COMETD_BRIDGE_CHECKPOINT_INTERVAL_MS', path: ['checkpointIntervalMs'], kind: 'int' },
  { name: 'COMETD_BRIDGE_ACK', path: [...S, 'ack'], kind: 'bool' },
  { name: 'COMETD_BRIDGE_REPLAY', path: [...S, 'replay', 'enabled'], kind: 'bool' },
  { name: 'COMETD_BRIDGE_REPLAY_START', path: [...S, 'replay', 'start'], kind: 'int' },
  { name: 'COMETD_BRIDGE_REPLAY_FALLBACK', path: [...S, 'replay', 'fallback'], kind: 'int' },
  { name: 'COMETD_BRIDGE_UPSTREAM_TOKEN_FILE', path: [...S, 'auth', 'tokenFile'], kind: 'string' },
  { name: 'COMETD_BRIDGE_UPSTREAM_TOKEN_COMMAND', path: [...S, 'auth', 'tokenCommand'], kind: 'string' },
  // cluster: replicas sharing one Redis
  { name: 'COMETD_BRIDGE_REDIS_URL', path: ['cluster', 'redis'], kind: 'string' },
  { name: 'COMETD_BRIDGE_REPLICA_ID', path: ['cluster', 'replicaId'], kind: 'string' }
]

/** A partial config from one source, with where each value came from. */
export interface Overlay {
  value: Record<string, unknown>
  issues: ConfigIssue[]
  /** Formatted path → source label (`env COMETD_BRIDGE_PORT`, `--port`). */
  origins: Map<string, string>
}

export function emptyOverlay (): Overlay {
  return { value: {}, issues: [], origins: new Map() }
}

/** Sets `path` in the overlay, creating objects on the way, and records the source. */
export function setPath (overlay: Overlay, path: readonly string[], value: unknown, source: string): void {
  let node = overlay.value
  for (const key of path.slice(0, -1)) {
    const next = node[key]
    if (isPlainObject(next)) node = next
    else { const created = {}; setOwn(node, key, created); node = created }
  }
  setOwn(node, path[path.length - 1]!, value)
  overlay.origins.set(formatPath(path), source)
}

const TRUE = new Set(['true', '1', 'yes', 'on'])
const FALSE = new Set(['false', '0', 'no', 'off'])

/** Text → value for `kind`; unparsable text is passed through so that the schema reports it at the field. */
export function convert (kind: Kind, text: string): { value: unknown } | { error: string } {
  const trimmed = text.trim()
  switch (kind) {
    case 'string': return { value: trimmed }
    case 'int': return { value: trimmed }
    case 'logLevel': return { value: trimmed.toLowerCase() }
    case 'bool':
    case 'demo': {
      const lower = trimmed.toLowerCase()
      if (TRUE.has(lower)) return { value: true }
      if (FALSE.has(lower)) return { value: false }
      return { value: kind === 'demo' && lower === 'auto' ? 'auto' : trimmed }
    }
    case 'list': return { value: trimmed.split(',').map((s) => s.trim()).filter((s) => s !== '') }
    // one token with every right (the sidecar way); replaces auth.tokens like any list
    case 'token': return { value: [{ name: 'env', token: trimmed, sessions: ['*'], subscribe: ['/**'], publish: ['/**'], console: true, metrics: true, createSessions: true }] }
    case 'headers': {
      let parsed: unknown
      try {
        parsed = JSON.parse(trimmed)
      } catch {
        return { error: `invalid JSON ${jsonErrorPlace(trimmed)}` }
      }
      if (!isPlainObject(parsed)) return { error: 'must be a JSON object of header names to string values, e.g. {"Authorization":"Bearer …"}' }
      return { value: parsed }
    }
  }
}

/** Kubernetes injects `<SERVICE>_PORT=tcp://10.0.0.1:8080` (and `_SERVICE_HOST`, `_PORT_8080_TCP…`) for a Service named cometd-bridge. */
function isServiceLink (name: string, value: string): boolean {
  return (name === 'COMETD_BRIDGE_PORT' && /^(tcp|udp|sctp):\/\//i.test(value.trim())) ||
    /^COMETD_BRIDGE_(SERVICE_(HOST|PORT)|PORT_\d+_(TCP|UDP|SCTP))/.test(name)
}

export function envOverlay (env: Env): Overlay {
  const overlay = emptyOverlay()
  for (const option of ENV_OPTIONS) {
    const text = env[option.name]
    if (text === undefined || text.trim() === '' || isServiceLink(option.name, text)) continue
    const source = `env ${option.name}`
    const result = convert(option.kind, text)
    if ('error' in result) overlay.issues.push({ path: formatPath(option.path), message: `${result.error} (from ${source})` })
    else {
      setPath(overlay, option.path, result.value, source)
      if (isPlainObject(result.value)) for (const key of Object.keys(result.value)) overlay.origins.set(formatPath([...option.path, key]), source)
    }
  }
  // A misspelt variable is an error; other unknown COMETD_BRIDGE_* names (service links, tooling) are ignored.
  const known = [CONFIG_ENV, DEFAULTS_ENV, ...ENV_OPTIONS.map((o) => o.name)].map((n) => n.slice(ENV_PREFIX.length))
  for (const name of Object.keys(env)) {
    if (!name.startsWith(ENV_PREFIX) || isServiceLink(name, '')) continue
    const suffix = name.slice(ENV_PREFIX.length)
    if (known.includes(suffix)) continue
    const near = closest(suffix, known)
    if (near !== undefined) overlay.issues.push({ path: name, message: `unknown environment variable (did you mean ${ENV_PREFIX}${near}?)` })
  }
  return overlay
}
