/**
 * Schema pieces of caller auth (`auth`) and dynamic sessions (`dynamicSessions`). See docs/security.md
 * and docs/configuration.md. Messages never echo a value (it may be a token).
 */
import { createPublicKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { z } from 'zod'
import { channelKind, channelProblem } from '../client-core/index.js'
import * as D from './defaults.js'
import { bool, httpUrl, int } from './fields.js'




/** A channel pattern in an ACL: Bayeux grammar, `*`/`**` as the last segment, never /meta. `/**` = everything. */
const aclPattern = z.string({ error: 'a channel pattern must be a string' }).superRefine((p, ctx) => {
  const problem = channelProblem(p, true)
  if (problem !== null) ctx.addIssue({ code: 'custom', message: `invalid channel pattern: ${problem}` })
  else if (channelKind(p) === 'meta') ctx.addIssue({ code: 'custom', message: '/meta channels are internal to the Bayeux protocol' })
})

const SESSION_REF_RE = /^(\*|[A-Za-z0-9_-]{1,64})$/

export const MIN_TOKEN_LENGTH = 16

export const tokenSchema = z.strictObject({
  /** a label for logs (never the token) */
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'must match /^[A-Za-z0-9_.-]{1,64}$/' }).optional(),
  token: z.string({ error: 'must be a string' })
    .min(MIN_TOKEN_LENGTH, { error: `must be at least ${MIN_TOKEN_LENGTH} characters (use a random value, e.g. openssl rand -hex 32)` })
    .max(4096, { error: 'must be at most 4096 characters' })
    .refine((v) => /^[\x21-\x7e]+$/.test(v), { error: 'must be printable ASCII without spaces' })
    .optional(),
  sha256: z.string({ error: 'must be a string' })
    .regex(/^[0-9a-fA-F]{64}$/, { error: 'must be the hex SHA-256 of the token (64 hex digits)' })
    .optional(),
  sessions: z.array(z.string().regex(SESSION_REF_RE, { error: 'must be a session name or "*"' }), { error: 'must be a list of session names (or "*")' })
    .default(() => []),
  subscribe: z.array(aclPattern, { error: 'must be a list of channel patterns' }).default(() => []),
  publish: z.array(aclPattern, { error: 'must be a list of channel patterns' }).default(() => []),
  console: bool(false),
  metrics: bool(false),
  createSessions: bool(false),
  /** POST /admin/reload */
  admin: bool(false)
}, { error: 'a token entry must be a mapping with token or sha256' }).superRefine((entry, ctx) => {
  const n = (entry.token !== undefined ? 1 : 0) + (entry.sha256 !== undefined ? 1 : 0)
  if (n !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of token or sha256' })
})

export const JWT_HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const
export const JWT_ALGORITHMS = [...JWT_HMAC_ALGORITHMS, 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512',
  'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const
/** Key types a PEM public key may have (their algorithms: server/http/jwt.ts). */
const PUBLIC_KEY_TYPES = new Set(['rsa', 'rsa-pss', 'ec', 'ed25519', 'ed448'])
/** The curves of ES256, ES384, ES512 (OpenSSL names). */
const JWT_EC_CURVES = ['prime256v1', 'secp384r1', 'secp521r1']
/** RFC 7518 §3.2: an HMAC key at least as long as the hash (32 bytes for HS256). */
export const MIN_JWT_SECRET_BYTES = 32

const nonEmptyString = (what: string) => z.string({ error: `must be a string (${what})` })
  .refine((v) => v.trim() !== '', { error: `must not be empty (${what})` })

/** Readable, and a PEM public key (or certificate) of a supported type. The message never shows the file's text. */
function publicKeyFileProblem (file: string): string | null {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    return `cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`
  }
  try {
    const key = createPublicKey(text)
    if (!PUBLIC_KEY_TYPES.has(key.asymmetricKeyType ?? '')) return `unsupported key type ${String(key.asymmetricKeyType)} (RSA, RSA-PSS, EC, Ed25519 or Ed448)`
    const curve = key.asymmetricKeyDetails?.namedCurve
    if (key.asymmetricKeyType === 'ec' && !JWT_EC_CURVES.includes(String(curve))) return `unsupported EC curve ${String(curve)} (P-256, P-384 or P-521)`
    return null
  } catch {
    return 'is not a PEM public key or certificate (-----BEGIN PUBLIC KEY-----)'
  }
}

export const jwtSchema = z.strictObject({
  secret: z.string({ error: 'must be a string' })
    .refine((v) => Buffer.byteLength(v, 'utf8') >= MIN_JWT_SECRET_BYTES, { error: `must be at least ${MIN_JWT_SECRET_BYTES} bytes (HS256 needs a 256-bit key; e.g. openssl rand -hex 32)` })
    .optional(),
  publicKeyFile: nonEmptyString('a PEM file path').optional(),
  jwksUrl: z.string({ error: 'must be a URL' }).superRefine((value, ctx) => { httpUrl(value, ctx) }).optional(),
  algorithms: z.array(z.enum(JWT_ALGORITHMS, { error: `must be one of ${JWT_ALGORITHMS.join(', ')}` }), { error: 'must be a list of JWS algorithms' })
    .min(1, { error: 'must list at least one algorithm' }).optional(),
  issuer: nonEmptyString('the expected iss claim').optional(),
  audience: nonEmptyString('the expected aud claim').optional(),
  clockToleranceSec: int('clockToleranceSec', D.DEFAULT_JWT_CLOCK_TOLERANCE_SEC),
  jwksCacheMaxAgeSec: int('jwksCacheMaxAgeSec', D.DEFAULT_JWKS_CACHE_MAX_AGE_SEC),
  onExpiry: z.enum(['end', 'keep'], { error: 'must be end or keep' }).default('end'),
  defaultSessions: z.array(z.string().regex(SESSION_REF_RE, { error: 'must be a session name or "*"' }), { error: 'must be a list of session names (or "*")' })
    .default(() => [])
}, { error: 'must be a mapping with secret, publicKeyFile or jwksUrl' }).superRefine((jwt, ctx) => {
  const sources = (['secret', 'publicKeyFile', 'jwksUrl'] as const).filter((k) => jwt[k] !== undefined)
  if (sources.length !== 1) {
    ctx.addIssue({ code: 'custom', message: 'give exactly one of secret, publicKeyFile or jwksUrl' })
    return
  }
  const hmac = jwt.secret !== undefined
  const wrong = (jwt.algorithms ?? []).filter((a) => (JWT_HMAC_ALGORITHMS as readonly string[]).includes(a) !== hmac)
  if (wrong.length > 0) {
    ctx.addIssue({ code: 'custom', path: ['algorithms'], message: hmac ? `${wrong.join(', ')} need a public key (publicKeyFile or jwksUrl), not a secret` : `${wrong.join(', ')} need a secret` })
  }
  if (typeof jwt.publicKeyFile === 'string') {
    const problem = publicKeyFileProblem(jwt.publicKeyFile)
    if (problem !== null) ctx.addIssue({ code: 'custom', path: ['publicKeyFile'], message: problem })
  }
})

export const authSchema = z.strictObject({
  tokens: z.array(tokenSchema, { error: 'must be a list of token entries' }).default(() => []),
  /** `?access_token=` on SSE streams, for EventSource (which cannot set headers) */
  allowQueryToken: bool(false),
  /** serve every address without tokens (otherwise, with no tokens, loopback callers only) */
  allowUnauthenticated: bool(false),
  public: z.strictObject({
    metrics: bool(false),
    sessions: bool(false)
  }, { error: 'must be a mapping' }).prefault({}),
  /** callers presenting a signed JWT, beside the static tokens */
  jwt: jwtSchema.optional()
}, { error: 'must be a mapping' }).superRefine((auth, ctx) => {
  const names = new Set<string>()
  auth.tokens.forEach((entry, i) => {
    if (entry?.name === undefined) return
    if (names.has(entry.name)) ctx.addIssue({ code: 'custom', path: ['tokens', i, 'name'], message: 'duplicate token name' })
    names.add(entry.name)
  })
})

/** An allowUrls entry: http(s), a host, no credentials, no query or fragment. */
const allowUrl = z.string({ error: 'must be a URL string' }).superRefine((value, ctx) => {
  const url = httpUrl(value, ctx)
  if (url === null) return
  if (url.hostname === '') ctx.addIssue({ code: 'custom', message: 'Invalid URL: no host' })
  else if (url.username !== '' || url.password !== '') ctx.addIssue({ code: 'custom', message: 'must not contain credentials' })
  else if (url.search !== '' || url.hash !== '' || value.includes('?') || value.includes('#')) ctx.addIssue({ code: 'custom', message: 'must not have a query or fragment (it is a scheme + host + path prefix)' })
})

export const dynamicSessionsSchema = z.strictObject({
  enabled: bool(false),
  allowUrls: z.array(allowUrl, { error: 'must be a list of URL prefixes' }).default(() => []),
  idleTimeoutMs: int('idleTimeoutMs', D.DEFAULT_DYNAMIC_IDLE_TIMEOUT_MS),
  maxPerToken: int('maxPerToken', D.DEFAULT_DYNAMIC_MAX_PER_TOKEN),
  maxTotal: int('maxTotal', D.DEFAULT_DYNAMIC_MAX_TOTAL)
}, { error: 'must be a mapping' }).superRefine((d, ctx) => {
  if (d.enabled === true && Array.isArray(d.allowUrls) && d.allowUrls.length === 0) {
    ctx.addIssue({ code: 'custom', path: ['allowUrls'], message: 'dynamicSessions.enabled needs at least one allowed URL prefix' })
  }
})

/** Loopback names and addresses a listener may bind without tokens. */
export function isLoopbackHost (host: string): boolean {
  const h = host.trim().toLowerCase().replace(/^\[|\]$/g, '')
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4)
}

/** The start-up rule: no tokens + a non-loopback listener needs `auth.allowUnauthenticated: true`. */
export function unauthenticatedListenProblem (config: unknown): string | null {
  if (typeof config !== 'object' || config === null) return null
  const c = config as { listen?: { host?: unknown } | null, auth?: { tokens?: unknown, allowUnauthenticated?: unknown, jwt?: unknown } | null }
  const host = typeof c.listen === 'object' && c.listen !== null ? c.listen.host : undefined
  if (typeof host !== 'string') return null
  const auth = typeof c.auth === 'object' && c.auth !== null ? c.auth : {}
  const tokens = auth.tokens
  if ((Array.isArray(tokens) && tokens.length > 0) || auth.jwt !== undefined || auth.allowUnauthenticated === true || isLoopbackHost(host)) return null
  return 'refusing to listen on a non-loopback address without auth.tokens or auth.jwt: configure tokens (or COMETD_BRIDGE_TOKEN), or set auth.allowUnauthenticated: true to serve everyone'
}
