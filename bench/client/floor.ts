/**
 * The floor of subscriber CPU: the least a Bayeux subscriber can do. No library — a handshake, a subscribe and the
 * connect loop written out by hand, each received body or frame `JSON.parse`d once and every event's data handed to
 * the listener. No checks, no reconnection, no extensions, no timeouts beyond the run's: a yardstick, not a client.
 *
 *   websocket     `ws` straight to the server (handshake, connect and subscribe on the socket)
 *   long-polling  two undici `Client`s (the held /meta/connect and the rest), `body.text()` then `JSON.parse`
 *
 * It only subscribes: the subscriber-CPU runs pair it with a client-core publisher (sub-cpu.ts).
 */
import { Client } from 'undici'
import { WebSocket } from 'ws'
import type { BenchClient, TransportName } from './adapters.js'

interface Msg { channel: string, data?: unknown, successful?: boolean, clientId?: string, id?: string, subscription?: string }
type Listener = (data: unknown) => void

/** The part both transports share: meta replies resolve their request by id, events go to the listeners. */
class FloorSession {
  clientId = ''
  #nextId = 0
  readonly #waiting = new Map<string, (reply: Msg) => void>()
  readonly #listeners = new Map<string, Listener>()
  onConnectReply: () => void = () => {}

  message (channel: string, fields: Record<string, unknown>): Msg {
    return { channel, id: String(++this.#nextId), ...(this.clientId === '' ? {} : { clientId: this.clientId }), ...fields }
  }

  /** The reply to `msg` (a meta request other than the connect, whose replies only restart the loop). */
  reply (msg: Msg): Promise<Msg> {
    return new Promise<Msg>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`floor: no reply to ${msg.channel}`)), 10_000)
      timer.unref()
      this.#waiting.set(msg.id!, (m) => {
        clearTimeout(timer)
        if (m.successful === true) resolve(m)
        else reject(new Error(`floor: ${msg.channel} refused: ${JSON.stringify(m)}`))
      })
    })
  }

  listen (channel: string, listener: Listener): void { this.#listeners.set(channel, listener) }

  receive (text: string): void {
    const messages = JSON.parse(text) as Msg[]
    for (let i = 0; i < messages.length; i++) {
      const m = messages[i]!
      if (m.data !== undefined) {
        const listener = this.#listeners.get(m.channel)
        if (listener !== undefined) listener(m.data)
      } else if (m.channel === '/meta/connect') {
        this.onConnectReply()
      } else if (m.id !== undefined) {
        const waiter = this.#waiting.get(m.id)
        this.#waiting.delete(m.id)
        waiter?.(m)
      }
    }
  }
}

export function floorClient (url: string, transport: TransportName): BenchClient {
  return transport === 'websocket' ? floorWebSocket(url) : floorLongPolling(url)
}

type Request = (channel: string, fields: Record<string, unknown>) => Promise<Msg>

function subscribeOnly (session: FloorSession, request: Request): Pick<BenchClient, 'subscribe' | 'publish'> {
  return {
    subscribe: async (channel, onData) => {
      session.listen(channel, onData)
      await request('/meta/subscribe', { subscription: channel })
    },
    publish: async () => { throw new Error('the floor subscriber does not publish') }
  }
}

function floorWebSocket (url: string): BenchClient {
  const session = new FloorSession()
  let socket: WebSocket | null = null
  const send = (msg: Msg): void => socket!.send(JSON.stringify([msg]))
  const request = async (channel: string, fields: Record<string, unknown>): Promise<Msg> => {
    const msg = session.message(channel, fields)
    const reply = session.reply(msg)
    send(msg)
    return await reply
  }
  const connect = (): void => send(session.message('/meta/connect', { connectionType: 'websocket' }))
  return {
    connect: async () => {
      socket = new WebSocket(url.replace(/^http/, 'ws'))
      const open = socket
      await new Promise<void>((resolve, reject) => { open.once('open', resolve); open.once('error', reject) })
      open.on('message', (data) => session.receive(data.toString()))
      const hs = await request('/meta/handshake', { version: '1.0', supportedConnectionTypes: ['websocket'] })
      session.clientId = hs.clientId!
      session.onConnectReply = connect
      connect()
    },
    ...subscribeOnly(session, request),
    transport: () => socket === null ? 'none' : 'websocket',
    close: async () => {
      const open = socket
      socket = null
      if (open === null) return
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1_000)
        open.once('close', () => { clearTimeout(timer); resolve() })
        open.close()
      })
    }
  }
}

function floorLongPolling (url: string): BenchClient {
  const target = new URL(url)
  const session = new FloorSession()
  const held = new Client(target.origin)
  const other = new Client(target.origin)
  let cookie = ''
  let open = true
  const post = async (client: Client, msg: Msg): Promise<void> => {
    const response = await client.request({
      method: 'POST',
      path: target.pathname,
      headers: { 'content-type': 'application/json;charset=UTF-8', ...(cookie === '' ? {} : { cookie }) },
      body: JSON.stringify([msg])
    })
    const setCookie = response.headers['set-cookie']
    if (setCookie !== undefined) cookie = (Array.isArray(setCookie) ? setCookie : [setCookie]).map((c) => c.split(';')[0]).join('; ')
    session.receive(await response.body.text())
  }
  const request = async (channel: string, fields: Record<string, unknown>): Promise<Msg> => {
    const msg = session.message(channel, fields)
    const reply = session.reply(msg)
    await post(other, msg)
    return await reply
  }
  const poll = (): void => {
    if (!open) return
    post(held, session.message('/meta/connect', { connectionType: 'long-polling' })).catch(() => {})
  }
  return {
    connect: async () => {
      const hs = await request('/meta/handshake', { version: '1.0', supportedConnectionTypes: ['long-polling'] })
      session.clientId = hs.clientId!
      session.onConnectReply = poll
      poll()
    },
    ...subscribeOnly(session, request),
    transport: () => 'long-polling',
    close: async () => {
      open = false
      await Promise.all([held.destroy(), other.destroy()]).catch(() => {})
    }
  }
}
