/**
 * The soak's upstream: a demo-like Faye 1.4.3 server (websocket and long-polling, like server/demo/demo.ts) on a fixed
 * 127.0.0.1 port that can be stopped and started again on the same port (every Bayeux session is lost, as when a
 * real server restarts). `publish(channel, data)` goes through the server's in-process client.
 */
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'

interface FayeDeferrable { then: (ok: (v: unknown) => void, err: (e: unknown) => void) => unknown }
interface FayeClient {
  publish: (channel: string, data: unknown) => FayeDeferrable
  disconnect: () => unknown
}
interface FayeAdapter {
  attach: (server: Server) => void
  getClient: () => FayeClient
  close: () => void
}
interface FayeModule { NodeAdapter: new (options: { mount: string, timeout: number }) => FayeAdapter }

const require = createRequire(import.meta.url)

export class SoakUpstream {
  #port = 0
  #adapter: FayeAdapter | null = null
  #client: FayeClient | null = null
  #server: Server | null = null
  readonly #sockets = new Set<Socket>()
  readonly #timeoutS: number
  starts = 0

  constructor (timeoutS = 25) {
    this.#timeoutS = timeoutS
  }

  get port (): number { return this.#port }
  get url (): string { return `http://127.0.0.1:${this.#port}/cometd` }
  get running (): boolean { return this.#server !== null }

  async start (): Promise<void> {
    if (this.#server !== null) return
    const faye = require('faye') as FayeModule
    const adapter = new faye.NodeAdapter({ mount: '/cometd', timeout: this.#timeoutS })
    const server = createServer((_req, res) => { res.writeHead(404); res.end() })
    server.on('connection', (s: Socket) => { this.#sockets.add(s); s.once('close', () => this.#sockets.delete(s)) })
    adapter.attach(server)
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject)
      server.listen({ port: this.#port, host: '127.0.0.1', exclusive: true }, () => { server.off('error', reject); resolve() })
    })
    this.#port = (server.address() as AddressInfo).port
    this.#adapter = adapter
    this.#client = adapter.getClient()
    this.#server = server
    this.starts++
  }

  /** Resolves when Faye accepted the message; rejects when stopped. */
  publish (channel: string, data: unknown): Promise<void> {
    const client = this.#client
    if (client === null) return Promise.reject(new Error('upstream stopped'))
    return new Promise<void>((resolve, reject) => { client.publish(channel, data).then(() => { resolve() }, reject) })
  }

  async stop (): Promise<void> {
    const server = this.#server
    if (server === null) return
    this.#server = null
    const client = this.#client
    this.#client = null
    try { client?.disconnect() } catch {}
    try { this.#adapter?.close() } catch {}
    this.#adapter = null
    await new Promise<void>((resolve) => {
      server.close(() => { resolve() })
      for (const s of this.#sockets) s.destroy()
      this.#sockets.clear()
    })
  }
}
