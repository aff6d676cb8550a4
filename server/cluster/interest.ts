/**
 * Which channel patterns the callers of every replica want, so that the holder of a session subscribes upstream
 * to exactly those. Each replica keeps its own patterns in one hash (`<session>\n<pattern>`), which lives as long
 * as the replica's heartbeat (redis.ts): a replica that dies takes its interest with it after 3 × leaseMs, one
 * that stops cleanly at once. The holder reads every live replica's hash (`sweep`), one script for all sessions.
 */
import type { RedisLink } from './redis.js'
import { LuaScript } from './redis.js'
import { redisErrorText } from './errors.js'
import type { SessionLogger } from '../ops/lazy-log.js'

/**
 * KEYS: the replica registry (zset). ARGV: key prefix, heartbeat ttl ms. → the interest fields of every live
 * replica, `<replicaId>\n<session>\n<pattern>`. Replicas silent for longer than the ttl leave the registry here.
 */
const SWEEP = new LuaScript(`
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
local out = {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  for _, field in ipairs(redis.call('HKEYS', ARGV[1] .. ':replica:' .. id .. ':interest')) do
    out[#out + 1] = id .. '\\n' .. field
  end
end
return out
`)

export class Interest {
  readonly #link: RedisLink
  readonly #log: SessionLogger
  readonly #key: string
  /** session → pattern → callers of this replica */
  readonly #local = new Map<string, Map<string, number>>()

  constructor (link: RedisLink, log: SessionLogger) {
    this.#link = link
    this.#log = log
    this.#key = link.key('replica', link.replicaId, 'interest')
  }

  /** One more caller of `pattern` here; the first one is written to Redis before this resolves. */
  async add (session: string, pattern: string): Promise<void> {
    let patterns = this.#local.get(session)
    if (patterns === undefined) this.#local.set(session, patterns = new Map())
    const n = (patterns.get(pattern) ?? 0) + 1
    patterns.set(pattern, n)
    if (n === 1) await this.#write(['HSET', this.#key, field(session, pattern), '1'])
  }

  /** One caller less; the last one removes the pattern (the holder releases it at its next sweep). */
  remove (session: string, pattern: string): void {
    const patterns = this.#local.get(session)
    const n = patterns?.get(pattern)
    if (patterns === undefined || n === undefined) return
    if (n > 1) {
      patterns.set(pattern, n - 1)
      return
    }
    patterns.delete(pattern)
    if (patterns.size === 0) this.#local.delete(session)
    void this.#write(['HDEL', this.#key, field(session, pattern)]).catch(() => {})
  }

  /** This replica's patterns of `session`. */
  local (session: string): string[] {
    return [...(this.#local.get(session)?.keys() ?? [])]
  }

  /** Every live replica's patterns, per session. */
  async sweep (): Promise<Map<string, Set<string>>> {
    const fields = await this.#link.eval(SWEEP, [this.#link.key('replicas')], [this.#link.config.keyPrefix, String(this.#link.heartbeatTtlMs)]) as string[]
    const out = new Map<string, Set<string>>()
    for (const f of fields) {
      const [, session, pattern] = String(f).split('\n')
      if (session === undefined || pattern === undefined) continue
      let set = out.get(session)
      if (set === undefined) out.set(session, set = new Set())
      set.add(pattern)
    }
    return out
  }

  /**
   * Writes this replica's whole interest again (after Redis lost its data, or came back): the hash may be gone.
   * Called by the cluster when the link is up again.
   */
  async rewrite (): Promise<void> {
    const args: string[] = []
    for (const [session, patterns] of this.#local) for (const p of patterns.keys()) args.push(field(session, p), '1')
    if (args.length > 0) await this.#write(['HSET', this.#key, ...args]).catch(() => {})
  }

  async #write (args: string[]): Promise<void> {
    try {
      await this.#link.send(args)
      await this.#link.send(['PEXPIRE', this.#key, String(this.#link.heartbeatTtlMs)])
    } catch (err) {
      // Redis away: rewritten when it is back
      this.#log.debug({ error: redisErrorText(err) }, 'interest not written')
      throw err
    }
  }
}

function field (session: string, pattern: string): string {
  return `${session}\n${pattern}`
}
