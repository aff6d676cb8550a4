/**
 * Which HTTP(S) proxy a connection to the upstream goes through: the `proxy` option, or HTTPS_PROXY / HTTP_PROXY /
 * NO_PROXY with undici's EnvHttpProxyAgent rules (lower-case names first; HTTPS_PROXY falls back to HTTP_PROXY).
 * The tunnel itself is transport/tunnel.ts. Messages never repeat a proxy URL: it may carry a password.
 */
import { ClientError } from './errors.js'

/** The `proxy` option: a proxy URL, `'env'` (the environment variables), or false (direct). */
export type ProxySetting = string | false

/** What the session resolved the option to, once. */
export type ResolvedProxy = URL | 'env' | null

export type Env = Readonly<Record<string, string | undefined>>

const DEFAULT_PORTS: Record<string, number> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 }

/** The proxy without its credentials, for messages: `http://proxy.internal:3128`. */
export function proxyLabel (proxy: URL): string {
  return `${proxy.protocol}//${proxy.host}`
}

/** Validates the option; the message never repeats a URL (it may carry a password). */
export function resolveProxySetting (setting: ProxySetting | undefined): ResolvedProxy {
  if (setting === undefined || setting === false) return null
  if (setting === 'env') return 'env'
  let url: URL
  try {
    url = new URL(setting)
  } catch {
    // no cause: the URL parser's error carries the input, password included
    throw new ClientError('proxy must be a URL such as http://proxy.internal:3128, "env" or false')
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.hostname === '') {
    throw new ClientError(`proxy must be an http: or https: URL with a host (got ${url.protocol}//)`)
  }
  return url
}

/** NO_PROXY: `*`, or host names (a name also covers its subdomains; a leading `.`/`*.` is ignored), each with an optional `:port`. */
export function bypassesProxy (noProxy: string, target: URL): boolean {
  const value = noProxy.trim()
  if (value === '') return false
  if (value === '*') return true
  const hostname = target.host.replace(/:\d*$/, '').toLowerCase()
  const port = Number.parseInt(target.port, 10) || DEFAULT_PORTS[target.protocol] || 0
  for (const entry of value.split(/[,\s]+/)) {
    if (entry === '') continue
    const parsed = /^(.+):(\d+)$/.exec(entry)
    const name = (parsed !== null ? parsed[1]! : entry).replace(/^\*?\./, '').toLowerCase()
    if (parsed !== null && Number(parsed[2]) !== port) continue
    if (hostname === name || hostname.endsWith(`.${name}`)) return true
  }
  return false
}

/** The proxy a connection to `target` goes through, or null (direct). */
export function proxyFor (setting: ResolvedProxy, target: URL, env: Env = process.env): URL | null {
  if (setting !== 'env') return setting
  const secure = target.protocol === 'https:' || target.protocol === 'wss:'
  const names = secure ? ['https_proxy', 'HTTPS_PROXY', 'http_proxy', 'HTTP_PROXY'] : ['http_proxy', 'HTTP_PROXY']
  const name = names.find((n) => env[n] !== undefined)
  const value = name === undefined ? '' : env[name]!.trim()
  if (value === '' || bypassesProxy(env.no_proxy ?? env.NO_PROXY ?? '', target)) return null
  let url: ResolvedProxy = null
  try {
    url = resolveProxySetting(value)
  } catch {}
  if (url instanceof URL) return url
  throw new ClientError(`${name!} must be an http: or https: proxy URL such as http://proxy.internal:3128`)
}
