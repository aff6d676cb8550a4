/**
 * Turns a received body or frame into a checked payload. Anything that is not a Bayeux payload is a TransportError.
 * Runs once per received message: the check reads each field once, allocates nothing for a well-formed message and
 * returns the parsed array itself (its messages are normalised in place).
 */
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
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) checkMessage(value[i], i)
    return value as Payload
  }
  // The spec allows a bare object; we accept it and always send arrays.
  if (typeof value === 'object' && value !== null) {
    checkMessage(value, 0)
    return [value as Message]
  }
  throw new TransportError(`The server sent a ${value === null ? 'null' : typeof value} where a message array was expected`)
}

function checkMessage (value: unknown, index: number): void {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new TransportError(`Message ${index} of the reply is not an object`)
  }
  const message = value as Message
  const channel = message.channel as unknown
  if (typeof channel !== 'string' || channel === '') {
    throw new TransportError(`Message ${index} of the reply has no channel`)
  }
  const successful = message.successful as unknown
  if (typeof successful !== 'boolean' && (successful !== undefined || 'successful' in message)) {
    throw new TransportError(`Message ${index} of the reply has a non-boolean "successful"`)
  }
  const id = message.id as unknown
  if (id !== undefined && typeof id !== 'string') {
    if (typeof id === 'number') message.id = String(id)
    else delete message.id
  }
  const clientId = message.clientId as unknown
  if (clientId !== undefined && typeof clientId !== 'string') delete message.clientId
  const advice = message.advice as unknown
  if (advice !== undefined && !isRecord(advice)) delete message.advice
  const ext = message.ext as unknown
  if (ext !== undefined && !isRecord(ext)) delete message.ext
  const error = message.error as unknown
  if (error !== undefined && typeof error !== 'string') message.error = String(error)
  const types = message.supportedConnectionTypes as unknown
  if (types !== undefined && !isStringArray(types)) delete message.supportedConnectionTypes
}

function isStringArray (value: unknown): boolean {
  if (!Array.isArray(value)) return false
  for (let i = 0; i < value.length; i++) if (typeof value[i] !== 'string') return false
  return true
}
