/**
 * The shapes of the request side (outbox.ts): a message on its way out, what the outbox reads from its session,
 * and the state of one dispatch in progress.
 */
import type { ClientStats } from './events.js'
import type { Headers } from './extensions.js'
import type { Logger } from './options.js'
import type { Message, Payload } from './protocol/message.js'
import type { ResolvedOptions } from './session-options.js'
import type { Transport } from './transport/transport.js'

/** A message on its way out, and how its reply reaches whoever sent it. */
export interface Outgoing {
  message: Message
  /** settles with the reply (successful or not), or rejects with a transport/client error */
  promise: Promise<Message>
  resolve: (reply: Message) => void
  reject: (error: Error) => void
  settled: boolean
  /** the transport that carried it, once sent */
  transport: Transport | null
  authRetried: boolean
  /** the deadline (epoch ms, 0 = not armed): from enqueue (or send) to reply, retries included */
  deadline: number
  timeoutMs: number
  /** neighbours in the deadline list (sorted by deadline; one timer serves them all) */
  prev: Outgoing | null
  next: Outgoing | null
}

/** What the outbox reads from the session that owns it. */
export interface OutboxHost {
  readonly options: ResolvedOptions
  readonly logger: Logger
  readonly counters: ClientStats
  /** the negotiated transport (null before a handshake) */
  readonly transport: Transport | null
  /** whether queued messages may go now (the session is connected) */
  readonly connected: boolean
  readonly clientId: string | null
  /** how long the server may hold a /meta/connect (advice timeout), ms */
  readonly connectHoldMs: number
  /** (re)authenticates; rejects with a ClientError */
  authenticate: () => Promise<void>
}

export interface DispatchOptions { isConnect?: boolean, transport?: Transport }

/** One dispatch in progress: what goes, in which bodies, and how far it got. */
export class Batch {
  readonly controller = new AbortController()
  headers: Headers = {}
  /** owners[i]: the entry whose reply payload[i] awaits (null: a message an extension added) */
  owners: Array<Outgoing | null>
  /** the messages serialized, and sent[i] the entry of messages[i]: sent[start…] is not on the wire yet */
  messages: Message[]
  sent: Array<Outgoing | null>
  start = 0
  /** the whole batch in one body, or null when it goes as parts joined per body */
  whole: string | null = null
  parts: string[] = []
  /** messages per body at most (halved by a 413) */
  maxCount = Infinity

  constructor (
    readonly entries: Outgoing[],
    readonly payload: Payload,
    readonly transport: Transport,
    readonly isConnect: boolean
  ) {
    this.owners = entries
    this.sent = entries
    this.messages = payload
  }
}
