/** Bayeux message shapes (bayeux.md §1.2). */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue }

export type Reconnect = 'retry' | 'handshake' | 'none'

export interface Advice {
  reconnect?: Reconnect
  /** ms the server holds a /meta/connect */
  timeout?: number
  /** ms to wait before the next /meta/connect */
  interval?: number
  /** ms the server keeps a session without a connect */
  maxInterval?: number
  'multiple-clients'?: boolean
  [key: string]: unknown
}

/** One Bayeux message. Fields beyond the listed ones pass through untouched. */
export interface Message {
  channel: string
  id?: string
  clientId?: string
  data?: unknown
  ext?: Record<string, unknown>
  advice?: Advice
  successful?: boolean
  error?: string
  subscription?: string | string[]
  connectionType?: string
  supportedConnectionTypes?: string[]
  version?: string
  minimumVersion?: string
  [key: string]: unknown
}

/** A batch of messages: one HTTP body or one websocket frame. */
export type Payload = Message[]

/** Plain object check that rejects arrays and null. */
export function isRecord (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** A message is a reply only if it carries `successful` (Faye delivers events with the publisher's id). */
export function isReply (message: Message): boolean {
  return typeof message.successful === 'boolean'
}

/** An event is a non-meta message that carries `data` and is not a reply. */
export function isEvent (message: Message): boolean {
  return !isReply(message) && 'data' in message && !message.channel.startsWith('/meta/')
}
