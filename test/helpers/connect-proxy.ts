/**
 * A small HTTP CONNECT proxy on 127.0.0.1 for tests, in front of real peers: it counts the tunnels it opens and
 * records their targets and the Proxy-Authorization it was given. It can require Basic credentials (407 without
 * them) or refuse every tunnel with a fixed status. Targets are loopback only (`localhost` is 127.0.0.1 here).
 *
 *   const proxy = await startConnectProxy({ user: 'u', password: 'p' })
 *   t.teardown(proxy.close)
 *   proxy.url        // http://127.0.0.1:<port>
 *   proxy.tunnels    // CONNECTs answered 200
 *   proxy.targets    // ['127.0.0.1:8080', …]
 */
import type http from 'node:http'
import net from 'node:net'
import type { Socket } from 'node:net'
import { closeServer, createHttpServer, idempotent, listen } from './net-util.js'

export interface ConnectProxyOptions {
  /** Basic credentials the proxy requires (407 otherwise) */
  user?: string
  password?: string
  /** answer every CONNECT with this status instead of opening a tunnel */
  refuseWith?: number
}

export interface ConnectProxy {
  readonly url: string
  readonly port: number
  /** CONNECT requests received */
  readonly connects: number
  /** tunnels opened (answered 200) */
  readonly tunnels: number
  /** host:port of every CONNECT, in order */
  readonly targets: string[]
  /** the Proxy-Authorization header of every CONNECT ('' when absent) */
  readonly authorizations: string[]
  /** non-CONNECT requests (a forward-proxy GET/POST): counted, answered 405 */
  readonly forwards: number
  close: () => Promise<void>
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]', '::1'])

export async function startConnectProxy (options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const state = { connects: 0, tunnels: 0, forwards: 0, targets: [] as string[], authorizations: [] as string[] }
  const tunnelSockets = new Set<Socket>()
  const expected = options.user !== undefined
    ? `Basic ${Buffer.from(`${options.user}:${options.password ?? ''}`).toString('base64')}`
    : null
  const { server, sockets } = createHttpServer((_req: http.IncomingMessage, res: http.ServerResponse) => {
    state.forwards++
    res.writeHead(405, { 'content-type': 'text/plain' }).end('CONNECT only')
  })
  server.on('connect', (req: http.IncomingMessage, client: Socket, head: Buffer) => {
    state.connects++
    const target = req.url ?? ''
    const authorization = req.headers['proxy-authorization'] ?? ''
    state.targets.push(target)
    state.authorizations.push(authorization)
    client.on('error', () => {})
    tunnelSockets.add(client)
    client.once('close', () => tunnelSockets.delete(client))
    const refuse = (status: number, text: string, extra = ''): void => {
      client.end(`HTTP/1.1 ${status} ${text}\r\n${extra}Content-Length: 0\r\nConnection: close\r\n\r\n`)
    }
    if (options.refuseWith !== undefined) { refuse(options.refuseWith, 'Refused'); return }
    if (expected !== null && authorization !== expected) { refuse(407, 'Proxy Authentication Required', 'Proxy-Authenticate: Basic realm="test"\r\n'); return }
    const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(target)
    if (m === null || !LOOPBACK.has(m[1]!)) { refuse(403, 'Forbidden'); return }
    const upstream = net.connect({ host: m[1] === 'localhost' ? '127.0.0.1' : m[1]!.replace(/^\[|\]$/g, ''), port: Number(m[2]) })
    upstream.on('error', () => { client.destroy() })
    tunnelSockets.add(upstream)
    upstream.once('close', () => { tunnelSockets.delete(upstream); client.destroy() })
    client.once('close', () => { upstream.destroy() })
    upstream.once('connect', () => {
      state.tunnels++
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      if (head.length > 0) upstream.write(head)
      client.pipe(upstream)
      upstream.pipe(client)
    })
  })
  const port = await listen(server)
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    get connects () { return state.connects },
    get tunnels () { return state.tunnels },
    get forwards () { return state.forwards },
    targets: state.targets,
    authorizations: state.authorizations,
    close: idempotent(async () => {
      for (const s of tunnelSockets) s.destroy()
      await closeServer(server, sockets)
    })
  }
}
