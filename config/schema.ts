/**
 * The one zod schema for everything the daemon reads (docs/configuration.md documents every key).
 * Every object is strict (unknown keys are errors) and every field has a default, so `{}` is a valid config.
 * Messages never echo the offending value: it may be a secret.
 */
import { z } from 'zod'
import { channelProblem, channelKind } from '../client-core/index.js'
import * as D from './defaults.js'
import { bool, int, optionalInt } from './fields.js'
import { isPlainObject } from './plain.js'
import { authSchema, dynamicSessionsSchema, unauthenticatedListenProblem } from './auth-schema.js'
import { reliableSessionKeys, reliableTopKeys, sessionAuthProblem } from './reliable-schema.js'
import { backoffSessionKeys } from './backoff-schema.js'
import { clusterTopKeys } from './cluster-schema.js'

export { upstreamAuthSchema } from './reliable-schema.js'




/** Also checked when some items are invalid, so that every problem is reported at once. */
function hasDuplicates (values: unknown): boolean {
  if (!Array.isArray(values)) return false
  const strings = values.filter((v) => typeof v === 'string')
  return new Set(strings).size !== strings.length
}
const ALWAYS = { when: () => true }

const httpUrl = z.string({
  error: (iss) => (iss.input === undefined
    ? 'required: the upstream CometD URL, e.g. http://host:8080/cometd'
    : 'must be a string')
}).superRefine((value, ctx) => {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    ctx.addIssue({ code: 'custom', message: 'Invalid URL' })
    return
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', message: `must be an http:// or https:// URL (got ${url.protocol}//)` })
  } else if (url.hostname === '') {
    ctx.addIssue({ code: 'custom', message: 'Invalid URL: no host' })
  }
})

/** HTTP token (RFC 9110 §5.6.2). */
export const HEADER_NAME_RE = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
/** Headers the transports own (lower case); setting them would break the upstream connection. */
export const TRANSPORT_HEADERS: ReadonlySet<string> = new Set(['connection', 'content-length', 'host', 'keep-alive', 'te', 'trailer',
  'transfer-encoding', 'upgrade', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions'])

const headerName = z.string().superRefine((name, ctx) => {
  if (!HEADER_NAME_RE.test(name)) ctx.addIssue({ code: 'custom', message: 'is not a valid HTTP header name' })
  else if (TRANSPORT_HEADERS.has(name.toLowerCase())) ctx.addIssue({ code: 'custom', message: 'is set by the transport and cannot be configured' })
})

const headerValue = z.string({ error: 'a header value must be a string (quote numbers in YAML)' })
  // eslint-disable-next-line no-control-regex
  .refine((v) => !/[\r\n\0]/.test(v), { error: 'a header value must not contain CR, LF or NUL' })

const headers = z.record(headerName, headerValue, { error: 'must be a mapping of header names to string values' })
  .superRefine((map, ctx) => {
    if (typeof map !== 'object' || map === null) return
    const seen = new Map<string, string>()
    for (const name of Object.keys(map)) {
      const other = seen.get(name.toLowerCase())
      if (other !== undefined) ctx.addIssue({ code: 'custom', path: [name], message: `duplicate header (also set as "${other}"; names are case-insensitive)` })
      else seen.set(name.toLowerCase(), name)
    }
  }, ALWAYS)

/** A channel the bridge subscribes to: Bayeux grammar, wildcards allowed, no /meta or /service. */
const channel = z.string({ error: 'a channel name must be a string' }).superRefine((name, ctx) => {
  const problem = channelProblem(name, true)
  if (problem !== null) ctx.addIssue({ code: 'custom', message: `invalid channel: ${problem}` })
  else if (channelKind(name) !== 'broadcast') ctx.addIssue({ code: 'custom', message: `cannot subscribe to a /${channelKind(name)} channel` })
})

const PEM_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/

export const tlsSchema = z.strictObject({
  /** Verify the upstream certificate. */
  rejectUnauthorized: bool(true),
  /** Extra CA certificate(s), PEM text (not a file name). */
  ca: z.string({ error: 'must be a string of PEM certificates' })
    .regex(PEM_RE, { error: 'must be PEM text containing -----BEGIN CERTIFICATE-----; pass a file\'s contents, e.g. ca: "${CA_PEM}"' })
    .optional()
}, { error: 'must be a mapping' })

/** `env` (HTTPS_PROXY, HTTP_PROXY, NO_PROXY), `none`, or the proxy's http(s) URL (credentials allowed, redacted). */
const proxySetting = z.string({ error: 'must be a proxy URL, env or none' }).superRefine((value, ctx) => {
  if (value === 'env' || value === 'none') return
  let url: URL | null = null
  try { url = new URL(value) } catch {}
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    ctx.addIssue({ code: 'custom', message: 'must be env, none, or an http:// or https:// proxy URL such as http://proxy.internal:3128' })
  } else if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
    ctx.addIssue({ code: 'custom', message: 'a proxy URL has no path, query or fragment' })
  }
})

export const sessionSchema = z.strictObject({
  url: httpUrl,
  connectionTypes: z.array(
    z.enum(D.CONNECTION_TYPES, { error: 'must be "websocket" or "long-polling"' }),
    { error: 'must be a list of connection types' }
  ).min(1, { error: 'must list at least one connection type' })
    .refine((v) => !hasDuplicates(v), { error: 'must not repeat a connection type', ...ALWAYS })
    .default(() => [...D.DEFAULT_CONNECTION_TYPES]),
  headers: headers.default(() => ({})),
  subscribe: z.array(channel, { error: 'must be a list of channel names' })
    .refine((v) => !hasDuplicates(v), { error: 'must not repeat a channel', ...ALWAYS })
    .default(() => []),
  bufferSize: int('bufferSize', D.DEFAULT_BUFFER_SIZE),
  maxNetworkDelayMs: int('maxNetworkDelayMs', D.DEFAULT_MAX_NETWORK_DELAY_MS),
  maxBatchBytes: optionalInt('maxBatchBytes'),
  connectionTimeoutMs: int('connectionTimeoutMs', D.DEFAULT_CONNECTION_TIMEOUT_MS),
  unsubscribeLingerMs: int('unsubscribeLingerMs', D.DEFAULT_UNSUBSCRIBE_LINGER_MS),
  tls: tlsSchema.prefault({}),
  proxy: proxySetting.optional(),
  ...reliableSessionKeys,
  ...backoffSessionKeys
}, { error: (iss) => (iss.code === 'invalid_type' ? 'a session must be a mapping with at least a url' : undefined) }).superRefine((session, ctx) => {
  const problem = sessionAuthProblem(session)
  if (problem !== null) ctx.addIssue({ code: 'custom', path: ['headers'], message: problem })
})

const sessionName = z.string()
  .regex(D.SESSION_NAME_RE, { error: 'a session name must match /^[A-Za-z0-9_-]{1,64}$/' })

const listenSchema = z.strictObject({
  host: z.string({ error: 'must be a hostname or IP address' })
    .regex(/^[^\s/]{1,253}$/, { error: 'must be a hostname or IP address' })
    .default(D.DEFAULT_HOST),
  port: int('port', D.DEFAULT_PORT)
}, { error: 'must be a mapping' })

const sseSchema = z.strictObject({
  heartbeatMs: int('heartbeatMs', D.DEFAULT_SSE_HEARTBEAT_MS),
  retryMs: int('retryMs', D.DEFAULT_SSE_RETRY_MS),
  maxQueueBytes: int('maxQueueBytes', D.DEFAULT_SSE_MAX_QUEUE_BYTES),
  writeTimeoutMs: int('writeTimeoutMs', D.DEFAULT_SSE_WRITE_TIMEOUT_MS),
  maxCallers: int('maxCallers', D.DEFAULT_SSE_MAX_CALLERS)
}, { error: 'must be a mapping' })

/** A page origin as browsers send it in `Origin`: scheme, host, optional port, nothing else. */
const corsOrigin = z.string({ error: 'an origin must be a string' }).superRefine((value, ctx) => {
  if (value === '*') return
  let url: URL | null = null
  try { url = new URL(value) } catch {}
  const originOnly = url !== null && url.pathname === '/' && url.search === '' && url.hash === '' && url.username === '' &&
    url.password === '' && !/[?#]/.test(value)
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '' || !originOnly) {
    ctx.addIssue({ code: 'custom', message: 'must be an origin such as https://app.example or http://localhost:3000 (scheme, host and port only), or "*"' })
  }
}).transform((value) => (value === '*' ? value : new URL(value).origin))

const corsSchema = z.strictObject({
  origins: z.array(corsOrigin, { error: 'must be a list of origins' }).default(() => []),
  credentials: bool(false),
  maxAgeSec: int('maxAgeSec', D.DEFAULT_CORS_MAX_AGE_SEC)
}, { error: 'must be a mapping, e.g. { origins: ["https://app.example"] }' }).superRefine((cors, ctx) => {
  if (cors.credentials === true && Array.isArray(cors.origins) && cors.origins.includes('*')) {
    ctx.addIssue({ code: 'custom', path: ['origins'], message: 'cannot be "*" with credentials: true (browsers refuse it): list the origins' })
  }
})

const httpSchema = z.strictObject({
  bodyLimitBytes: int('bodyLimitBytes', D.DEFAULT_HTTP_BODY_LIMIT_BYTES),
  publishTimeoutMs: int('publishTimeoutMs', D.DEFAULT_HTTP_PUBLISH_TIMEOUT_MS),
  callTimeoutMs: int('callTimeoutMs', D.DEFAULT_HTTP_CALL_TIMEOUT_MS),
  cors: corsSchema.optional()
}, { error: 'must be a mapping' })

/** Without tokens the bridge refuses every cross-origin request (auth.ts): CORS there would be a promise not kept. */
function corsWithoutAuthProblem (config: unknown): string | null {
  const c = isPlainObject(config) ? config : {}
  const http = isPlainObject(c.http) ? c.http : {}
  const cors = isPlainObject(http.cors) ? http.cors : {}
  if (!Array.isArray(cors.origins) || cors.origins.length === 0) return null
  const auth = isPlainObject(c.auth) ? c.auth : {}
  if ((Array.isArray(auth.tokens) && auth.tokens.length > 0) || auth.jwt !== undefined || auth.allowUnauthenticated === true) return null
  return 'CORS needs callers with tokens (auth.tokens or auth.jwt): without them the bridge serves loopback pages of its own origin only'
}

export const configSchema = z.strictObject({
  listen: listenSchema.prefault({}),
  logLevel: z.enum(D.LOG_LEVELS, { error: `must be one of ${D.LOG_LEVELS.join(', ')}` }).default(D.DEFAULT_LOG_LEVEL),
  demo: z.union([z.literal('auto'), z.boolean()], { error: 'must be auto, true or false' })
    .default(D.DEFAULT_DEMO),
  sessions: z.record(sessionName, sessionSchema, { error: 'must be a mapping of session names to sessions' })
    .default(() => ({})),
  sse: sseSchema.prefault({}),
  http: httpSchema.prefault({}),
  shutdownTimeoutMs: int('shutdownTimeoutMs', D.DEFAULT_SHUTDOWN_TIMEOUT_MS),
  auth: authSchema.prefault({}),
  dynamicSessions: dynamicSessionsSchema.prefault({}),
  ...reliableTopKeys,
  ...clusterTopKeys
}, { error: 'the configuration must be a mapping (an object)' }).superRefine((config, ctx) => {
  const problem = unauthenticatedListenProblem(config)
  if (problem !== null) ctx.addIssue({ code: 'custom', path: ['listen', 'host'], message: problem })
  const cors = corsWithoutAuthProblem(config)
  if (cors !== null) ctx.addIssue({ code: 'custom', path: ['http', 'cors', 'origins'], message: cors })
}, ALWAYS)

/** The validated, defaulted configuration the daemon runs with. */
export type Config = z.output<typeof configSchema>
/** What a file may contain (every key optional). */
export type ConfigInput = z.input<typeof configSchema>
export type SessionConfig = z.output<typeof sessionSchema>
/** What a file may contain for one session. */
export type SessionConfigInput = z.input<typeof sessionSchema>
export type TlsConfig = z.output<typeof tlsSchema>
export type ListenConfig = Config['listen']
export type SseConfig = Config['sse']
export type HttpConfig = Config['http']
export type LogLevel = Config['logLevel']
export type DemoMode = Config['demo']
export type AuthConfig = Config['auth']
export type TokenConfig = AuthConfig['tokens'][number]
export type DynamicSessionsConfig = Config['dynamicSessions']
export type ClusterConfig = NonNullable<Config['cluster']>
export type ConfigConnectionType = SessionConfig['connectionTypes'][number]
export type ReplayConfig = SessionConfig['replay']
export type UpstreamAuthConfig = NonNullable<SessionConfig['auth']>
/** Callers with a signed JWT (absent = none) */
export type JwtConfig = NonNullable<AuthConfig['jwt']>
/** CORS for pages of other origins (absent = no CORS headers) */
export type CorsConfig = NonNullable<HttpConfig['cors']>

/** A session to `url` with every other key at its default (the embedded demo, dynamic sessions). */
export function defaultSession (url: string): SessionConfig {
  return sessionSchema.parse({ url })
}

/** `demo: auto` means the embedded demo upstream runs only when no session is configured, dynamic ones included. */
export function isDemoEnabled (config: { demo: Config['demo'], sessions: object, dynamicSessions?: { enabled: boolean } | undefined }): boolean {
  if (config.demo !== 'auto') return config.demo
  return Object.keys(config.sessions).length === 0 && config.dynamicSessions?.enabled !== true
}
