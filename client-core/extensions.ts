/**
 * Extensions see every payload (a list of messages) in both directions, with the HTTP headers of the request
 * (outgoing) or of the response (incoming; null over websocket). Like aiocometd: outgoing runs in list order then
 * `auth` last; incoming runs `auth` first then the list. A hook may change messages in place or remove them from the array.
 */
import type { Message, Payload } from './protocol/message.js'

export type Headers = Record<string, string>

export abstract class Extension {
  /** Called before a payload is sent. `headers` may be changed: they go on that HTTP request (or ws upgrade). */
  async outgoing (_payload: Payload, _headers: Headers): Promise<void> {}
  /** Called on every received payload, before the client looks at it. */
  async incoming (_payload: Payload, _headers?: Headers | null): Promise<void> {}
  /** A subscription was refused with this reply; return true to have the client subscribe once more. */
  async subscribeFailed (_channel: string, _reply: Message): Promise<boolean> { return false }
}

/**
 * An extension that can (re)authenticate. `authenticate()` runs after the server rejects a request for
 * authentication (401, or 403 other than "Unknown client"); the request is then sent once more, with
 * outgoing hooks (and so fresh headers) applied again.
 */
export abstract class AuthExtension extends Extension {
  abstract authenticate (): Promise<void>
}
