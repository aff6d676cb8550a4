/** Configuration of the daemon: one zod schema, sources merged defaults < file < env < flags. See docs/configuration.md. */
export {
  loadConfig,
  parseConfigObject,
  defaultConfig,
  type LoadOptions,
  type LoadResult,
  type LoadAction,
  type ParseResult
} from './load.js'
export {
  configSchema,
  sessionSchema,
  upstreamAuthSchema,
  tlsSchema,
  isDemoEnabled,
  defaultSession,
  HEADER_NAME_RE,
  TRANSPORT_HEADERS,
  type Config,
  type ConfigInput,
  type SessionConfig,
  type SessionConfigInput,
  type TlsConfig,
  type ListenConfig,
  type SseConfig,
  type HttpConfig,
  type LogLevel,
  type DemoMode,
  type ConfigConnectionType,
  type AuthConfig,
  type TokenConfig,
  type DynamicSessionsConfig,
  type ReplayConfig,
  type UpstreamAuthConfig,
  type JwtConfig,
  type CorsConfig,
  type ClusterConfig
} from './schema.js'
export { formatIssues, formatPath, type ConfigIssue } from './issues.js'
export { redactConfig, redactUrl, REDACTED } from './redact.js'
export { substituteVars, type Env } from './vars.js'
export { ENV_OPTIONS, CONFIG_ENV, type EnvOption } from './env.js'
export { usage } from './flags.js'
export {
  CONFIG_EXIT_CODE,
  DEFAULT_SESSION_NAME,
  LOG_LEVELS,
  CONNECTION_TYPES,
  SESSION_NAME_RE,
  LIMITS
} from './defaults.js'
export { packageVersion } from './version.js'
