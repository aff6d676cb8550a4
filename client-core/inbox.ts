/**
 * The receive side of a session: every payload a transport hands over runs the incoming hooks (auth first, then
 * the extensions), then each message goes where it belongs — a reply to the request that awaits it (through the
 * outbox, re-sent once after re-authentication when the credentials were refused), an event to the client.
 */
import type { ClientStats } from './events.js'
import { Extension } from './extensions.js'
import type { Headers } from './extensions.js'
import type { Logger } from './options.js'
import type { Outbox } from './outbox.js'
import { isReply } from './protocol/message.js'
import type { Message, Payload } from './protocol/message.js'
import { authFailure } from './session-options.js'
import type { ResolvedOptions } from './session-options.js'

/** What the inbox reads from the session that owns it, and where it hands what is not a reply. */
export interface InboxHost {
  readonly options: ResolvedOptions
  readonly logger: Logger
  readonly counters: ClientStats
  readonly outbox: Outbox
  /** a message on a non-meta channel carrying data */
  onEvent: (message: Message) => void
  /** a reply no request awaits (for instance one whose request timed out) */
  onUnmatchedReply: (message: Message) => void
}

export class Inbox {
  readonly #host: InboxHost
  /** the incoming hooks to await on every payload: auth, then the extensions; those that do not override incoming() are left out */
  readonly #incomingHooks: Extension[]

  constructor (host: InboxHost) {
    this.#host = host
    const { auth, extensions } = host.options
    this.#incomingHooks = [...(auth === null ? [] : [auth]), ...extensions]
      .filter((extension) => extension.incoming !== Extension.prototype.incoming)
  }

  /**
   * A received payload. Without incoming hooks to await it is delivered synchronously and nothing is returned, so
   * a burst of websocket frames costs no promise per frame; otherwise the hooks run in order (auth first), then it is
   * delivered.
   */
  receive (payload: Payload, headers: Headers | null): void | Promise<void> {
    if (this.#incomingHooks.length === 0) {
      this.#deliver(payload)
      return
    }
    return this.#receiveAfterHooks(payload, headers)
  }

  async #receiveAfterHooks (payload: Payload, headers: Headers | null): Promise<void> {
    for (const extension of this.#incomingHooks) await extension.incoming(payload, headers)
    this.#deliver(payload)
  }

  #deliver (payload: Payload): void {
    const host = this.#host
    host.counters.messagesIn += payload.length
    host.counters.lastMessageAt = Date.now()
    for (const message of payload) {
      if (isReply(message)) {
        this.#reply(message)
        continue
      }
      if ('data' in message && !message.channel.startsWith('/meta/')) {
        try {
          host.onEvent(message)
        } catch (error) {
          host.logger.error({ err: error, channel: message.channel }, 'message dispatch failed')
        }
      }
    }
  }

  #reply (message: Message): void {
    const outbox = this.#host.outbox
    const entry = outbox.matchReply(message)
    if (entry === undefined) {
      this.#host.onUnmatchedReply(message)
      return
    }
    if (!(message.successful === true) && authFailure(message) && this.#host.options.auth !== null &&
        !entry.authRetried && !message.channel.startsWith('/meta/')) {
      // Re-authenticate and send once more with fresh headers.
      outbox.retryAfterAuth(entry)
      return
    }
    outbox.settle(entry, message, null)
  }
}
