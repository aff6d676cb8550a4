/**
 * Schema pieces of caller auth (`auth`) and dynamic sessions (`dynamicSessions`). See docs/security.md
 * and docs/configuration.md. Messages never echo a value (it may be a token).
 */
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
  createSessions: bool(false)
}, { error: 'a token entry must be a mapping with token or sha256' }).superRefine((entry, ctx) => {
  const n = (entry.token !== undefined ? 1 : 0) + (entry.sha256 !== undefined ? 1 : 0)
  if (n !== 1) ctx.addIssue({ code: 'custom', message: 'give exactly one of token or sha256' })
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
  }, { error: 'must be a mapping' }).prefault({})
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
  const c = config as { listen?: { host?: unknown } | null, auth?: { tokens?: unknown, allowUnauthenticated?: unknown } | null }
  const host = typeof c.listen === 'object' && c.listen !== null ? c.listen.host : undefined
  if (typeof host !== 'string') return null
  const auth = typeof c.auth === 'object' && c.auth !== null ? c.auth : {}
  const tokens = auth.tokens
  if ((Array.isArray(tokens) && tokens.length > 0) || auth.allowUnauthenticated === true || isLoopbackHost(host)) return null
  return 'refusing to listen on a non-loopback address without auth.tokens: configure tokens (or COMETD_BRIDGE_TOKEN), or set auth.allowUnauthenticated: true to serve everyone'
}
