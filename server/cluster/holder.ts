/**
 * What the replica holding a session's lease does: keep the upstream link (upstream/link.ts), append every
 * upstream message and every in-band status to the shared stream through a fenced writer (append.ts), and
 * subscribe upstream to what the callers of all replicas want (interest.ts), answering each subscribe request
 * with the upstream's outcome.
 *
 * It starts from what Redis holds: the replay positions stored with the appends (a Salesforce-style upstream
 * replays from there, nothing is lost) and a `holder` marker in the stream that says whether events may have
 * been missed during the takeover (no replay, or wildcard patterns that cannot replay). It stops the moment the
 * lease is lost: no message is appended after that (and Redis would refuse it anyway).
 */
import type { Message, StateChange } from '../../client-core/index.js'
import { isMeta } from '../channels.js'
import type { SessionConfig } from '../../config/index.js'
import { errorText } from '../deadline.js'
import type { HttpError } from '../errors.js'
import { refusedSubscription } from '../upstream/errors.js'
import { UpstreamLink } from '../upstream/link.js'
import type { LinkOptions } from '../upstream/link.js'
import type { Outcome } from '../upstream/subscriptions.js'
import { StreamWriter, storedPositions } from './append.js'
import type { AppendRecord } from './append.js'
import type { RedisLink } from './redis.js'
import { redisErrorText } from './errors.js'
import { decodePosition } from './stream-format.js'

/** A subscribe outcome as it travels to the asking replica: the refusal already mapped to its HTTP error. */
export type RemoteOutcome = { status: 'subscribed' | 'pending' } | { status: 'refused', error: HttpError }

export interface HolderOptions extends LinkOptions {
  redis: RedisLink
  session: string
  config: SessionConfig
  /** the lease value this holder appends under (`replicaId|term`) */
  lease: string
  /** Redis refused an append: the lease is gone */
  fenced: (reason: string) => void
}

function isWildcard (pattern: string): boolean {
  return pattern.endsWith('/*') || pattern.endsWith('/**')
}

export class Holder {
  readonly upstream: UpstreamLink
  readonly #o: HolderOptions
  readonly #writer: StreamWriter
  /** patterns held upstream for the cluster's callers (one reference each in the link's subscriptions) */
  readonly #held = new Set<string>()
  /** held patterns whose coverage marker is in the stream */
  readonly #marked = new Set<string>()
  /** one message delivered to several matching upstream subscriptions is appended once */
  readonly #seen = new WeakSet<object>()
  #appended = 0
  #appendFailures = 0
  #downAnnounced = false
  #stopped = false

  private constructor (o: HolderOptions) {
    this.#o = o
    this.#writer = new StreamWriter(o.redis, o.session, o.lease, o.fenced)
    this.upstream = new UpstreamLink(o.session, o.config, {
      message: (msg) => { this.#message(msg) },
      state: (e) => { this.#state(e) },
      rehandshake: (_clientId, replayed) => {
        this.#status('rehandshake', 'session lost upstream', { mayHaveMissed: !replayed, ...(replayed ? { replay: true } : {}) })
      },
      subscriptionLost: (pattern, error) => {
        this.#status('subscription-lost', errorText(error), { channel: pattern }, pattern)
        if (this.#marked.delete(pattern)) this.#marker('del', pattern)
      },
      report: (status, reason, extra, channel) => { this.#status(status, reason, extra, channel) },
      currentSeq: () => this.#appended
    }, o)
  }

  /**
   * Takes the session over: positions from Redis, the `holder` marker, then the upstream opens. `previous` is the
   * holder the stream last named (this replica too, after an outage): events since may have been missed unless
   * the upstream replays them.
   */
  static async take (o: HolderOptions, patterns: ReadonlySet<string>, previous: string | null): Promise<Holder> {
    const holder = new Holder(o)
    const replay = holder.upstream.reliable.replay
    if (replay !== null) {
      // Redis is the checkpoint of a cluster: a position the local file has but Redis has not is not used
      const stored = await storedPositions(o.redis, o.session)
      for (const channel of replay.extension.positions.keys()) if (!stored.has(channel)) replay.extension.setPosition(channel, replay.config.start)
      for (const [channel, text] of stored) {
        const position = decodePosition(text)
        if (position !== undefined) replay.extension.setPosition(channel, position)
      }
    }
    const all = [...new Set([...o.config.subscribe, ...patterns])]
    const replayed = replay !== null && all.every((p) => !isWildcard(p))
    const reason = previous === null ? 'this replica holds the upstream session' : previous === o.redis.replicaId ? 'held again after an interruption' : `taken over from ${previous}`
    holder.#status('holder', reason, {
      term: Number(o.lease.slice(o.lease.lastIndexOf('|') + 1)),
      ...(previous !== null ? { previous } : {}),
      mayHaveMissed: previous !== null && !replayed,
      ...(replay !== null ? { replay: replayed } : {})
    })
    for (const p of o.config.subscribe) void holder.ensure(p)
    holder.reconcile(patterns)
    void holder.upstream.start()
    return holder
  }

  get appended (): number { return this.#appended }
  get appendFailures (): number { return this.#appendFailures }

  /** The upstream outcome of `pattern`, subscribing it for the cluster if it is not held yet. */
  async ensure (pattern: string): Promise<RemoteOutcome> {
    if (this.#stopped) return { status: 'pending' }
    if (!this.#held.has(pattern)) {
      this.#held.add(pattern)
      return this.#outcome(pattern, await this.upstream.acquire(pattern))
    }
    // held already: its current outcome (the held reference keeps it subscribed meanwhile)
    const outcome = this.upstream.acquire(pattern)
    this.upstream.release(pattern)
    return this.#outcome(pattern, await outcome)
  }

  /** The callers of all replicas want exactly `wanted` (plus the configured patterns): subscribe and release. */
  reconcile (wanted: ReadonlySet<string>): void {
    if (this.#stopped) return
    for (const p of wanted) if (!this.#held.has(p)) void this.ensure(p)
    for (const p of [...this.#held]) {
      if (wanted.has(p) || this.#o.config.subscribe.includes(p)) continue
      this.#drop(p)
    }
  }

  async publish (channel: string, data: unknown, timeoutMs: number): Promise<Message> {
    return this.upstream.publish(channel, data, timeoutMs)
  }

  async call (channel: string, data: unknown, timeoutMs: number): Promise<unknown> {
    return this.upstream.call(channel, data, timeoutMs)
  }

  /** No more appends from now on; the upstream session is closed within `deadlineMs`. */
  async stop (deadlineMs: number): Promise<void> {
    if (this.#stopped) return
    this.#stopped = true
    this.upstream.beginClose()
    await this.upstream.close(deadlineMs)
  }

  /** Not held any more: released upstream (unsubscribed after the linger), its coverage ends now. */
  #drop (pattern: string): void {
    if (!this.#held.delete(pattern)) return
    this.upstream.release(pattern)
    // a resume is told of the end too early rather than too late
    if (this.#marked.delete(pattern)) this.#marker('del', pattern)
  }

  #outcome (pattern: string, o: Outcome): RemoteOutcome {
    if (o.status === 'subscribed') {
      if (this.#held.has(pattern) && !this.#marked.has(pattern)) {
        this.#marked.add(pattern)
        this.#marker('set', pattern)
      }
      return { status: 'subscribed' }
    }
    if (o.status !== 'refused') return { status: 'pending' }
    // refused: not held, so that a later caller tries again
    this.#drop(pattern)
    return { status: 'refused', error: refusedSubscription(o.error, this.#o.session, pattern, this.upstream.retryAfterSeconds()) }
  }

  #message (msg: { channel: string, data?: unknown, ext?: unknown }): void {
    if (this.#stopped || typeof msg !== 'object' || msg === null || this.#seen.has(msg)) return
    this.#seen.add(msg)
    const channel = msg.channel
    if (typeof channel !== 'string' || isMeta(channel)) return
    const payload: Record<string, unknown> = { channel, data: msg.data === undefined ? null : msg.data }
    if (msg.ext !== undefined && msg.ext !== null) payload.ext = msg.ext
    const position = this.upstream.reliable.replay?.positionOf(msg as Message)
    this.#append({ kind: 'm', channel, payload: JSON.stringify(payload), position })
  }

  /** Callers hear of the upstream going down once, and of it coming back once (as in one process). */
  #state (e: StateChange): void {
    if (e.to === 'connected') {
      const first = !this.#downAnnounced && e.from !== 'connected'
      this.#downAnnounced = false
      this.#status('up', first ? 'connected' : e.reason)
      return
    }
    if (e.from === 'connected' && !this.#stopped && !this.#downAnnounced) {
      this.#downAnnounced = true
      this.#status('down', e.reason, e.error !== undefined ? { error: errorText(e.error) } : {})
    }
  }

  #status (status: string, reason: string, extra: Record<string, unknown> = {}, channel?: string): void {
    const data = { session: this.#o.session, status, state: this.upstream.state, holder: this.#o.redis.replicaId, reason, ...extra }
    this.#append({ kind: 'u', ...(channel !== undefined ? { channel } : {}), payload: JSON.stringify(data) })
  }

  #marker (op: 'set' | 'del', pattern: string): void {
    this.#append({ kind: 'x', payload: JSON.stringify({ status: op === 'set' ? 'subscribed' : 'unsubscribed', channel: pattern }), subscription: { op, pattern } })
  }

  #append (record: AppendRecord): void {
    if (this.#stopped) return
    this.#appended++
    this.#writer.append(record).catch((err: unknown) => {
      this.#appendFailures++
      // fenced: the lease callback stops this holder; Redis away: the lease runs out and another replica resumes
      if (!this.#writer.fenced && (this.#appendFailures === 1 || this.#appendFailures % 100 === 0)) {
        this.#o.log.warn({ error: redisErrorText(err), failures: this.#appendFailures }, 'append to the shared log failed')
      }
    })
  }
}
