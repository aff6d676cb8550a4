/**
 * The Salesforce replay extension: durable streaming from a stored position.
 * - The handshake says `ext.replay: true`.
 * - Every /meta/subscribe (first subscribe and every resubscribe after a re-handshake) carries
 *   `ext.replay: { "<channel>": <position> }`: the last replayId seen on that channel, or the channel's start policy
 *   (-1 = only new events, -2 = everything the server retains) when none is known yet.
 * - Each event's replayId (`data.event.replayId`, or the message `id` in the compact format) becomes the channel's
 *   position.
 * - When the server refuses a position as invalid (`400::The replayId {x} you provided was invalid…`, e.g. older than
 *   its retention), the channel falls back to the `fallback` policy, the gap is reported through `onFallback`, and the
 *   client subscribes once more.
 * Positions are opaque: never computed, only stored and sent back.
 */
import { Extension } from '../extensions.js'
import type { Headers } from '../extensions.js'
import { isRecord } from '../protocol/message.js'
import type { Message, Payload } from '../protocol/message.js'

export type ReplayPosition = number | string
export type ReplayPolicy = -1 | -2

export interface ReplayFallback {
  channel: string
  /** the position the server refused */
  refused: ReplayPosition
  /** the policy used instead */
  fallback: ReplayPolicy
  error: string
}

export interface ReplayExtensionOptions {
  /** Known positions per channel, e.g. from a checkpoint file. */
  positions?: Record<string, ReplayPosition>
  /** Where a channel without a position starts: -1 (default) or -2; per channel with an object. */
  start?: ReplayPolicy | Record<string, ReplayPolicy>
  /** Where a channel goes when its position is refused as invalid (default -2: everything still retained). */
  fallback?: ReplayPolicy
  onFallback?: (event: ReplayFallback) => void
  /** Called after each event moved a channel's position. */
  onPosition?: (channel: string, position: ReplayPosition, message: Message) => void
}

export function replayIdOf (message: Message): ReplayPosition | undefined {
  const data = message.data
  if (isRecord(data) && isRecord(data.event)) {
    const id = data.event.replayId
    if (typeof id === 'number' || typeof id === 'string') return id
  }
  // Compact format: data is [orgId, schemaId, payload] and the replayId travels as the message id.
  if (Array.isArray(data) && message.id !== undefined) {
    const id = Number(message.id)
    return Number.isSafeInteger(id) ? id : message.id
  }
  return undefined
}

export class ReplayExtension extends Extension {
  readonly #positions = new Map<string, ReplayPosition>()
  readonly #options: ReplayExtensionOptions
  /** The server said `ext.replay: true` in the last handshake. */
  serverSupportsReplay = false

  constructor (options: ReplayExtensionOptions = {}) {
    super()
    this.#options = options
    for (const [channel, position] of Object.entries(options.positions ?? {})) this.#positions.set(channel, position)
  }

  /** The position a subscribe to `channel` sends now. */
  positionFor (channel: string): ReplayPosition {
    const known = this.#positions.get(channel)
    if (known !== undefined) return known
    const start = this.#options.start
    if (typeof start === 'object') return start[channel] ?? -1
    return start ?? -1
  }

  /** Every known position (last replayId seen per channel). */
  get positions (): ReadonlyMap<string, ReplayPosition> { return this.#positions }

  setPosition (channel: string, position: ReplayPosition): void {
    this.#positions.set(channel, position)
  }

  override async outgoing (payload: Payload, _headers: Headers): Promise<void> {
    for (const message of payload) {
      if (message.channel === '/meta/handshake') {
        message.ext = { ...message.ext, replay: true }
      } else if (message.channel === '/meta/subscribe' && typeof message.subscription === 'string') {
        const replay = isRecord(message.ext?.replay) ? message.ext.replay : {}
        message.ext = { ...message.ext, replay: { ...replay, [message.subscription]: this.positionFor(message.subscription) } }
      }
    }
  }

  override async incoming (payload: Payload): Promise<void> {
    for (const message of payload) {
      if (message.channel === '/meta/handshake' && message.successful === true) {
        this.serverSupportsReplay = message.ext?.replay === true
        continue
      }
      if (message.channel.startsWith('/meta/') || !('data' in message) || typeof message.successful === 'boolean') continue
      const position = replayIdOf(message)
      if (position === undefined) continue
      this.#positions.set(message.channel, position)
      this.#options.onPosition?.(message.channel, position, message)
    }
  }

  /** A subscribe was refused: when it was for an invalid position, fall back and ask for one more try. */
  override async subscribeFailed (channel: string, reply: Message): Promise<boolean> {
    const error = typeof reply.error === 'string' ? reply.error : ''
    if (!/^400:/.test(error) || !/replay/i.test(error)) return false
    const refused = this.positionFor(channel)
    const fallback = this.#options.fallback ?? -2
    if (refused === fallback) return false
    this.#positions.set(channel, fallback)
    this.#options.onFallback?.({ channel, refused, fallback, error })
    return true
  }
}
