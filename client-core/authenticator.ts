/**
 * The session's calls of the auth extension: one authenticate() at a time (callers during a run share it), its
 * failure as a ClientError with the cause.
 */
import { ClientError } from './errors.js'
import type { AuthExtension } from './extensions.js'
import type { Logger } from './options.js'

export class Authenticator {
  readonly #auth: AuthExtension | null
  readonly #logger: Logger
  #running: Promise<void> | null = null

  constructor (auth: AuthExtension | null, logger: Logger) {
    this.#auth = auth
    this.#logger = logger
  }

  /** (Re)authenticates; rejects with a ClientError. Does nothing without an auth extension. */
  async authenticate (): Promise<void> {
    const auth = this.#auth
    if (auth === null) return
    this.#running ??= auth.authenticate().finally(() => { this.#running = null })
    try {
      await this.#running
    } catch (error) {
      throw new ClientError('Authentication failed', { cause: error })
    }
  }

  /** Like authenticate(), for the reconnect path: a failure is logged, the next attempt tells the rest. */
  async authenticateOrWarn (): Promise<void> {
    await this.authenticate().catch((err: unknown) => { this.#logger.warn({ err }, 'authenticate() failed') })
  }
}
