/**
 * The holder's side of a session stream: every append is one Lua script that first checks, inside Redis, that
 * the writer still holds the lease (the exact `replicaId|term`) and that Redis still has the epoch the writer
 * knows; then XADD (MAXLEN ~ streamMaxLen) and, in the same step, the message's Salesforce replay position (what
 * a new holder resumes the upstream from) and the subscription markers resume planning reads.
 *
 * A replay position not above the stored one of its channel is a duplicate (an overlapping replay after a
 * takeover or a fallback to -2) and is not appended again.
 *
 * Appends are sent in order without waiting for each other (one connection: Redis runs them in that order). The
 * script is sent whole (EVAL, cached by Redis): EVALSHA's fallback after a Redis restart could reorder appends.
 */
import type { RedisLink } from './redis.js'
import { LuaScript } from './redis.js'
import { ClusterError, ClusterErrorCode, redisErrorText } from './errors.js'
import { encodePosition } from './stream-format.js'
import type { EntryKind } from './stream-format.js'
import type { ReplayPosition } from '../../client-core/index.js'

/**
 * KEYS: lease, epoch, stream, replay positions (hash), subscriptions (hash), entry counter, last status.
 * ARGV: lease value, epoch, maxlen, kind, channel, payload, position, subscription op ('' | 'set' | 'del'), pattern.
 * → the entry id, 'DUP', or an error FENCED / EPOCH. Every entry gets the next number of the session (`n`): a
 * reader that finds one missing knows entries were trimmed before it read them. The last status (`u` without a
 * channel) is also kept on its own: a replica that starts reads the upstream's state there.
 */
const APPEND = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('FENCED this replica does not hold the lease') end
if redis.call('GET', KEYS[2]) ~= ARGV[2] then return redis.error_reply('EPOCH the Redis data is not the one this replica knows') end
local position = ARGV[7]
if position ~= '' then
  local stored = tonumber(redis.call('HGET', KEYS[4], ARGV[5]) or '')
  local incoming = tonumber(position)
  if stored and incoming and incoming <= stored then return 'DUP' end
end
local n = redis.call('INCR', KEYS[6])
local id = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'k', ARGV[4], 'c', ARGV[5], 'p', ARGV[6], 'r', position, 'n', n)
if position ~= '' then redis.call('HSET', KEYS[4], ARGV[5], position) end
if ARGV[4] == 'u' and ARGV[5] == '' then redis.call('SET', KEYS[7], ARGV[6]) end
if ARGV[8] == 'set' then redis.call('HSETNX', KEYS[5], ARGV[9], id) elseif ARGV[8] == 'del' then redis.call('HDEL', KEYS[5], ARGV[9]) end
return id
`)

export interface SessionKeys {
  lease: string
  stream: string
  replay: string
  subs: string
  count: string
  status: string
}

export function sessionKeys (link: Pick<RedisLink, 'key'>, session: string): SessionKeys {
  return {
    lease: link.key('session', session, 'lease'),
    stream: link.key('session', session, 'stream'),
    replay: link.key('session', session, 'replay'),
    subs: link.key('session', session, 'subs'),
    count: link.key('session', session, 'count'),
    status: link.key('session', session, 'status')
  }
}

export interface AppendRecord {
  kind: EntryKind
  channel?: string
  /** JSON text */
  payload: string
  position?: ReplayPosition | undefined
  /** a subscription marker: the pattern's coverage starts at this entry ('set') or ends ('del') */
  subscription?: { op: 'set' | 'del', pattern: string }
}

export type AppendOutcome = { id: string } | { duplicate: true }

export class StreamWriter {
  readonly #link: RedisLink
  readonly #keys: SessionKeys
  readonly #lease: string
  readonly #epoch: string
  readonly #onFenced: (reason: string) => void
  #fenced = false

  /** `lease` is the exact value held (`replicaId|term`); `onFenced` is told once when Redis refuses the writer. */
  constructor (link: RedisLink, session: string, lease: string, onFenced: (reason: string) => void) {
    this.#link = link
    this.#keys = sessionKeys(link, session)
    this.#lease = lease
    this.#epoch = link.epoch
    this.#onFenced = onFenced
  }

  get fenced (): boolean { return this.#fenced }

  async append (record: AppendRecord): Promise<AppendOutcome> {
    if (this.#fenced) throw new ClusterError(ClusterErrorCode.FENCED, 'this writer was fenced')
    const k = this.#keys
    const args = [
      this.#lease, this.#epoch, String(this.#link.config.streamMaxLen), record.kind, record.channel ?? '', record.payload,
      encodePosition(record.position), record.subscription?.op ?? '', record.subscription?.pattern ?? ''
    ]
    let reply: unknown
    try {
      reply = await this.#link.evalSource(APPEND, [k.lease, this.#link.key('epoch'), k.stream, k.replay, k.subs, k.count, k.status], args)
    } catch (err) {
      const text = redisErrorText(err)
      if (/^(FENCED|EPOCH)/.test(text)) {
        if (!this.#fenced) {
          this.#fenced = true
          this.#onFenced(text)
        }
        throw new ClusterError(text.startsWith('EPOCH') ? ClusterErrorCode.EPOCH_CHANGED : ClusterErrorCode.FENCED, text, { cause: err })
      }
      throw err
    }
    return reply === 'DUP' ? { duplicate: true } : { id: String(reply) }
  }
}

/** The replay positions stored with the appends (channel → position), what a new holder resumes from. */
export async function storedPositions (link: RedisLink, session: string): Promise<Map<string, string>> {
  const flat = await link.send(['HGETALL', sessionKeys(link, session).replay]) as string[]
  const out = new Map<string, string>()
  for (let i = 0; i + 1 < flat.length; i += 2) out.set(String(flat[i]), String(flat[i + 1]))
  return out
}
