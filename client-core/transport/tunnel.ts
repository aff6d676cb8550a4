/**
 * A CONNECT tunnel through an HTTP(S) proxy, for both transports: long-polling's undici connector and the
 * websocket's http.Agent (TunnelAgent). The CONNECT exchange is undici's own (`Client#connect`, what its
 * ProxyAgent uses); TLS to the upstream runs inside the tunnel, so certificate checks and pinning apply as they
 * do without a proxy. Proxy credentials (`http://user:pass@proxy:3128`) become a Proxy-Authorization header and
 * never appear in an error message or a log line: those show the proxy as scheme://host:port.
 */
import http from 'node:http'
import { isIP } from 'node:net'
import type { Socket } from 'node:net'
import tls from 'node:tls'
import type { ConnectionOptions } from 'node:tls'
import type { Duplex } from 'node:stream'
import { Client } from 'undici'
import { ProxyError } from '../errors.js'
import { proxyLabel } from '../proxy.js'

function proxyAuthorization (proxy: URL): Record<string, string> {
  if (proxy.username === '' && proxy.password === '') return {}
  const user = `${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`
  return { 'proxy-authorization': `Basic ${Buffer.from(user, 'utf8').toString('base64')}` }
}

/**
 * A TCP stream to `host:port` through the proxy (HTTP CONNECT), within `timeoutMs`. ProxyError when the proxy
 * cannot be reached, answers anything but 200, or does not answer in time.
 */
export async function openTunnel (proxy: URL, host: string, port: number, timeoutMs: number): Promise<Socket> {
  const authority = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`
  const client = new Client(proxy.origin, { connect: { timeout: timeoutMs }, headersTimeout: timeoutMs })
  try {
    const { statusCode, socket } = await client.connect({
      path: authority,
      headers: { host: authority, ...proxyAuthorization(proxy) },
      signal: AbortSignal.timeout(timeoutMs)
    })
    if (statusCode !== 200) {
      socket.on('error', () => {}).destroy()
      throw new ProxyError(`Proxy ${proxyLabel(proxy)} refused the tunnel to ${authority}: HTTP ${statusCode}`, statusCode)
    }
    return socket as Socket
  } catch (error) {
    if (error instanceof ProxyError) throw error
    const reason = error instanceof Error ? ((error as NodeJS.ErrnoException).code ?? error.name) : String(error)
    throw new ProxyError(`Proxy ${proxyLabel(proxy)} did not open a tunnel to ${authority}: ${reason}`, null, { cause: error })
  } finally {
    // the tunnel's socket left the client on success: closing it closes nothing in use
    client.destroy().catch(() => {})
  }
}

/** TLS to the upstream inside a tunnel (SNI: the host name, never an IP address). */
export function tlsOverTunnel (tunnel: Duplex, options: ConnectionOptions, host: string): tls.TLSSocket {
  const servername = options.servername ?? (isIP(host) === 0 ? host : undefined)
  return tls.connect({ ...options, socket: tunnel, ...(servername !== undefined ? { servername } : {}) })
}

/**
 * An http.Agent whose connections go through the proxy: what `ws` needs for a websocket upgrade (it passes its TLS
 * options — ca, rejectUnauthorized — in the request options, which reach createConnection).
 */
export class TunnelAgent extends http.Agent {
  readonly #proxy: URL
  readonly #timeoutMs: number
  readonly #secure: boolean

  constructor (proxy: URL, secure: boolean, timeoutMs: number) {
    super({ keepAlive: false })
    // https.request refuses an agent of another protocol
    ;(this as unknown as { protocol: string }).protocol = secure ? 'https:' : 'http:'
    this.#proxy = proxy
    this.#secure = secure
    this.#timeoutMs = timeoutMs
  }

  override createConnection (options: http.ClientRequestArgs & ConnectionOptions, callback: (err: Error | null, socket: Duplex) => void): Duplex | undefined {
    const host = String(options.hostname ?? options.host ?? 'localhost').replace(/^\[|\]$/g, '')
    const port = Number(options.port) || (this.#secure ? 443 : 80)
    openTunnel(this.#proxy, host, port, this.#timeoutMs).then((tunnel) => {
      callback(null, this.#secure ? tlsOverTunnel(tunnel, options, host) : tunnel)
    }, (error: Error) => { callback(error, undefined as unknown as Duplex) })
    return undefined
  }
}
