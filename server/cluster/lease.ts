/**
 * One holder per session: a lease in Redis (`<replicaId>|<term>`, SET NX PX leaseMs) that the holder renews
 * every leaseMs/3 with a compare-and-expire script. The term grows on every takeover (INCR in the same script),
 * and every append checks the exact lease value inside Redis (stream-log.ts): a paused holder that wakes up after
 * losing the lease writes nothing.
 *
 * The holder also watches its own clock: when it has not renewed for leaseMs (measured from the sending of the
 * last renewal that succeeded, so never later than Redis lets the key expire), it gives the session up by itself
 * (`onLost`) — with Redis away, after a pause, or when a renewal finds another holder. Followers try again when
 * the lease should have expired, or at once when a holder releases it (a graceful stop publishes the release).
 */
import { performance } from 'node:perf_hooks'
import type { RedisLink } from './redis.js'
import { LuaScript } from './redis.js'
import { redisErrorText } from './errors.js'
import type { SessionLogger } from '../ops/lazy-log.js'

/** KEYS: lease, term counter. ARGV: replicaId, leaseMs. → {1, value, pttl} taken, or {0, holder value, pttl}. */
const ACQUIRE = new LuaScript(`
local current = redis.call('GET', KEYS[1])
if current then return {0, current, redis.call('PTTL', KEYS[1])} end
local value = ARGV[1] .. '|' .. redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], value, 'PX', ARGV[2])
return {1, value, tonumber(ARGV[2])}
`)

/** KEYS: lease. ARGV: value, leaseMs. → 1 renewed, 0 not ours any more. */
const RENEW = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`)

/** KEYS: lease. ARGV: value, release channel, session. → 1 released (and announced), 0 not ours. */
const RELEASE = new LuaScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
`)

export type LeaseState = 'follower' | 'holder' | 'closed'

export interface LeaseHost {
  /** this replica holds the session now: open the upstream */
  acquired: (term: number) => void
  /** this replica does not hold the session any more: stop the upstream now */
  lost: (reason: string) => void
}

/** `replicaId|term` → its parts (a replica id never contains `|`). */
export function parseLease (value: string | null): { replicaId: string, term: number } | null {
  if (value === null) return null
  const bar = value.lastIndexOf('|')
  if (bar <= 0) return null
  return { replicaId: value.slice(0, bar), term: Number(value.slice(bar + 1)) }
}

export class Lease {
  readonly session: string
  readonly #link: RedisLink
  readonly #host: LeaseHost
  readonly #log: SessionLogger
  readonly #key: string
  readonly #termKey: string
  #state: LeaseState = 'follower'
  /** the value this replica holds (`replicaId|term`), null when it holds nothing */
  #value: string | null = null
  /** the holder as last seen in Redis (`replicaId|term`) */
  #seen: string | null = null
  /** performance.now() before which the lease is surely still ours */
  #validUntil = 0
  #lastRenewAt = 0
  #renewing = false
  /** performance.now() before which this replica does not compete: it gave the session up, another should take it */
  #standBackUntil = 0
  #timer: NodeJS.Timeout | null = null
  #changes = 0

  constructor (link: RedisLink, session: string, host: LeaseHost, log: SessionLogger) {
    this.session = session
    this.#link = link
    this.#host = host
    this.#log = log
    this.#key = link.key('session', session, 'lease')
    this.#termKey = link.key('session', session, 'term')
  }

  get state (): LeaseState { return this.#state }
  /** the exact value appends are fenced with, or null when this replica does not hold the lease */
  get value (): string | null { return this.#value }
  get term (): number | null { return parseLease(this.#value)?.term ?? null }
  /** the replica holding the session as far as this replica knows (itself when it holds it) */
  get holder (): string | null { return parseLease(this.#value ?? this.#seen)?.replicaId ?? null }
  /** acquisitions and losses by this replica */
  get changes (): number { return this.#changes }

  start (): void {
    if (this.#state === 'closed') return
    this.#schedule(0)
  }

  /** A holder released the lease: try now (or when this replica's stand-back ends, when it was the one that let go). */
  released (): void {
    if (this.#state === 'follower') {
      this.#seen = null
      this.#schedule(this.#standBackUntil - performance.now())
    }
  }

  /** The stream named a newer holder than the one last seen here (fresher than the next look at the lease). */
  observe (replicaId: string, term: number): void {
    if (this.#state !== 'follower') return
    const seen = parseLease(this.#seen)
    if (seen === null || term > seen.term) this.#seen = `${replicaId}|${term}`
  }

  /** Redis refused an append of this holder (another holds the lease, or the data changed): give up now. */
  fenced (reason: string): void {
    this.giveUp(`append refused: ${reason}`)
  }

  /** This holder cannot do its job (the takeover failed): let the lease go, another replica (or this one later) tries. */
  giveUp (reason: string): void {
    const value = this.#value
    // it hears its own release too: without standing back for a lease it could win the session straight back
    if (value !== null) this.#standBackUntil = performance.now() + this.#link.config.leaseMs
    this.#lose(reason)
    // deleted at once rather than left to expire: the others need not wait leaseMs
    // a deadline of a whole lease: under load a short one could drop the release and make the others wait it out
    if (value !== null) {
      void this.#link.eval(RELEASE, [this.#key], [value, this.#link.key('lease-released'), this.session], this.#link.config.leaseMs, 'lease')
        .catch((err: unknown) => { this.#log.debug({ error: redisErrorText(err) }, 'lease: release after giving up failed (it expires by itself)') })
    }
  }

  /** Gives the lease up for good (shutdown); the holder's release is announced so that another takes over at once. */
  async close (): Promise<void> {
    if (this.#state === 'closed') return
    const value = this.#value
    this.#setState('closed', null)
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = null
    if (value === null) return
    try {
      await this.#link.eval(RELEASE, [this.#key], [value, this.#link.key('lease-released'), this.session], 1_000, 'lease')
      this.#log.info({ lease: value }, 'lease released')
    } catch (err) {
      this.#log.warn({ error: redisErrorText(err) }, 'lease not released (it expires by itself)')
    }
  }

  #schedule (delayMs: number): void {
    if (this.#state === 'closed') return
    if (this.#timer !== null) clearTimeout(this.#timer)
    this.#timer = setTimeout(() => { this.#timer = null; void this.#tick() }, Math.max(0, Math.round(delayMs)))
    this.#timer.unref()
  }

  get #renewEvery (): number { return Math.max(50, this.#link.config.leaseMs / 3) }
  /** given up a little before leaseMs: Redis may count from a later moment than our send, never an earlier one */
  get #margin (): number { return Math.min(100, this.#link.config.leaseMs / 10) }

  async #tick (): Promise<void> {
    if (this.#state === 'holder') {
      const now = performance.now()
      if (now >= this.#validUntil - this.#margin) {
        this.#lose('not renewed within leaseMs')
        return
      }
      if (now - this.#lastRenewAt >= this.#renewEvery - 5) void this.#renew()
      this.#scheduleHolder()
    } else if (this.#state === 'follower') {
      const standBack = this.#standBackUntil - performance.now()
      if (standBack > 0) this.#schedule(standBack)
      else await this.#acquire()
    }
  }

  #scheduleHolder (): void {
    const now = performance.now()
    const nextRenew = this.#lastRenewAt + this.#renewEvery
    const expiry = this.#validUntil - this.#margin
    this.#schedule(Math.min(nextRenew, expiry) - now)
  }

  async #acquire (): Promise<void> {
    const leaseMs = this.#link.config.leaseMs
    if (this.#link.state !== 'up') {
      this.#schedule(this.#renewEvery)
      return
    }
    const sentAt = performance.now()
    let reply: unknown
    try {
      // waited for as long as a lease lasts: an answer given up on while Redis still took the lease would leave this
      // replica seeing its own lease as another's, and everyone waiting for it to expire (the next term)
      reply = await this.#link.eval(ACQUIRE, [this.#key, this.#termKey], [this.#link.replicaId, String(leaseMs)], leaseMs, 'lease')
    } catch (err) {
      this.#log.debug({ error: redisErrorText(err) }, 'lease: acquire failed')
      this.#schedule(this.#renewEvery)
      return
    }
    if (this.#state !== 'follower') return
    const [taken, value, pttl] = reply as [number, string, number]
    if (Number(taken) !== 1) {
      this.#seen = String(value)
      // the holder renews every third of leaseMs: look again when it should have, or when it expires
      const wait = Number(pttl) > 0 ? Math.min(leaseMs, Number(pttl) + 10 + Math.random() * 40) : this.#renewEvery
      this.#schedule(wait)
      return
    }
    this.#lastRenewAt = sentAt
    this.#validUntil = sentAt + leaseMs
    this.#setState('holder', String(value))
    this.#changes++
    this.#log.info({ lease: value }, 'lease acquired: this replica holds the session')
    this.#scheduleHolder()
    this.#host.acquired(parseLease(String(value))?.term ?? 0)
  }

  async #renew (): Promise<void> {
    const value = this.#value
    if (this.#renewing || value === null) return
    this.#renewing = true
    const sentAt = performance.now()
    this.#lastRenewAt = sentAt
    // a late answer still counts (the lease then runs from when it was sent): wait for it as long as the lease lasts
    const timeoutMs = Math.max(this.#renewEvery, this.#validUntil - this.#margin - sentAt)
    try {
      const ok = await this.#link.eval(RENEW, [this.#key], [value, String(this.#link.config.leaseMs)], timeoutMs, 'lease')
      if (this.#value !== value) return
      if (Number(ok) === 1) {
        this.#validUntil = sentAt + this.#link.config.leaseMs
      } else {
        this.#lose('taken over by another replica (or Redis lost it)')
      }
    } catch (err) {
      // the expiry check gives up in time; a failed renewal alone is no reason to let go early
      this.#log.debug({ error: redisErrorText(err) }, 'lease: renewal failed')
    } finally {
      this.#renewing = false
    }
  }

  #lose (reason: string): void {
    if (this.#state !== 'holder') return
    const value = this.#value
    this.#setState('follower', null)
    this.#seen = null
    this.#changes++
    this.#log.warn({ lease: value, reason }, 'lease lost: stopping the upstream session')
    this.#host.lost(reason)
    this.#schedule(this.#renewEvery)
  }

  #setState (to: LeaseState, value: string | null): void {
    this.#state = to
    this.#value = value
    if (value !== null) this.#seen = value
  }
}

/**
 * The leases of one replica: one pub/sub subscription for the releases of all sessions, and their start and
 * stop. A lease per session; sessions are added as they are configured (or created).
 */
export class Leases {
  readonly #link: RedisLink
  readonly #log: SessionLogger
  readonly #leases = new Map<string, Lease>()
  #subscribed: Promise<void> | null = null

  constructor (link: RedisLink, log: SessionLogger) {
    this.#link = link
    this.#log = log
  }

  get (session: string): Lease | undefined { return this.#leases.get(session) }

  /** The session's lease, competing from now on (the same one when it was added before). */
  async add (session: string, host: LeaseHost, log: SessionLogger = this.#log): Promise<Lease> {
    this.#subscribed ??= this.#link.subscribe(this.#link.key('lease-released'), (name) => { this.#leases.get(name)?.released() })
    try {
      await this.#subscribed
    } catch (err) {
      this.#subscribed = null
      throw err
    }
    const known = this.#leases.get(session)
    if (known !== undefined) return known
    const lease = new Lease(this.#link, session, host, log)
    this.#leases.set(session, lease)
    lease.start()
    return lease
  }

  async remove (session: string): Promise<void> {
    const lease = this.#leases.get(session)
    this.#leases.delete(session)
    await lease?.close()
  }

  async close (): Promise<void> {
    await Promise.all([...this.#leases.keys()].map(async (s) => { await this.remove(s) }))
  }
}
