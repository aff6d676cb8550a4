/**
 * Remote calls in flight (request/response over /service channels): each waits for the server's answer — the
 * message with the call's id, or the next one on its channel when the server leaves the id out — under its own
 * deadline. The client publishes the request; this holds what answers it.
 */
import { ServerError, TransportTimeoutError } from './errors.js'
import type { Message } from './protocol/message.js'

interface Call {
  channel: string
  resolve: (data: unknown) => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout
}

export class RemoteCalls {
  readonly #calls = new Map<string, Call>()

  /** Registers the call of request `id`; the promise settles with the answer's data, or rejects at the deadline. */
  await (id: string, channel: string, timeoutMs: number): Promise<unknown> {
    const answer = new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#calls.delete(id)
        reject(new TransportTimeoutError(`No answer from ${channel} within ${timeoutMs} ms`))
      }, timeoutMs)
      timer.unref()
      this.#calls.set(id, { channel, resolve, reject, timer })
    })
    answer.catch(() => {}) // the caller may stop listening (its publish failed): no unhandled rejection
    return answer
  }

  /** The request itself failed: the call ends with it. */
  end (id: string): void {
    this.#take(id)
  }

  /** An event on a /service channel: the answer of a call? (by id, else the oldest call on that channel) */
  answer (message: Message): boolean {
    let id = message.id
    if (id === undefined || this.#calls.get(id)?.channel !== message.channel) {
      id = undefined
      for (const [callId, call] of this.#calls) {
        if (call.channel === message.channel) { id = callId; break }
      }
    }
    if (id === undefined) return false
    const call = this.#take(id)!
    if (message.successful === false) call.reject(new ServerError('Service request failed.', message))
    else call.resolve(message.data)
    return true
  }

  /** An unsuccessful reply that no request awaits: the failure of a call whose publish was already acknowledged. */
  refused (message: Message): void {
    if (message.successful !== false || message.id === undefined) return
    this.#take(message.id)?.reject(new ServerError('Service request failed.', message))
  }

  rejectAll (error: Error): void {
    for (const id of [...this.#calls.keys()]) this.#take(id)?.reject(error)
  }

  #take (id: string): Call | undefined {
    const call = this.#calls.get(id)
    if (call === undefined) return undefined
    clearTimeout(call.timer)
    this.#calls.delete(id)
    return call
  }
}
