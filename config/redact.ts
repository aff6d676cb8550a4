/**
 * The one redaction of the project: what counts as a secret, and how anything that may hold one is shown. Used by
 * `--print-config` and `--check-config`, the daemon's log lines, and every view and error the HTTP API answers
 * (docs/security.md lists the rules). It has no dependency, so the daemon's logger can load it.
 *
 * - Keys named like a secret (token, secret, password, api key, credential, private key, sha256) hide their value,
 *   except `tokenFile` and `tokenUrl` (where a token comes from, shown through the URL rule).
 * - Header names like Authorization, Cookie, X-Api-Key, anything with auth/token/secret/session/signature.
 * - `ext.auth` of a Bayeux message, whatever it holds.
 * - URLs (anywhere in a value or a message): the user info, every query value and the fragment are hidden — the
 *   bridge cannot know which parameter of another server's URL is a secret.
 * - Request targets of the bridge's own callers: the values of secret-named query parameters, the caller token
 *   parameter included, in every spelling the server accepts (names are compared after form decoding, so
 *   `?access_tok%65n=` is the token parameter for the server and for the logs alike).
 */
import type { Config } from './schema.js'
import { isPlainObject, setOwn } from './plain.js'

export const REDACTED = '[redacted]'

/** The query parameter that carries a caller's token (SSE streams only, with `auth.allowQueryToken`). */
export const QUERY_TOKEN_PARAM = 'access_token'

/** Keys anywhere in the config whose value is a secret. */
const SECRET_KEY_RE = /token|secret|passw(or)?d|passphrase|api[-_]?key|credential|private[-_]?key|sha256/i
/** Header names whose value is a secret (Authorization, Proxy-Authorization, Cookie, X-Auth-Token, X-Api-Key…). */
const SECRET_HEADER_RE = /auth|cookie|token|secret|passw|api[-_]?key|credential|session|signature/i

/** Secret-looking names whose value is not a secret: where a token comes from (sessions.*.auth). */
const NOT_SECRET_KEYS = new Set(['tokenFile', 'tokenUrl'])

/** An absolute URL inside a text (a message, a log field). */
const URL_IN_TEXT_RE = /[A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s"'<>`]+/g

/** Log objects are walked this deep at most (they may be cyclic). */
const MAX_DEPTH = 8

export function isSecretKey (key: string): boolean {
  return SECRET_KEY_RE.test(key) && !NOT_SECRET_KEYS.has(key)
}

export function isSecretHeader (name: string): boolean {
  return SECRET_HEADER_RE.test(name) || SECRET_KEY_RE.test(name)
}

/** A query parameter name as the server reads it: form decoding (`+` is a space, percent-escapes decoded). */
export function decodeParamName (raw: string): string {
  return new URLSearchParams(`${raw}=`).keys().next().value ?? ''
}

/** Is this (raw, as written) query parameter name the caller token parameter? */
export function isTokenParam (raw: string): boolean {
  return decodeParamName(raw) === QUERY_TOKEN_PARAM
}

/**
 * Is the value of this raw query parameter name hidden in logs: the token parameter, or a secret-looking name —
 * also once decoded again (a doubly encoded name reads as a secret to some proxy or server behind).
 */
export function isSecretParam (raw: string): boolean {
  let name = raw
  for (let i = 0; i < 3; i++) {
    const decoded = decodeParamName(name)
    if (decoded === QUERY_TOKEN_PARAM || SECRET_KEY_RE.test(decoded)) return true
    if (decoded === name) return false
    name = decoded
  }
  return false
}

/** The values of the token parameter in a raw query string (`a=1&access_token=…`, without `?`). */
export function queryTokens (query: string): string[] {
  const out: string[] = []
  for (const [name, value] of new URLSearchParams(query)) if (name === QUERY_TOKEN_PARAM) out.push(value)
  return out
}

/** `/x?access_tok%65n=abc&channel=/a` → `/x?access_tok%65n=[redacted]&channel=/a` (names kept as written). */
export function redactRequestUrl (target: string): string {
  const q = target.indexOf('?')
  if (q < 0) return target
  const hash = target.indexOf('#', q)
  const query = target.slice(q + 1, hash < 0 ? undefined : hash)
  const parts = query.split('&').map((part) => {
    const eq = part.indexOf('=')
    return eq >= 0 && isSecretParam(part.slice(0, eq)) ? `${part.slice(0, eq + 1)}${REDACTED}` : part
  })
  return `${target.slice(0, q + 1)}${parts.join('&')}${hash < 0 ? '' : `#${REDACTED}`}`
}

/** `https://user:pw@h:8443/cometd?access_token=abc&x=1#f` → `https://[redacted]@h:8443/cometd?access_token=[redacted]&x=[redacted]#[redacted]`. */
export function redactUrl (value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return '(invalid URL)'
  }
  const auth = url.username !== '' || url.password !== '' ? `${REDACTED}@` : ''
  const search = url.search === ''
    ? ''
    : '?' + [...url.searchParams.keys()].map((k) => `${encodeURIComponent(k)}=${REDACTED}`).join('&')
  const hash = url.hash === '' ? '' : `#${REDACTED}`
  return `${url.protocol}//${auth}${url.host}${url.pathname}${search}${hash}`
}

/** A URL with user info, a query or a fragment (or one that does not parse): what redactUrl would change. */
function mayHoldSecret (value: string): boolean {
  try {
    const url = new URL(value)
    return url.username !== '' || url.password !== '' || url.search !== '' || url.hash !== ''
  } catch {
    return true
  }
}

/** Every absolute URL in a text (an error message) redacted as by redactUrl; the rest unchanged. */
export function redactText (text: string): string {
  return text.replace(URL_IN_TEXT_RE, (match) => {
    if (!mayHoldSecret(match)) return match // shown as written (no normalisation of a URL with nothing to hide)
    const shown = redactUrl(match)
    return shown === '(invalid URL)' ? `${match.slice(0, match.indexOf('://') + 3)}${REDACTED}` : shown
  })
}

function isSecretField (key: string, parent: string | undefined): boolean {
  if (parent === 'headers') return isSecretHeader(key)
  return isSecretKey(key) || (parent === 'ext' && key === 'auth')
}

/**
 * A copy of plain data (a config, the fields of a log line) that is safe to show. Strings have their URLs
 * redacted; a secret field shows `[redacted]` instead of its text (or number: limits such as `maxPerToken`
 * stay); lists and mappings under a secret-named key are walked (`auth.tokens`), except `ext.auth`, hidden whole.
 * Keys directly under `sessions` are session names, never secrets. Objects that are not plain data (errors,
 * requests) are left to their serializers.
 */
export function redactValue (value: unknown, path: readonly string[] = []): unknown {
  if (typeof value === 'string') return redactText(value)
  if (path.length >= MAX_DEPTH) return value
  if (Array.isArray(value)) return value.map((item) => redactValue(item, path))
  if (!isPlainObject(value)) return value
  const parent = path[path.length - 1]
  const names = path.length === 1 && parent === 'sessions'
  const out: Record<string, unknown> = {}
  for (const [key, child] of Object.entries(value)) {
    const secret = !names && isSecretField(key, parent)
    const hidden = secret && (typeof child === 'string' || (typeof child === 'number' && !/^(max|min)[A-Z]/.test(key)) ||
      (key === 'auth' && parent === 'ext'))
    setOwn(out, key, hidden ? REDACTED : redactValue(child, [...path, key]))
  }
  return out
}

export function redactConfig (config: Config): unknown {
  return redactValue(config)
}
