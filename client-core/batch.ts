/**
 * Pure helpers of the outgoing batching: serializing a payload message by message, and cutting the serialized
 * parts into bodies under a byte cap.
 */
import { DEFAULTS } from './options.js'
import type { Message } from './protocol/message.js'
import type { ConnectionType } from './options.js'

/** After an HTTP 413 the byte cap is halved, but not below this (Salesforce's limit is 32,768 bytes). */
export const MIN_BODY_CAP = 8 * 1024

export interface Serialized<O> {
  /** the JSON of each message that could be serialized */
  parts: string[]
  /** the owner of each part (null: a message an extension added) */
  sent: Array<O | null>
  /** the messages of the parts */
  messages: Message[]
}

/** Serializes message by message; one that cannot be serialized is reported to `failed` and left out. */
export function serializeEach<O> (payload: Message[], owners: Array<O | null>, stringify: (value: unknown) => string,
  failed: (owner: O | null, message: Message, error: unknown) => void): Serialized<O> {
  const parts: string[] = []
  const sent: Array<O | null> = []
  const messages: Message[] = []
  for (let i = 0; i < payload.length; i++) {
    const message = payload[i]!
    let part: string
    try {
      part = stringify(message)
    } catch (error) {
      // Data that cannot be serialized (a cycle, a BigInt, nesting deeper than the stack) fails alone.
      failed(owners[i] ?? null, message, error)
      continue
    }
    parts.push(part)
    sent.push(owners[i] ?? null)
    messages.push(message)
  }
  return { parts, sent, messages }
}

/** The length of the JSON array of these parts. */
export function joinedLength (parts: string[]): number {
  let total = 1
  for (const part of parts) total += part.length + 1
  return total
}

/** The end (exclusive) of the body that starts at `start`: at least one part, at most `maxCount`, under `cap` bytes. */
export function chunkEnd (parts: string[], start: number, maxCount: number, cap: number): number {
  let end = start + 1
  let bytes = 2 + parts[start]!.length
  while (end < parts.length && end - start < maxCount && bytes + 1 + parts[end]!.length <= cap) {
    bytes += 1 + parts[end]!.length
    end++
  }
  return end
}

/** The byte cap of one request body or frame: the configured one (or the transport's default), within a learnt body cap. */
export function byteCap (type: ConnectionType, configured: number | null, bodyCap: number | null): number {
  const cap = configured ?? (type === 'websocket' ? DEFAULTS.maxFrameBytes : DEFAULTS.maxBatchBytes)
  return type === 'long-polling' && bodyCap !== null ? Math.min(cap, bodyCap) : cap
}

/** The cap after an HTTP 413 refused a body of `rejectedBytes`: half of it, not below MIN_BODY_CAP, never raised. */
export function loweredBodyCap (before: number | null, rejectedBytes: number): number {
  return Math.max(MIN_BODY_CAP, Math.min(before ?? Infinity, Math.floor(rejectedBytes / 2)))
}
