/**
 * cometd-bridge/client — a CometD (Bayeux) client for Node: long-polling (undici) and websocket (ws) transports,
 * advice-driven reconnection with automatic resubscription, extensions and auth, a bounded receive buffer, typed errors.
 */
export { Client } from './client.js'
export type { MessageListener, SubscribeOptions, PublishOptions } from './client.js'
export { ALL_CONNECTION_TYPES, ConnectionType, DEFAULTS } from './options.js'
export type { ClientOptions, Logger, TlsOptions, BackoffOptions, HeadersOption } from './options.js'
export { Extension, AuthExtension } from './extensions.js'
export type { Headers } from './extensions.js'
export {
  CometdError, ClientError, ClientInvalidOperation, TransportError, TransportTimeoutError,
  TransportConnectionClosed, ServerError, HttpStatusError, MessageEncodingError, MessageTooLargeError, WebSocketUpgradeError, ProxyError, parseBayeuxError
} from './errors.js'
export type { BayeuxErrorFields } from './errors.js'
export { ClientState } from './events.js'
export type { StateChange, HandshakeEvent, ResubscribeFailed, OverflowEvent, ClientEvents, ClientStats } from './events.js'
export type { Message, Payload, Advice, JsonValue } from './protocol/message.js'
export { ChannelRouter, channelKind, channelMatches, channelProblem, isWildcard, matchingPatterns } from './protocol/channel.js'
export type { ChannelKind } from './protocol/channel.js'
export { Backoff } from './backoff.js'
export { AckExtension } from './extensions/ack.js'
export { ReplayExtension, replayIdOf } from './extensions/replay.js'
export type { ReplayExtensionOptions, ReplayFallback, ReplayPosition, ReplayPolicy } from './extensions/replay.js'
export { BearerAuth } from './extensions/bearer.js'
export type { BearerAuthOptions } from './extensions/bearer.js'
