/**
 * Plumbing shared by the peer helpers: create an HTTP(S) server on 127.0.0.1, track its sockets,
 * and close it for good (listening socket closed AND every open socket destroyed, so neither a held
 * long poll nor a keep-alive connection keeps the test process alive).
 */
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo, Server as NetServer, Socket } from 'node:net'

export const HOST = '127.0.0.1'

export interface TlsOptions {
  key: string | Buffer
  cert: string | Buffer
}

/** A node:http or node:https server whose sockets are tracked. */
export interface TrackedServer {
  server: http.Server
  sockets: Set<Socket>
}

export function createHttpServer(
  handler: http.RequestListener | undefined,
  tls?: TlsOptions,
): TrackedServer {
  const server: http.Server = tls
    ? https.createServer({ key: tls.key, cert: tls.cert }, handler)
    : http.createServer(handler)
  // Long polls are held for `timeout`; never let Node's own timers cut them first.
  server.requestTimeout = 0
  server.headersTimeout = 60_000
  server.keepAliveTimeout = 5_000
  return { server, sockets: trackSockets(server) }
}

/** Records every accepted socket until it closes. */
export function trackSockets(server: NetServer): Set<Socket> {
  const sockets = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  return sockets
}

/** Listens on 127.0.0.1:`port` (0 = ephemeral); resolves with the bound port. */
export function listen(server: NetServer, port = 0): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening)
      reject(err)
    }
    const onListening = (): void => {
      server.off('error', onError)
      resolve((server.address() as AddressInfo).port)
    }
    server.once('error', onError)
    server.once('listening', onListening)
    server.listen({ port, host: HOST, exclusive: true })
  })
}

/** Stops accepting, destroys every open socket, resolves when the listener is closed. */
export function closeServer(server: NetServer, sockets: Set<Socket>): Promise<void> {
  return new Promise<void>((resolve) => {
    if (!server.listening) {
      for (const s of sockets) s.destroy()
      sockets.clear()
      resolve()
      return
    }
    server.close(() => resolve())
    for (const s of sockets) s.destroy()
    sockets.clear()
  })
}

/** Makes an async close idempotent: every call returns the first call's promise. */
export function idempotent(fn: () => Promise<void>): () => Promise<void> {
  let p: Promise<void> | undefined
  return () => (p ??= fn())
}

/** http(s)://127.0.0.1:port + path */
export function baseUrl(port: number, tls: boolean, path = ''): string {
  return `${tls ? 'https' : 'http'}://${HOST}:${port}${path}`
}
