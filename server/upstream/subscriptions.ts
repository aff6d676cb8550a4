/**
 * Reference-counted upstream subscriptions of one session. The first caller of a pattern subscribes upstream,
 * the last one leaving unsubscribes after a linger; permanent patterns (config `subscribe`) are never dropped.
 * All client operations on one pattern run one after the other (a per-pattern promise chain), so an unsubscribe
 * can never overtake the subscribe that follows it.
 */
import { Backoff } from '../../client-core/index.js'
import type { Logger } from '../../client-core/index.js'
import { patternCovers } from '../channels.js'
import { errorText, withDeadline } from '../deadline.js'

export type Listener = (message: { channel: string, data?: unknown, ext?: unknown }) => void

/** The part of the client-core Client this module uses. */
export interface SubscribingClient {
  subscribe: (pattern: string, listener: Listener) => Promise<unknown>
  unsubscribe: (pattern: string, listener: Listener) => Promise<unknown>
  readonly subscriptions: ReadonlySet<string>
}

export type EntryState = 'idle' | 'subscribing' | 'subscribed' | 'unsubscribing' | 'failed'

export type Outcome =
  | { status: 'subscribed' }
  /** the server refused the subscription (ServerError) */
  | { status: 'refused', error: unknown }
  /** not (yet) possible: upstream not open, network trouble, timeout; retried when the upstream is back */
  | { status: 'pending', error?: unknown }

interface Entry {
  pattern: string
  refs: number
  permanent: boolean
  state: EntryState
  /** session sequence number when the subscription was confirmed */
  since: number | null
  error: unknown
  linger: NodeJS.Timeout | null
  retry: NodeJS.Timeout | null
  /** retries of a subscription that could not be made (created on the first failure) */
  backoff: Backoff | null
  op: Promise<unknown>
}

export interface SubscriptionView {
  channel: string
  state: EntryState
  permanent: boolean
  refs: number
  error: string | null
}

export interface UpstreamSubscriptionsOptions {
  listener: Listener
  lingerMs: number
  /** deadline of one subscribe/unsubscribe round trip */
  opTimeoutMs: number
  /** the session's current sequence number */
  currentSeq: () => number
  isRefusal: (err: unknown) => boolean
  log: Logger
  /** called when the server refuses a subscription the client tried to restore (after a re-handshake) */
  onLost?: (pattern: string, error: unknown) => void
}

/** A subscription the upstream could not make is tried again after 0–1 s, growing to 0–30 s. */
const RETRY_BACKOFF = { initialMs: 1_000, maxMs: 30_000, earlyMaxMs: 30_000 }

export class UpstreamSubscriptions {
  readonly #entries = new Map<string, Entry>()
  readonly #o: UpstreamSubscriptionsOptions
  #client: SubscribingClient | null = null
  #closed = false

  constructor (options: UpstreamSubscriptionsOptions) {
    this.#o = options
  }

  /**
   * The client is open (or back): (re)subscribe everything wanted and not confirmed. The promise settles when
   * those subscribes have answered (each bounded by opTimeoutMs); it never rejects.
   */
  usable (client: SubscribingClient): Promise<void> {
    this.#client = client
    return this.reconcile()
  }

  /** The client is not usable (open failed, closed): subscriptions wait. */
  unusable (): void {
    this.#client = null
  }

  reconcile (): Promise<void> {
    const pending: Array<Promise<Outcome>> = []
    for (const entry of this.#entries.values()) {
      if (!want(entry)) continue
      const confirmed = this.#client?.subscriptions.has(entry.pattern) === true
      if (entry.state === 'subscribed' && confirmed) continue
      if (entry.state === 'subscribing' || entry.state === 'unsubscribing') continue
      if (entry.state === 'subscribed' && !confirmed) entry.state = 'idle'
      pending.push(this.#ensure(entry))
    }
    return pending.length === 0 ? Promise.resolve() : Promise.allSettled(pending).then(() => undefined)
  }

  hold (pattern: string): void {
    const entry = this.#entry(pattern)
    entry.permanent = true
    void this.#ensure(entry)
  }

  /** One more caller for `pattern`; resolves with the upstream outcome (does not time out by itself beyond opTimeoutMs). */
  acquire (pattern: string): Promise<Outcome> {
    const entry = this.#entry(pattern)
    entry.refs++
    if (entry.linger !== null) clearTimeout(entry.linger)
    entry.linger = null
    if (entry.state === 'subscribed' && this.#client?.subscriptions.has(pattern) !== false) {
      return Promise.resolve({ status: 'subscribed' })
    }
    return this.#ensure(entry)
  }

  release (pattern: string): void {
    const entry = this.#entries.get(pattern)
    if (entry === undefined || entry.refs === 0) return
    entry.refs--
    if (want(entry)) return
    if (this.#o.lingerMs <= 0) {
      this.#drop(entry)
      return
    }
    entry.linger = setTimeout(() => { this.#drop(entry) }, this.#o.lingerMs)
    entry.linger.unref()
  }

  /** The client could not restore a subscription after a re-handshake. */
  lost (pattern: string, error: unknown): void {
    const entry = this.#entries.get(pattern)
    if (entry === undefined) return
    // a network failure leaves the subscription registered in the client, which sends it again when connected
    if (!this.#o.isRefusal(error)) return
    entry.state = 'failed'
    entry.error = error
    entry.since = null
    this.#o.onLost?.(pattern, error)
    this.#scheduleRetry(entry)
  }

  /** Is `pattern` covered by a subscription confirmed at or before `seq`? */
  coveredSince (pattern: string, seq: number): boolean {
    for (const entry of this.#entries.values()) {
      if (entry.state === 'subscribed' && entry.since !== null && entry.since <= seq && patternCovers(entry.pattern, pattern)) return true
    }
    return false
  }

  /** Permanent patterns not confirmed upstream (empty = ready). */
  unconfirmedPermanent (): string[] {
    const out: string[] = []
    for (const entry of this.#entries.values()) {
      if (!entry.permanent) continue
      if (entry.state !== 'subscribed' || this.#client?.subscriptions.has(entry.pattern) !== true) out.push(entry.pattern)
    }
    return out
  }

  view (): SubscriptionView[] {
    return [...this.#entries.values()].map((e) => ({
      channel: e.pattern,
      state: e.state,
      permanent: e.permanent,
      refs: e.refs,
      error: e.error === null || e.error === undefined ? null : errorText(e.error)
    }))
  }

  get size (): number { return this.#entries.size }

  close (): void {
    this.#closed = true
    for (const entry of this.#entries.values()) {
      if (entry.linger !== null) clearTimeout(entry.linger)
      if (entry.retry !== null) clearTimeout(entry.retry)
      entry.linger = null
      entry.retry = null
    }
  }

  #entry (pattern: string): Entry {
    let entry = this.#entries.get(pattern)
    if (entry === undefined) {
      entry = { pattern, refs: 0, permanent: false, state: 'idle', since: null, error: null, linger: null, retry: null, backoff: null, op: Promise.resolve() }
      this.#entries.set(pattern, entry)
    }
    return entry
  }

  #ensure (entry: Entry): Promise<Outcome> {
    if (this.#client === null || this.#closed) return Promise.resolve({ status: 'pending' })
    const run = entry.op.then(async (): Promise<Outcome> => {
      const client = this.#client
      if (client === null || this.#closed) return { status: 'pending' }
      if (!want(entry)) return { status: 'pending' }
      if (entry.state === 'subscribed' && client.subscriptions.has(entry.pattern)) return { status: 'subscribed' }
      entry.state = 'subscribing'
      try {
        await withDeadline(client.subscribe(entry.pattern, this.#o.listener), this.#o.opTimeoutMs, `subscribe ${entry.pattern}`)
        entry.state = 'subscribed'
        entry.since = this.#o.currentSeq()
        entry.error = null
        entry.backoff?.reset()
        return { status: 'subscribed' }
      } catch (err) {
        entry.state = 'failed'
        entry.error = err
        entry.since = null
        const refused = this.#o.isRefusal(err)
        this.#o.log.warn({ err, channel: entry.pattern, refused }, 'upstream subscribe failed')
        if (entry.permanent || !refused) this.#scheduleRetry(entry)
        return refused ? { status: 'refused', error: err } : { status: 'pending', error: err }
      }
    })
    entry.op = run.catch(() => undefined)
    return run
  }

  #drop (entry: Entry): void {
    entry.linger = null
    entry.op = entry.op.then(async () => {
      if (want(entry)) return
      const client = this.#client
      if (client !== null && !this.#closed && (entry.state === 'subscribed' || client.subscriptions.has(entry.pattern))) {
        entry.state = 'unsubscribing'
        try {
          await withDeadline(client.unsubscribe(entry.pattern, this.#o.listener), this.#o.opTimeoutMs, `unsubscribe ${entry.pattern}`)
        } catch (err) {
          this.#o.log.warn({ err, channel: entry.pattern }, 'upstream unsubscribe failed')
        }
      }
      entry.state = 'idle'
      entry.since = null
      if (!want(entry) && this.#entries.get(entry.pattern) === entry) {
        if (entry.retry !== null) clearTimeout(entry.retry)
        this.#entries.delete(entry.pattern)
      } else if (want(entry)) {
        void this.#ensure(entry)
      }
    }).catch(() => undefined)
  }

  #scheduleRetry (entry: Entry): void {
    if (this.#closed || entry.retry !== null || !want(entry)) return
    entry.backoff ??= new Backoff(RETRY_BACKOFF)
    const delay = entry.backoff.next()
    entry.retry = setTimeout(() => {
      entry.retry = null
      if (entry.state === 'failed' || entry.state === 'idle') void this.#ensure(entry)
    }, delay)
    entry.retry.unref()
  }
}

function want (entry: Entry): boolean {
  return entry.permanent || entry.refs > 0
}
