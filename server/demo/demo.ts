/**
 * The embedded demo: a Faye (Bayeux) server on its own HTTP port (websocket and long-polling) that publishes a
 * tick on /demo/ticks every second, plus a `demo` session pointed at it. Used by `npm start` with no config, and
 * as the demo upstream service of docker-compose (demo-upstream.ts).
 */
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { createRequire } from 'node:module'
import type { AddressInfo } from 'node:net'
import type { Config } from '../../config/index.js'
import { defaultSession, isDemoEnabled } from '../../config/index.js'

/** The part of Faye we use (faye ships no types). */
interface FayeClient {
  publish: (channel: string, data: unknown) => { then?: unknown }
  disconnect: () => void
}
interface FayeAdapter {
  attach: (server: Server) => void
  getClient: () => FayeClient
  addExtension: (ext: { incoming?: (m: FayeMessage, cb: (m: FayeMessage) => void) => void }) => void
  close: () => void
}
interface FayeModule { NodeAdapter: new (options: { mount: string, timeout: number, ping?: number }) => FayeAdapter }
export interface FayeMessage { channel: string, clientId?: string, data?: unknown, [key: string]: unknown }

const require = createRequire(import.meta.url)

export const DEMO_TICKS = '/demo/ticks'
export const DEMO_CHAT = '/demo/chat'

export interface DemoUpstreamOptions {
  host?: string
  /** 0 = ephemeral */
  port?: number
  tickMs?: number
  /** Faye's long-poll hold time, seconds */
  timeoutS?: number
  /** sees every incoming Bayeux message (tests) */
  onIncoming?: (message: FayeMessage) => void
}

export interface DemoUpstream {
  /** the Bayeux endpoint, e.g. http://127.0.0.1:9000/cometd */
  url: string
  port: number
  /** ticks published so far */
  readonly ticks: number
  close: () => Promise<void>
}

export async function startDemoUpstream (options: DemoUpstreamOptions = {}): Promise<DemoUpstream> {
  const faye = require('faye') as FayeModule
  const host = options.host ?? '127.0.0.1'
  const adapter = new faye.NodeAdapter({ mount: '/cometd', timeout: options.timeoutS ?? 25 })
  if (options.onIncoming !== undefined) {
    const seen = options.onIncoming
    adapter.addExtension({ incoming: (message, callback) => { try { seen(message) } finally { callback(message) } } })
  }
  const server = createServer((_req, res) => {
    res.writeHead(404, { 'Content-Type': 'application/json' })
    res.end(JSON.stringify({ error: 'not_found', message: 'The Bayeux endpoint is /cometd' }))
  })
  adapter.attach(server)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(options.port ?? 0, host, () => { server.off('error', reject); resolve() })
  })
  const port = (server.address() as AddressInfo).port
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
  const client = adapter.getClient()
  let ticks = 0
  const timer = setInterval(() => {
    ticks++
    client.publish(DEMO_TICKS, { n: ticks, at: new Date().toISOString(), text: `tick ${ticks}` })
  }, options.tickMs ?? 1000)
  timer.unref()
  let closed: Promise<void> | null = null
  return {
    url: `http://${urlHost}:${port}/cometd`,
    port,
    get ticks () { return ticks },
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        clearInterval(timer)
        try { client.disconnect() } catch {}
        try { adapter.close() } catch {}
        server.close(() => { resolve() })
        server.closeAllConnections()
      })
      return closed
    }
  }
}

/**
 * The config with a `demo` session pointed at the embedded upstream. The session holds /demo/ticks for ever
 * (`subscribe`), so every tick is in its resume buffer: a caller that comes back with Last-Event-ID gets every tick
 * it missed, however long it was away (up to bufferSize ticks).
 */
export function withDemoSession (config: Config, url: string): Config {
  return {
    ...config,
    sessions: { ...config.sessions, demo: { ...defaultSession(url), subscribe: [DEMO_TICKS] } }
  }
}

/** Should the embedded demo run? `auto` = when no session is configured, and no dynamic session can be. */
export function wantsDemo (config: Config): boolean {
  return isDemoEnabled(config)
}

/** The human-readable help printed at start: how to watch ticks and publish to the chat channel. */
export function demoBanner (baseUrl: string): string {
  return [
    '',
    'cometd-bridge is running the embedded demo: a Faye server publishes a tick on /demo/ticks every second.',
    '',
    `  Open the console in a browser: ${baseUrl}/`,
    '',
    '  Watch the ticks:',
    `    curl -N '${baseUrl}/sessions/demo/events?channel=/demo/ticks'`,
    '  Watch the chat (in another terminal):',
    `    curl -N '${baseUrl}/sessions/demo/events?channel=/demo/chat'`,
    '  Publish to the chat:',
    `    curl -X POST -H 'Content-Type: application/json' -d '{"text":"hello"}' '${baseUrl}/sessions/demo/publish/demo/chat'`,
    '  Session state:',
    `    curl '${baseUrl}/sessions/demo'`,
    ''
  ].join('\n') + '\n'
}

/** `http://host:port` a human can paste (0.0.0.0 and :: become 127.0.0.1). */
export function baseUrlOf (host: string, port: number): string {
  const h = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host
  return `http://${h}:${port}`
}
