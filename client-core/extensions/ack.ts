/**
 * The CometD acknowledgement extension (client side): reliable, ordered server→client delivery within a session.
 * The handshake asks for it (`ext.ack: true`); a server that supports it (CometD, cometd-nodejs-server's
 * AcknowledgedMessagesExtension) answers `ext.ack: true` (or `{enabled, batch}`), numbers each batch of events it
 * delivers in a connect reply (`ext.ack: N`), and re-sends every batch after the last one the next connect
 * acknowledges. So events in a reply lost with a broken connection arrive again after the reconnect — once, since a
 * batch is acknowledged only after its whole reply was received. It cannot help across a session expiry.
 */
import { Extension } from '../extensions.js'
import type { Headers } from '../extensions.js'
import { isRecord } from '../protocol/message.js'
import type { Payload } from '../protocol/message.js'

export class AckExtension extends Extension {
  #serverSupportsAcks = false
  #batch = 0

  /** Whether the server agreed to acknowledged delivery in the last handshake. */
  get enabled (): boolean { return this.#serverSupportsAcks }
  /** The last batch received (sent back with the next connect). */
  get batch (): number { return this.#batch }

  override async outgoing (payload: Payload, _headers: Headers): Promise<void> {
    for (const message of payload) {
      if (message.channel === '/meta/handshake') {
        message.ext = { ...message.ext, ack: true }
        this.#serverSupportsAcks = false
        this.#batch = 0
      } else if (message.channel === '/meta/connect' && this.#serverSupportsAcks) {
        message.ext = { ...message.ext, ack: this.#batch }
      }
    }
  }

  override async incoming (payload: Payload): Promise<void> {
    for (const message of payload) {
      const ack = message.ext?.ack
      if (message.channel === '/meta/handshake' && message.successful === true) {
        if (isRecord(ack)) {
          this.#serverSupportsAcks = ack.enabled === true
          if (typeof ack.batch === 'number') this.#batch = ack.batch
        } else {
          this.#serverSupportsAcks = ack === true
        }
      } else if (message.channel === '/meta/connect' && message.successful === true && this.#serverSupportsAcks &&
                 typeof ack === 'number') {
        this.#batch = ack
      }
    }
  }
}
