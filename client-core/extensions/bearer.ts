/**
 * Bearer-token authentication with refresh, e.g. for the Salesforce Streaming API: the token from `getToken()` goes
 * as `Authorization: Bearer …` on every HTTP request and websocket upgrade. After an authentication failure (HTTP
 * 401/403, `401::Authentication invalid`, `403::Handshake denied`) the client calls `authenticate()`, which asks
 * `getToken()` for a new token, and then re-handshakes (or re-sends the refused request once).
 */
import { AuthExtension } from '../extensions.js'
import type { Headers } from '../extensions.js'
import type { Payload } from '../protocol/message.js'

export interface BearerAuthOptions {
  /**
   * Returns a valid token; called before the first request (`refused` undefined) and after every authentication
   * failure, with the token the server refused — so that a source can tell a rotation already made (another client
   * of the same source got a new token) from one still to make.
   */
  getToken: (refused?: string) => string | Promise<string>
  /** Header scheme, default 'Bearer' (old Salesforce samples use 'OAuth'). */
  scheme?: string
  /** Called with every new token (never log it). */
  onRefresh?: (refreshes: number) => void
}

export class BearerAuth extends AuthExtension {
  readonly #options: BearerAuthOptions
  #token: Promise<string> | null = null
  /** the token of the last request sent (the one a refusal refers to) */
  #sent: string | undefined
  #refreshes = 0

  constructor (options: BearerAuthOptions) {
    super()
    this.#options = options
  }

  /** How many times a new token was fetched after a failure. */
  get refreshes (): number { return this.#refreshes }

  override async outgoing (_payload: Payload, headers: Headers): Promise<void> {
    this.#token ??= Promise.resolve(this.#options.getToken())
    let token: string
    try {
      token = await this.#token
    } catch (error) {
      this.#token = null
      throw error
    }
    this.#sent = token
    headers.authorization = `${this.#options.scheme ?? 'Bearer'} ${token}`
  }

  async authenticate (): Promise<void> {
    const next = Promise.resolve(this.#options.getToken(this.#sent))
    await next
    this.#token = next
    this.#refreshes++
    this.#options.onRefresh?.(this.#refreshes)
  }
}
