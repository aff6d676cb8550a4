/**
 * Transport negotiation for one session: the transports by connection type (at most one of each, made on first
 * use), whether the server refused the websocket upgrade, the transport chosen by the last handshake, and the
 * handshake message that offers our connection types.
 */
import { originOutcome } from './connect-gate.js'
import { ClientError, TransportError, WebSocketUpgradeError } from './errors.js'
import type { CometdError } from './errors.js'
import type { Headers } from './extensions.js'
import type { ConnectionType, Logger } from './options.js'
import { parsePayload } from './protocol/codec.js'
import type { Message, Payload } from './protocol/message.js'
import { proxyFor } from './proxy.js'
import type { ResolvedOptions } from './session-options.js'
import { LongPollingTransport } from './transport/long-polling.js'
import { SessionCookieJar } from './transport/transport.js'
import type { Transport, TransportContext } from './transport/transport.js'
import { WebSocketTransport } from './transport/websocket.js'

/** What the transports read from the session that owns them, and where they hand what they receive. */
export interface TransportsHost {
  readonly url: string
  readonly options: ResolvedOptions
  readonly logger: Logger
  receive: (payload: Payload, headers: Headers | null) => void | Promise<void>
  closed: (transport: Transport, error: Error) => void
  /** a failure worth telling the user about now (emitted as `transportError`) */
  transportError: (error: CometdError) => void
}

export class Transports {
  readonly #host: TransportsHost
  #byType = new Map<ConnectionType, Transport>()
  #cookies = new SessionCookieJar()
  /** the server refused the websocket upgrade: not tried again in this open() */
  wsRefused = false
  /** the transport the last handshake chose (null before one, and after release) */
  current: Transport | null = null

  constructor (host: TransportsHost) {
    this.#host = host
  }

  /** A fresh start for open(): no transport, no cookie, websocket allowed again. */
  reset (): void {
    this.#cookies = new SessionCookieJar()
    this.#byType = new Map()
    this.current = null
    this.wsRefused = false
  }

  /** Forgets every transport and closes them all. */
  async closeAll (): Promise<void> {
    const transports = [...this.#byType.values()]
    this.#byType.clear()
    this.current = null
    await Promise.all(transports.map(async (t) => await t.close().catch(() => {})))
  }

  get (type: ConnectionType): Transport {
    let transport = this.#byType.get(type)
    if (transport === undefined) {
      transport = type === 'websocket' ? new WebSocketTransport(this.#context()) : new LongPollingTransport(this.#context())
      this.#byType.set(type, transport)
    }
    return transport
  }

  /** The connection types to try a handshake over, in our order of preference. */
  candidates (): ConnectionType[] {
    const candidates = this.#host.options.connectionTypes.filter((type) => type !== 'websocket' || !this.wsRefused)
    if (candidates.length === 0) throw new ClientError('The server refused the websocket upgrade and long-polling is not allowed')
    return candidates
  }

  /**
   * Tries `attempt` (a handshake) over each candidate type in turn until one replies, remembering a refused websocket
   * upgrade. `failed` runs first after each failure (the session throws there when it was closed meanwhile).
   */
  async firstReply (
    candidates: ConnectionType[], attempt: (transport: Transport) => Promise<Message>, failed: () => void
  ): Promise<{ reply: Message, used: Transport }> {
    let lastError: unknown = null
    for (const type of candidates) {
      const transport = this.get(type)
      try {
        return { reply: await attempt(transport), used: transport }
      } catch (error) {
        failed()
        lastError = error
        if (type === 'websocket' && error instanceof WebSocketUpgradeError) this.wsRefused = true
        if (!(error instanceof TransportError)) throw error
        this.#host.logger.debug({ err: error, type }, 'handshake failed over this transport')
        // the origin refused: say so now (the next try may wait for the connect gate), not only when all failed
        if (originOutcome(error) === 'refused' && candidates.at(-1) !== type) this.#host.transportError(error)
      }
    }
    if (this.wsRefused && !this.#host.options.connectionTypes.includes('long-polling')) {
      throw new ClientError('The server does not accept websocket connections and only websocket was allowed', { cause: lastError })
    }
    throw lastError
  }

  /**
   * After a successful handshake over `used`: choose, in our order of preference, a type the server supports
   * (websocket only if it worked or was not tried), make it current and close the others.
   */
  choose (reply: Message, used: Transport, candidates: ConnectionType[]): ConnectionType {
    const offered = Array.isArray(reply.supportedConnectionTypes) ? reply.supportedConnectionTypes : [used.type]
    const wsFailed = used.type !== 'websocket' && candidates.includes('websocket')
    const chosen = this.#host.options.connectionTypes
      .find((type) => offered.includes(type) && !(type === 'websocket' && (wsFailed || this.wsRefused)))
    if (chosen === undefined) {
      throw new ClientError('None of the connection types offered by the server are supported.')
    }
    this.current = this.get(chosen)
    for (const [type, transport] of this.#byType) {
      if (type !== chosen) { this.#byType.delete(type); void transport.close() }
    }
    return chosen
  }

  /** The /meta/handshake message: the handshake props, our connection types and the advice we ask for. */
  handshakeMessage (): Message {
    const options = this.#host.options
    const props = options.handshakeProps
    const message: Message = {
      ...props,
      channel: '/meta/handshake',
      version: '1.0',
      minimumVersion: '1.0',
      supportedConnectionTypes: [...options.connectionTypes],
      advice: { timeout: options.advice.timeout, interval: options.advice.interval }
    }
    if (props.ext !== undefined) message.ext = structuredClone(props.ext as Record<string, unknown>)
    return message
  }

  #context (): TransportContext {
    const host = this.#host
    const options = host.options
    return {
      url: new URL(host.url),
      proxy: proxyFor(options.proxy, new URL(host.url)),
      cookies: this.#cookies,
      tls: options.tls,
      logger: host.logger,
      maxNetworkDelayMs: options.maxNetworkDelayMs,
      pingIntervalMs: options.pingIntervalMs,
      appendMessageTypeToURL: options.appendMessageTypeToURL,
      stringify: options.stringify,
      parse: (text) => parsePayload(text, options.parse),
      receive (payload, headers) { return host.receive(payload, headers) },
      closed (transport, error) { host.closed(transport, error) }
    }
  }
}
