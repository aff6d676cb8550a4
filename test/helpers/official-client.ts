/**
 * The official reference client (npm `cometd` 9 through `cometd-nodejs-client` 2's adapt()) wrapped
 * in promises with deadlines, to check our servers/bridge against it and to drive the real peers.
 *
 *   const c = createOfficialClient(peer.url, { transport: 'long-polling' })
 *   t.teardown(c.disconnect)
 *   await c.handshake()
 *   await c.subscribe('/chat', (m) => got.push(m))
 *   const reply = await c.publish('/chat', { text: 'hi' })
 *   const echo = await c.remoteCall('/echo', { x: 1 })   // → /service/echo, correlated by id
 *
 * adapt() installs process globals (window.XMLHttpRequest, window.WebSocket = ws, timers) once per
 * process; this module does it on first use and restores console.debug, which adapt() overwrites
 * with console.log. The adapter keeps ONE cookie jar per process (all clients look like one browser,
 * so cometd-nodejs-server answers the second client's long poll with `multiple-clients` advice and a
 * 2 s interval). Here each client gets its own jar by default (`cookies: 'isolated'`): cookies are
 * retrieved through the long-polling transport's `context` and stored against the same request's URL
 * object. `cookies: 'shared'` restores the adapter's one-browser behaviour. A later adapt() call by
 * other code would replace these hooks. Cookies are never sent on websocket upgrades (adapter).
 */
import { AckExtension, CometD, type Configuration, type Message, type SubscriptionHandle } from 'cometd'
import { adapt } from 'cometd-nodejs-client'
import { withDeadline } from './wait.js'

export type { Message as OfficialMessage }

export interface OfficialClientOptions {
  /** Only this transport is registered (no fallback); default both, websocket first. */
  transport?: 'long-polling' | 'websocket'
  autoBatch?: boolean
  /** Register the client AckExtension (pair with startCometd({ ack: true })). */
  ack?: boolean
  /** 'isolated' (default): one cookie jar per client; 'shared': the adapter's per-process jar. */
  cookies?: 'isolated' | 'shared'
  /** Deadline for each promise returned here; default 5000 ms. */
  timeoutMs?: number
  /** Any other cometd configuration (maxNetworkDelay, backoffIncrement, ...). */
  config?: Partial<Configuration>
}

export interface OfficialClient {
  readonly cometd: CometD
  /** Resolves with the successful handshake reply; rejects with OfficialClientError otherwise. */
  handshake(props?: object): Promise<Message>
  /** Resolves once the server confirmed the subscription; rejects on an unsuccessful reply. */
  subscribe(channel: string, onMessage: (message: Message) => void): Promise<SubscriptionHandle>
  unsubscribe(handle: SubscriptionHandle): Promise<Message>
  /** Resolves with the publish reply, successful or not (check `reply.successful`). */
  publish(channel: string, data: unknown): Promise<Message>
  /** remoteCall to /service<target>; resolves with the answer or the client's 406::timeout failure. */
  remoteCall(target: string, data: unknown, timeoutMs?: number): Promise<Message>
  /** Disconnects (bounded, never rejects, idempotent): use with t.teardown. */
  disconnect(): Promise<void>
}

export class OfficialClientError extends Error {
  override name = 'OfficialClientError'
  constructor(
    message: string,
    readonly reply: Message,
  ) {
    super(message)
  }
}

const JAR = Symbol('officialClientCookieJar')
type Jar = Map<string, string>
interface TransportContext {
  [JAR]?: Jar
}

const ADAPTED = Symbol.for('cometd-bridge.test.official-client.adapted')
const sharedJars = new Map<string, Jar>()
const jarOfRequest = new WeakMap<object, Jar>()

function sharedJar(host: string): Jar {
  let jar = sharedJars.get(host)
  if (!jar) sharedJars.set(host, (jar = new Map()))
  return jar
}

function ensureAdapted(): void {
  const g = globalThis as Record<symbol, unknown>
  if (g[ADAPTED]) return
  const debug = console.debug
  adapt({
    cookies: {
      retrieveCookies(context: TransportContext | undefined, uri: URL, callback) {
        const jar = context?.[JAR] ?? sharedJar(uri.hostname)
        jarOfRequest.set(uri, jar) // the XHR passes this same URL object to storeCookie()
        callback(null, [...jar.values()])
      },
      storeCookie(uri: URL, header: string, callback) {
        const jar = jarOfRequest.get(uri) ?? sharedJar(uri.hostname)
        const nameValue = header.split(';')[0]?.trim() ?? ''
        const eq = nameValue.indexOf('=')
        if (eq > 0) jar.set(nameValue.slice(0, eq), nameValue)
        callback(null, undefined)
      },
    },
  })
  console.debug = debug
  g[ADAPTED] = true
}

export function createOfficialClient(url: string, opts: OfficialClientOptions = {}): OfficialClient {
  ensureAdapted()
  const timeoutMs = opts.timeoutMs ?? 5000
  const cometd = new CometD()
  cometd.unregisterTransport('callback-polling') // needs a DOM
  if (opts.transport === 'long-polling') cometd.unregisterTransport('websocket')
  if (opts.transport === 'websocket') cometd.unregisterTransport('long-polling')
  if ((opts.cookies ?? 'isolated') === 'isolated') {
    const lp = cometd.findTransport('long-polling') as (object & { context?: TransportContext }) | null
    if (lp) lp.context = { [JAR]: new Map() }
  }
  if (opts.ack) cometd.registerExtension('ack', new AckExtension())
  cometd.configure({ logLevel: 'warn', ...opts.config, url, autoBatch: opts.autoBatch ?? false })

  let disconnecting: Promise<void> | undefined

  return {
    cometd,
    handshake(props?: object) {
      const p = new Promise<Message>((resolve, reject) => {
        cometd.handshake(props ?? {}, (reply) => {
          if (reply.successful) resolve(reply)
          else reject(new OfficialClientError(`handshake failed: ${reply.error ?? JSON.stringify(reply)}`, reply))
        })
      })
      return withDeadline(p, timeoutMs, `official client handshake to ${url}`)
    },
    subscribe(channel, onMessage) {
      let handle: SubscriptionHandle | undefined
      const p = new Promise<SubscriptionHandle>((resolve, reject) => {
        handle = cometd.subscribe(channel, onMessage, (reply) => {
          if (reply.successful) resolve(handle!)
          else reject(new OfficialClientError(`subscribe ${channel} failed: ${reply.error ?? 'no error'}`, reply))
        })
      })
      return withDeadline(p, timeoutMs, `official client subscribe ${channel}`)
    },
    unsubscribe(handle) {
      const p = new Promise<Message>((resolve) => cometd.unsubscribe(handle, resolve))
      return withDeadline(p, timeoutMs, 'official client unsubscribe')
    },
    publish(channel, data) {
      const p = new Promise<Message>((resolve) => cometd.publish(channel, data, resolve))
      return withDeadline(p, timeoutMs, `official client publish ${channel}`)
    },
    remoteCall(target, data, callTimeoutMs = timeoutMs) {
      const p = new Promise<Message>((resolve) => cometd.remoteCall(target, data, callTimeoutMs, resolve))
      return withDeadline(p, callTimeoutMs + timeoutMs, `official client remoteCall ${target}`)
    },
    disconnect() {
      disconnecting ??= (async () => {
        if (cometd.isDisconnected()) return
        const p = new Promise<void>((resolve) => cometd.disconnect(() => resolve()))
        await withDeadline(p, 2000, 'official client disconnect').catch(() => undefined)
      })()
      return disconnecting
    },
  }
}
