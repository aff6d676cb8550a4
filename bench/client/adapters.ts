/**
 * One small interface over the three client libraries compared by the client suite. Each library is loaded with a
 * dynamic import, so a benchmark process holds only the library it measures (its RSS and CPU are that library's).
 *
 *   client-core        our Client (../client-core/index.js), autoBatch on (its default); events through a listener
 *   cometd             the official CometD 9 client via cometd-nodejs-client 2, autoBatch off (its default)
 *   cometd-autobatch   the same with autoBatch: true
 *   faye               the faye 1.4.3 Node client (long-polling: client.disable('websocket'))
 *   floor              the least a subscriber can do (floor.ts): ws or undici, JSON.parse, the listener; no publisher
 *   client-core-alt    another compiled client-core (BENCH_CLIENT_CORE_ALT=<dir with index.js>, run.js
 *                      --client-core-alt DIR), measured side by side with client-core, e.g. a branch or an experiment
 */
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

export const LIBRARIES = ['client-core', 'cometd', 'cometd-autobatch', 'faye', 'client-core-alt', 'floor'] as const
export type Library = typeof LIBRARIES[number]
/** The libraries client-core is compared with. */
export const REFERENCES: readonly Library[] = ['cometd', 'cometd-autobatch', 'faye']
export type TransportName = 'websocket' | 'long-polling'

export interface BenchClient {
  /** handshake and first connect; resolves when connected */
  connect: () => Promise<void>
  /** resolves when the server confirmed; `onData` receives the event's data */
  subscribe: (channel: string, onData: (data: unknown) => void) => Promise<void>
  /** resolves on the server's successful reply, rejects on a refusal (one promise per publish, for every library) */
  publish: (channel: string, data: unknown) => Promise<unknown>
  /** the transport actually in use (a library may fall back silently) */
  transport: () => string
  close: () => Promise<void>
}

const require = createRequire(import.meta.url)

export async function createClient (library: Library, url: string, transport: TransportName): Promise<BenchClient> {
  switch (library) {
    case 'client-core': return await clientCore(url, transport, await import('../../client-core/index.js'))
    case 'client-core-alt': return await clientCore(url, transport, await loadAlternative())
    case 'cometd': return await official(url, transport, false)
    case 'cometd-autobatch': return await official(url, transport, true)
    case 'faye': return fayeClient(url, transport)
    case 'floor': return (await import('./floor.js')).floorClient(url, transport)
  }
}

// ------------------------------------------------------------------ client-core

type ClientCoreModule = typeof import('../../client-core/index.js')

async function loadAlternative (): Promise<ClientCoreModule> {
  const dir = process.env.BENCH_CLIENT_CORE_ALT
  if (dir === undefined || dir === '') throw new Error('client-core-alt needs BENCH_CLIENT_CORE_ALT=<dir of a compiled client-core>')
  return await import(pathToFileURL(path.join(path.resolve(dir), 'index.js')).href) as ClientCoreModule
}

async function clientCore (url: string, transport: TransportName, { Client }: ClientCoreModule): Promise<BenchClient> {
  const client = new Client(url, { connectionTypes: [transport], maxNetworkDelayMs: 30_000 })
  return {
    connect: () => client.open(),
    subscribe: (channel, onData) => client.subscribe(channel, (message) => onData(message.data)),
    publish: (channel, data) => client.publish(channel, data),
    transport: () => client.connectionType ?? 'none',
    close: () => client.close()
  }
}

// ------------------------------------------------------------------ official CometD client

async function official (url: string, transport: TransportName, autoBatch: boolean): Promise<BenchClient> {
  const { adapt } = await import('cometd-nodejs-client')
  const { CometD } = await import('cometd')
  // One process = one client, so the adapter's process-wide cookie jar is this client's own jar.
  const debug = console.debug
  adapt()
  console.debug = debug
  const cometd = new CometD()
  cometd.unregisterTransport('callback-polling')
  cometd.unregisterTransport(transport === 'websocket' ? 'long-polling' : 'websocket')
  cometd.configure({ url, logLevel: 'warn', autoBatch, maxNetworkDelay: 30_000 })
  return {
    connect: () => new Promise<void>((resolve, reject) => {
      cometd.handshake((reply) => {
        if (reply.successful === true) resolve()
        else reject(new Error(`handshake failed: ${JSON.stringify(reply)}`))
      })
    }),
    subscribe: (channel, onData) => new Promise<void>((resolve, reject) => {
      cometd.subscribe(channel, (message) => onData(message.data), (reply) => {
        if (reply.successful === true) resolve()
        else reject(new Error(`subscribe failed: ${JSON.stringify(reply)}`))
      })
    }),
    publish: (channel, data) => new Promise<void>((resolve, reject) => {
      cometd.publish(channel, data, (reply) => {
        if (reply.successful === true) resolve()
        else reject(new Error(`publish failed: ${reply.error ?? 'unsuccessful'}`))
      })
    }),
    transport: () => cometd.getTransport()?.type ?? 'none',
    close: () => new Promise<void>((resolve) => {
      if (cometd.isDisconnected()) {
        resolve()
        return
      }
      const timer = setTimeout(resolve, 1_000)
      cometd.disconnect(() => {
        clearTimeout(timer)
        resolve()
      })
    })
  }
}

// ------------------------------------------------------------------ faye

interface FayeDeferrable { then: (ok: (value: unknown) => void, fail: (error: unknown) => void) => unknown }
interface FayeClient {
  disable: (feature: string) => void
  connect: (callback: () => void) => void
  subscribe: (channel: string, onMessage: (data: unknown) => void) => FayeDeferrable
  publish: (channel: string, data: unknown) => FayeDeferrable
  disconnect: () => FayeDeferrable | undefined
  _dispatcher?: { connectionType?: string }
}
interface FayeModule { Client: new (url: string, options?: Record<string, unknown>) => FayeClient }

function fayeClient (url: string, transport: TransportName): BenchClient {
  const faye = require('faye') as FayeModule
  const client = new faye.Client(url)
  if (transport === 'long-polling') client.disable('websocket')
  const settle = (d: FayeDeferrable): Promise<void> => new Promise<void>((resolve, reject) => {
    d.then(() => resolve(), (error) => reject(error instanceof Error ? error : new Error(JSON.stringify(error))))
  })
  return {
    connect: () => new Promise<void>((resolve) => client.connect(resolve)),
    subscribe: (channel, onData) => settle(client.subscribe(channel, onData)),
    publish: (channel, data) => settle(client.publish(channel, data)),
    transport: () => client._dispatcher?.connectionType ?? 'none',
    close: async () => {
      const d = client.disconnect()
      if (d === undefined) return
      await Promise.race([settle(d).catch(() => {}), new Promise((resolve) => setTimeout(resolve, 1_000))])
    }
  }
}
