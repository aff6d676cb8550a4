/**
 * The SSRF guard of dynamic sessions: a caller-supplied upstream URL is accepted only when it falls under one of
 * `dynamicSessions.allowUrls` — same scheme, same host (exact, after WHATWG URL parsing, which lowercases it),
 * same port, and a path under the entry's path at a segment boundary. On top of that every trick that makes
 * the text say something else than what a parser (ours, a proxy's, the upstream's) will connect to is refused:
 * credentials (`user@`), fragments, percent-escapes or non-canonical forms in the host (`allowed%2Ehost`,
 * `2130706433`, `0x7f.1`), IP literals not listed as such, dot segments and encoded slashes or dots in the path,
 * whitespace, control characters and backslashes anywhere. Names are not resolved here: an allowed name is
 * trusted (docs/security.md). client-core never follows HTTP redirects (undici Pool.request has no redirect
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

export type UrlCheck = { ok: true, url: string } | { ok: false, status: 400 | 403, reason: string }

const MAX_URL_LENGTH = 2048
const DEFAULT_PORTS: Record<string, string> = { 'http:': '80', 'https:': '443' }

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

export function checkUpstreamUrl (input: unknown, allowed: readonly AllowedUrl[]): UrlCheck {
  const refuse = (reason: string): UrlCheck => ({ ok: false, status: 403, reason })
  if (typeof input !== 'string' || input === '') return { ok: false, status: 400, reason: 'url must be a non-empty string' }
  if (input.length > MAX_URL_LENGTH) return { ok: false, status: 400, reason: `url is longer than ${MAX_URL_LENGTH} characters` }
  let url: URL
  try {
    url = new URL(input)
  } catch {
    return { ok: false, status: 400, reason: 'url is not a valid absolute URL' }
  }
  // WHATWG parsing drops leading/trailing spaces and tabs/newlines anywhere: the text itself must be clean
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f-\x9f\\]/.test(input)) return refuse('whitespace, control characters and backslashes are not allowed in the URL')
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return refuse(`scheme ${url.protocol} is not allowed (http: or https: only)`)
  const authority = rawAuthority(input)
  if (authority === null) return refuse('the URL must be scheme://host/path')
  if (authority.includes('@') || url.username !== '' || url.password !== '') return refuse('credentials in the URL are not allowed (send headers instead)')
  if (input.includes('#')) return refuse('a fragment is not allowed')
  if (authority.includes('%')) return refuse('percent-escapes in the host are not allowed')
  // the host as written must already be canonical: no decimal/hex/octal IPv4 forms, no IDN, no trailing dot games
  const writtenHost = authority.startsWith('[') ? authority.slice(0, authority.indexOf(']') + 1) : authority.replace(/:\d*$/, '')
  if (writtenHost.toLowerCase() !== url.hostname) return refuse('the host must be written in canonical form')
  const path = rawPath(input)
  if (/%(2e|2f|5c|00)/i.test(path)) return refuse('encoded dots, slashes or NULs in the path are not allowed')
  if (/(^|\/)\.\.?(\/|$)/.test(path)) return refuse('dot segments (. and ..) in the path are not allowed')
  const port = url.port === '' ? DEFAULT_PORTS[url.protocol]! : url.port
  const ip = isIpLiteral(url.hostname)
  for (const entry of allowed) {
    if (entry.protocol !== url.protocol || entry.hostname !== url.hostname || entry.port !== port) continue
    if (ip && !isIpLiteral(entry.hostname)) continue
    if (entry.path !== '' && url.pathname !== entry.path && !url.pathname.startsWith(entry.path + '/')) continue
    return { ok: true, url: url.href }
  }
  if (ip) return refuse('IP addresses are not allowed unless listed in dynamicSessions.allowUrls')
  return refuse('the URL is not under any of dynamicSessions.allowUrls')
}
