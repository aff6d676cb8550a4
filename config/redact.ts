/**
 * A copy of the config that is safe to print or log: secret header values, secret-named keys, URL passwords
 * and secret-named URL query parameters become "[redacted]". Session names are never treated as secrets.
 */
import type { Config } from './schema.js'
import { isPlainObject, setOwn } from './vars.js'

export const REDACTED = '[redacted]'

/** Keys anywhere in the config whose value is a secret. */
const SECRET_KEY_RE = /token|secret|passw(or)?d|passphrase|api[-_]?key|credential|private[-_]?key|sha256/i
/** Header names whose value is a secret (Authorization, Proxy-Authorization, Cookie, X-Auth-Token, X-Api-Key…). */
const SECRET_HEADER_RE = /auth|cookie|token|secret|passw|api[-_]?key|credential|session|signature/i

/** Secret-looking names whose value is not a secret: where a token comes from (sessions.*.auth). */
const NOT_SECRET_KEYS = new Set(['tokenFile', 'tokenUrl'])

export function isSecretKey (key: string): boolean {
  return SECRET_KEY_RE.test(key) && !NOT_SECRET_KEYS.has(key)
}

export function isSecretHeader (name: string): boolean {
  return SECRET_HEADER_RE.test(name) || SECRET_KEY_RE.test(name)
}

/** `https://user:pw@host/x?access_token=abc&a=1` → `https://user:[redacted]@host/x?access_token=[redacted]&a=1`. */
export function redactUrl (value: string): string {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    return value
  }
  const secretParams = [...url.searchParams.keys()].some(isSecretKey)
  if (url.password === '' && !secretParams) return value
  const auth = url.username !== '' || url.password !== ''
    ? `${url.username}${url.password !== '' ? `:${REDACTED}` : ''}@`
    : ''
  const search = url.search === ''
    ? ''
    : '?' + [...url.searchParams].map(([k, v]) => `${encodeURIComponent(k)}=${isSecretKey(k) ? REDACTED : encodeURIComponent(v)}`).join('&')
  return `${url.protocol}//${auth}${url.host}${url.pathname}${search}${url.hash}`
}

/** Keys whose value is a URL that may carry credentials: `url`, `jwksUrl`, `tokenUrl`, `proxy`, `redis` (cluster). */
const URL_KEY_RE = /(^|[a-z])(url|Url|URL)$|^proxy$|^redis$/

function walk (value: unknown, path: readonly string[]): unknown {
  if (Array.isArray(value)) return value.map((item) => walk(item, path))
  if (!isPlainObject(value)) {
    return typeof value === 'string' && URL_KEY_RE.test(path[path.length - 1] ?? '') ? redactUrl(value) : value
  }
  const parent = path[path.length - 1]
  const out: Record<string, unknown> = {}
  for (const [key, child] of Object.entries(value)) {
    const isSessionName = path.length === 1 && parent === 'sessions'
    // a secret-named key hides its text; lists and mappings under it (auth.tokens) are walked, flags are shown
    // (numbers too, except limits such as dynamicSessions.maxPerToken)
    const secret = !isSessionName && (typeof child === 'string' || (typeof child === 'number' && !/^(max|min)[A-Z]/.test(key))) &&
      (parent === 'headers' ? isSecretHeader(key) : isSecretKey(key))
    setOwn(out, key, secret ? REDACTED : walk(child, [...path, key]))
  }
  return out
}

export function redactConfig (config: Config): unknown {
  return walk(config, [])
}
