/** Turns a received body or frame into a checked payload. Anything that is not a Bayeux payload is a TransportError. */
import { TransportError } from '../errors.js'
import { isRecord } from './message.js'
import type { Message, Payload } from './message.js'

export function parsePayload (text: string, parse: (text: string) => unknown): Payload {
  let value: unknown
  try {
    value = parse(text)
  } catch (error) {
    throw new TransportError(`The server sent invalid JSON: ${JSON.stringify(text.slice(0, 80))}`, { cause: error })
  }
  // The spec allows a bare object; we accept it and always send arrays.
  const list = Array.isArray(value) ? value : isRecord(value) ? [value] : null
  if (list === null) throw new TransportError(`The server sent a ${value === null ? 'null' : typeof value} where a message array was expected`)
  return list.map(checkMessage)
}

function checkMessage (value: unknown, index: number): Message {
  if (!isRecord(value)) throw new TransportError(`Message ${index} of the reply is not an object`)
  if (typeof value.channel !== 'string' || value.channel === '') {
    throw new TransportError(`Message ${index} of the reply has no channel`)
  }
  if ('successful' in value && typeof value.successful !== 'boolean') {
    throw new TransportError(`Message ${index} of the reply has a non-boolean "successful"`)
  }
  const message = value as Message
  if (message.id !== undefined) {
    if (typeof message.id === 'number') message.id = String(message.id)
    else if (typeof message.id !== 'string') delete message.id
  }
  if (message.clientId !== undefined && typeof message.clientId !== 'string') delete message.clientId
  if (message.advice !== undefined && !isRecord(message.advice)) delete message.advice
  if (message.ext !== undefined && !isRecord(message.ext)) delete message.ext
  if (message.error !== undefined && typeof message.error !== 'string') message.error = String(message.error as unknown)
  if (message.supportedConnectionTypes !== undefined &&
      !(Array.isArray(message.supportedConnectionTypes) && message.supportedConnectionTypes.every((t) => typeof t === 'string'))) {
    delete message.supportedConnectionTypes
  }
  return message
}
