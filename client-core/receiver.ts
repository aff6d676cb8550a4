/**
 * One reader waiting in receive(): it gives up (TransportTimeoutError) once the connection has been down for
 * `connectionTimeoutMs` while it waited — the client itself keeps trying, and a later receive() can succeed.
 */
import { TransportTimeoutError } from './errors.js'

/** What a waiting reader reads from its client. */
export interface ReceiverHost {
  /** when the connection went down, null while connected */
  readonly downSince: number | null
  readonly connected: boolean
  readonly connectionTimeoutMs: number | null
}

export class Receiver {
  readonly #started = Date.now()
  readonly #host: ReceiverHost
  readonly #fail: (error: Error) => void
  #timer: NodeJS.Timeout | null = null

  constructor (host: ReceiverHost, fail: (error: Error) => void) {
    this.#host = host
    this.#fail = fail
  }

  /** Called on every state change: the deadline runs only while the connection is down. */
  arm (): void {
    const { connectionTimeoutMs: limit, downSince: down, connected } = this.#host
    if (limit === null || limit <= 0 || down === null || connected) {
      this.stop()
      return
    }
    if (this.#timer !== null) return
    const since = Math.max(down, this.#started)
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.fail(new TransportTimeoutError('Lost connection with the server.'))
    }, Math.max(0, since + limit - Date.now()))
    this.#timer.unref()
  }

  /** The wait ends with `error` (the deadline, or the client released). */
  fail (error: Error): void {
    this.stop()
    this.#fail(error)
  }

  stop (): void {
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
  }
}
