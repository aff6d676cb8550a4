/** The observable side of a Client: its state, why it changed, and counters. */
import type { CometdError } from './errors.js'
import type { ConnectionType } from './options.js'
import type { Message } from './protocol/message.js'

export const ClientState = {
  /** not opened, or closed */
  DISCONNECTED: 'disconnected',
  /** a /meta/handshake is in flight (first or re-handshake) */
  HANDSHAKING: 'handshaking',
  /** handshaken; the first /meta/connect is in flight */
  CONNECTING: 'connecting',
  /** a /meta/connect succeeded; the connect loop runs */
  CONNECTED: 'connected',
  /** the connection was lost; waiting (backoff) before trying again */
  RECONNECTING: 'reconnecting',
  /** close() was called: /meta/disconnect in flight */
  DISCONNECTING: 'disconnecting'
} as const
export type ClientState = typeof ClientState[keyof typeof ClientState]

export interface StateChange {
  from: ClientState
  to: ClientState
  /** why, in a few words: 'open', 'handshake-ok', 'connect-ok', 'network', 'session-unknown', 'advice-none', 'close', … */
  reason: string
  error?: CometdError
  /** when to === 'reconnecting': ms until the next attempt */
  delayMs?: number
}

export interface HandshakeEvent {
  clientId: string
  connectionType: ConnectionType
  /** false for the first handshake after open(); true for a re-handshake (the server lost the session: messages may have been missed) */
  rehandshake: boolean
  reply: Message
}

export interface ResubscribeFailed {
  channel: string
  error: CometdError
  /** true: the server refused it and the subscription is gone; false: a network failure, it is sent again once connected */
  dropped: boolean
}

export interface OverflowEvent {
  /** the message dropped from the receive buffer (the oldest) */
  dropped: Message
  /** how many were dropped since open() */
  droppedTotal: number
}

export interface ClientEvents {
  state: [StateChange]
  handshake: [HandshakeEvent]
  /** a subscription could not be restored after a re-handshake; the subscription is removed */
  resubscribeFailed: [ResubscribeFailed]
  overflow: [OverflowEvent]
  /** a transport or server error the client handled itself (it keeps trying) */
  transportError: [CometdError]
}

export interface ClientStats {
  handshakes: number
  /** times the connection was re-established after a loss (same or new session) */
  reconnects: number
  messagesIn: number
  messagesOut: number
  /** events dropped from a full receive buffer */
  dropped: number
  resubscribeFailures: number
  /** ms since epoch of the last message received from the server, or null */
  lastMessageAt: number | null
}
