/**
 * The SSRF guard of dynamic sessions: a caller-supplied upstream URL is accepted only when it falls under one of
 * `dynamicSessions.allowUrls` — same scheme, same host (exact, after WHATWG URL parsing, which lowercases it),
 * same port, and a path under the entry's path at a segment boundary.
 *
 * Before that, every URL that some parser — ours, a proxy's, the upstream server's — could read as another host or
 * another path is refused outright, never normalized: the text must already be the one form every parser agrees
 * on. Each refusal names its rule (`rule`, listed with examples in docs/security.md). Names are not resolved here:
 * an allowed name is trusted. client-core never follows HTTP redirects (undici Pool.request has no redirect
 * handling unless the redirect interceptor is composed in, which client-core does not; `ws` has
 * followRedirects: false by default), so a 3xx cannot lead elsewhere.
 */

export interface AllowedUrl {
  protocol: string
  hostname: string
  /** effective port: the explicit one, or 80/443 */
  port: string
  /** the path prefix without a trailing slash ('' = any path) */
  path: string
  /** the entry as configured */
  text: string
}

export type UrlCheck = { ok: true, url: string } | { ok: false, status: 400 | 403, rule: string, reason: string }

const MAX_URL_LENGTH = 2048
const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' }

/** Characters some servers or proxies fold into `.`, `/` or `\` (full-width forms, one-dot leader, division slash…). */
const LOOKALIKES_RE = /[\u2024\u2044\u2215\u2216\u3002\ufe52\ufe68\uff0e\uff0f\uff3c]/

/** Parses the configured prefixes (validated by the config schema already). */
export function parseAllowUrls (entries: readonly string[]): AllowedUrl[] {
  const out: AllowedUrl[] = []
  for (const text of entries) {
    let url: URL
    try {
      url = new URL(text)
    } catch {
      continue
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') continue
    out.push({
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port === '' ? DEFAULT_PORTS[url.protocol]! : url.port,
      path: url.pathname.replace(/\/+$/, ''),
      text
    })
  }
  return out
}

export function isIpLiteral (hostname: string): boolean {
  return hostname.startsWith('[') || /^\d{1,3}(\.\d{1,3}){3}$/.test(hostname)
}

/** The authority as written: between `scheme://` and the first `/`, `?` or `#`. */
function rawAuthority (input: string): string | null {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/([^/?#]*)/.exec(input)
  return m === null ? null : m[1]!
}

/** The path as written: from the end of the authority to `?` or `#`. */
function rawPath (input: string): string {
  const m = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/.exec(input)
  return m === null ? '' : m[1]!
}

type Refusal = { rule: string, reason: string } | null

const refusal = (rule: string, reason: string): Refusal => ({ rule, reason })

/** Rules on the text as a whole. */
function textRule (input: string, url: URL): Refusal {
  // WHATWG parsing drops leading/trailing spaces and tabs/newlines anywhere: the text itself must be clean
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f-\x9f]/.test(input)) return refusal('control-or-space', 'whitespace and control characters are not allowed in the URL')
  if (input.includes('\\')) return refusal('backslash', 'backslashes are not allowed in the URL (some parsers read them as /)')
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return refusal('scheme', `scheme ${url.protocol} is not allowed (http: or https: only)`)
  if (input.includes('#')) return refusal('fragment', 'a fragment (#) is not allowed')
  return null
}

/** Rules on the authority: no credentials, the host and port written as the WHATWG parser writes them. */
function authorityRule (authority: string | null, url: URL): Refusal {
  if (authority === null) return refusal('authority', 'the URL must be scheme://host/path')
  if (authority.includes('@') || url.username !== '' || url.password !== '') return refusal('credentials', 'credentials in the URL are not allowed (send headers instead)')
  if (authority.includes('%')) return refusal('host-escape', 'percent-escapes in the host are not allowed')
  const bracket = authority.startsWith('[') ? authority.indexOf(']') + 1 : 0
  const colon = authority.indexOf(':', bracket)
  const host = colon < 0 ? authority : authority.slice(0, colon)
  const port = colon < 0 ? null : authority.slice(colon + 1)
  if (host.endsWith('.')) return refusal('host-trailing-dot', 'a trailing dot in the host is not allowed (allowed.example. is another name to some resolvers and proxies)')
  if (host.includes('..') || host.startsWith('.')) return refusal('host-empty-label', 'empty labels in the host (a..b) are not allowed')
  // no decimal/hex/octal/short IPv4 forms, no IDN or full-width letters: the host as written must be canonical
  if (host.toLowerCase() !== url.hostname) return refusal('host-not-canonical', 'the host must be written in canonical form (no numeric variants of an IP address, no IDN)')
  if (port !== null && !/^[1-9]\d{0,4}$/.test(port)) return refusal('port-not-canonical', 'the port must be written as a plain number without leading zeros')
  return null
}

/** Rules on the escapes of the path: only non-ASCII characters, as valid UTF-8, in upper case. */
function escapeRule (path: string): Refusal {
  const escapes = path.match(/%.{0,2}/gs) ?? []
  for (const e of escapes) {
    if (/^%25$/i.test(e)) return refusal('path-double-encoding', 'an encoded % (%25) in the path is not allowed: double encoding reads differently after each decoding')
    if (!/^%[0-9A-Fa-f]{2}$/.test(e)) return refusal('path-invalid-escape', `an invalid percent-escape in the path (${e.startsWith('%u') || e.startsWith('%U') ? '%u escapes are IIS-only' : 'not % and two hex digits'}) is not allowed`)
  }
  const ascii = escapes.find((e) => parseInt(e.slice(1), 16) < 0x80)
  if (ascii !== undefined) return refusal('path-ascii-escape', `an encoded ASCII character (${ascii}) in the path is not allowed: servers decode it into a delimiter or a dot after our check`)
  if (escapes.some((e) => e !== e.toUpperCase())) return refusal('path-escape-case', 'percent-escapes in the path must use upper-case hex digits (%C3%A9, not %c3%a9): mixed forms are normalized differently by proxies')
  try {
    decodeURIComponent(path)
  } catch {
    return refusal('path-invalid-utf8', 'an invalid or overlong UTF-8 sequence in the path (%C0%AE…) is not allowed')
  }
  return null
}

/** Rules on the path: its escapes, then the decoded text — no parameters, no dot or empty segments, no lookalikes. */
function pathRule (path: string): Refusal {
  const escape = escapeRule(path)
  if (escape !== null) return escape
  const decoded = decodeURIComponent(path)
  if (decoded.normalize('NFKC') !== decoded || LOOKALIKES_RE.test(decoded)) {
    return refusal('path-lookalike', 'characters that Unicode normalization or a server folds into ASCII (full-width dots and slashes…) are not allowed in the path')
  }
  if (decoded.includes(';')) return refusal('path-parameter', '; in the path is not allowed (a path parameter: /allowed/..;/admin reads as /admin to Tomcat and Jetty)')
  const segments = decoded.split('/').slice(1)
  if (segments.some((s) => /^\.+$/.test(s))) return refusal('path-dot-segment', 'dot segments (., .., …) in the path are not allowed')
  if (segments.slice(0, -1).includes('')) return refusal('path-empty-segment', 'empty segments (//) in the path are not allowed')
  return null
}

function firstRule (input: string, url: URL): Refusal {
  return textRule(input, url) ?? authorityRule(rawAuthority(input), url) ?? pathRule(rawPath(input))
}

export function checkUpstreamUrl (input: unknown, allowed: readonly AllowedUrl[]): UrlCheck {
  const invalid = (rule: string, reason: string): UrlCheck => ({ ok: false, status: 400, rule, reason })
  if (typeof input !== 'string' || input === '') return invalid('not-a-string', 'url must be a non-empty string')
  if (input.length > MAX_URL_LENGTH) return invalid('too-long', `url is longer than ${MAX_URL_LENGTH} characters`)
  let url: URL
  try {
    url = new URL(input)
  } catch {
    return invalid('invalid-url', 'url is not a valid absolute URL')
  }
  const refused = firstRule(input, url)
  if (refused !== null) return { ok: false, status: 403, ...refused }
  const port = url.port === '' ? DEFAULT_PORTS[url.protocol]! : url.port
  const ip = isIpLiteral(url.hostname)
  for (const entry of allowed) {
    if (entry.protocol !== url.protocol || entry.hostname !== url.hostname || entry.port !== port) continue
    if (ip && !isIpLiteral(entry.hostname)) continue
    if (entry.path !== '' && url.pathname !== entry.path && !url.pathname.startsWith(entry.path + '/')) continue
    return { ok: true, url: url.href }
  }
  if (ip && !allowed.some((entry) => entry.hostname === url.hostname)) {
    return { ok: false, status: 403, rule: 'ip-literal', reason: 'IP addresses are not allowed unless listed in dynamicSessions.allowUrls' }
  }
  return { ok: false, status: 403, rule: 'not-allowed', reason: 'the URL is not under any of dynamicSessions.allowUrls' }
}
