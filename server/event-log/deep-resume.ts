/**
 * Deep resume: a caller of a replay session whose position is older than the ring (or from before a restart and
 * not in the ring) is served from the upstream's own retention instead of a `gap`.
 *
 * A short-lived second upstream client, with its own ReplayExtension positioned at the caller's replayId,
 * subscribes to the caller's channel; the upstream replays what it retains after that position. Each replayed
 * event goes to that caller only, until one of them is an event the session's ring already holds (same channel,
 * same replayId): from there the ring serves the rest (ring entries from that one on), the caller joins the live
 * fan-out, and the extra client is closed (/meta/disconnect). Meanwhile the caller gets no live events (they are
 * in the ring and follow after the join), so the order of its channel is kept and nothing comes twice.
 *
 * - The upstream no longer has the position (`400` invalid replayId): the client falls back to `-2` (everything
 *   retained), the caller first gets `event: gap` with `reason: "replay-expired"`.
 * - Nothing arrives for `idleMs` after the subscription: the upstream has nothing more than what was sent;
 *   the caller joins with the ring entries after its own position (replayed ones skipped).
 * - Open/subscribe fail, or `timeoutMs` passes: `gap` (`too-old`, with `deepResume` saying why), then the ring.
 *
 * Cost: one upstream handshake, subscribe and disconnect per deep resume, one extra client slot while it runs
 * (Salesforce counts concurrent clients per org), and every replayed event counts against the org's event
 * delivery allocation. `replay.deepResumeMaxClients` bounds how many run at once.
 */
import { ReplayExtension, replayIdOf } from '../../client-core/index.js'
import type { Client, ClientOptions, Logger, Message, ReplayFallback, ReplayPosition } from '../../client-core/index.js'
import type { Caller } from '../hub/caller.js'
import type { Gap } from './resume.js'
import { formatId } from './resume.js'
import { positionKey, replaySuffix } from './replay.js'
import { messageFrame, sseFrame } from '../frames.js'
import { errorText, withDeadline } from '../deadline.js'

export const DEEP_RESUME_IDLE_MS = 2_000

export interface DeepResumeHost {
  readonly epoch: string
  readonly url: string
  /** the session's current sequence number */
  readonly seq: number
  seqOf: (channel: string, position: ReplayPosition) => { seq: number, inRing: boolean } | undefined
  covers: (channel: string, seq: number) => boolean
  /** a new upstream client with the session's options, `extension` and a fresh auth */
  createClient: (extension: ReplayExtension) => Client
  /** the caller joins the live stream: gap (if any), ring entries of `channel` after `afterSeq` not in `skip` */
  join: (caller: Caller, channel: string, afterSeq: number, skip: Set<string>, gap: Gap | null, outcome: DeepOutcome) => void
  /** the extra client failed on a limit error or similar: for reporting */
  onError?: (error: unknown) => void
  log: Logger
  /** deadline of one upstream round trip (open, subscribe) */
  opTimeoutMs: number
}

export type DeepOutcome = 'joined' | 'idle' | 'timeout' | 'failed' | 'stopped'

export interface DeepResumeOptions {
  channel: string
  position: ReplayPosition
  /** in-run resumes: the caller's seq (ring entries after it are what it misses); 0 across runs */
  anchorSeq: number
  lastEventId: string
  timeoutMs: number
  idleMs?: number
}

export class DeepResume {
  readonly caller: Caller
  readonly #host: DeepResumeHost
  readonly #o: DeepResumeOptions
  readonly #forwarded = new Set<string>()
  #client: Client | null = null
  #done = false
  #subscribed = false
  #idle: NodeJS.Timeout | null = null
  #deadline: NodeJS.Timeout | null = null
  #expired: ReplayFallback | null = null
  #replayed = 0
  readonly startedAt = Date.now()

  constructor (host: DeepResumeHost, caller: Caller, options: DeepResumeOptions) {
    this.#host = host
    this.caller = caller
    this.#o = options
  }

  get replayed (): number { return this.#replayed }
  get done (): boolean { return this.#done }

  start (): void {
    if (this.#done || this.#deadline !== null) return
    this.#deadline = setTimeout(() => { this.#finish('timeout') }, Math.max(1, this.#o.timeoutMs))
    this.#deadline.unref()
    void this.#run()
  }

  /** The caller left or the session closes: close the extra client, no join. */
  stop (): void {
    if (this.#done) return
    this.#done = true
    this.#cleanup()
  }

  async #run (): Promise<void> {
    const { channel, position } = this.#o
    const extension = new ReplayExtension({
      positions: { [channel]: position },
      fallback: -2,
      onFallback: (e) => { this.#onExpired(e) }
    })
    let client: Client
    try {
      client = this.#host.createClient(extension)
    } catch (err) {
      this.#fail(err)
      return
    }
    this.#client = client
    this.#host.log.info({ caller: this.caller.id, channel, position }, 'deep resume: replaying from the upstream')
    try {
      await withDeadline(client.open(), 2 * this.#host.opTimeoutMs, 'deep resume open')
      if (this.#done) return
      await withDeadline(client.subscribe(channel, this.#onEvent), this.#host.opTimeoutMs, 'deep resume subscribe')
      if (this.#done) return
      this.#subscribed = true
      this.#armIdle()
    } catch (err) {
      this.#fail(err)
    }
  }

  #onExpired (e: ReplayFallback): void {
    if (this.#done) return
    this.#expired = e
    const gap: Gap & Record<string, unknown> = {
      reason: 'replay-expired',
      lastEventId: this.#o.lastEventId,
      firstAvailableId: null,
      currentId: this.#host.seq === 0 ? null : formatId(this.#host.epoch, this.#host.seq),
      channels: [e.channel],
      error: e.error
    }
    this.caller.send(sseFrame('gap', gap), undefined, false)
  }

  readonly #onEvent = (message: Message): void => {
    if (this.#done) return
    const channel = this.#o.channel
    if (message.channel !== channel) return
    if (this.#subscribed) this.#armIdle()
    const position = replayIdOf(message)
    if (position !== undefined) {
      const hit = this.#host.seqOf(channel, position)
      if (hit !== undefined && this.#host.covers(channel, hit.seq)) {
        if (hit.inRing) {
          // the ring holds this one and everything after it: the ring takes over from here
          this.#finish('joined', hit.seq - 1)
        } else {
          // the position the session subscribed from at start-up: the ring holds everything after it
          this.#forward(message, position)
          this.#finish('joined', 0)
        }
        return
      }
    }
    this.#forward(message, position)
  }

  #forward (message: Message, position: ReplayPosition | undefined): void {
    const channel = message.channel
    const id = formatId(this.#host.epoch, this.#o.anchorSeq) + (position === undefined ? '' : replaySuffix(position, channel))
    this.caller.send(messageFrame(id, channel, message.data, message.ext), id)
    if (position !== undefined) this.#forwarded.add(positionKey(position))
    this.#replayed++
  }

  #armIdle (): void {
    if (this.#idle !== null) clearTimeout(this.#idle)
    this.#idle = setTimeout(() => { this.#finish('idle') }, this.#o.idleMs ?? DEEP_RESUME_IDLE_MS)
    this.#idle.unref()
  }

  #fail (err: unknown): void {
    if (this.#done) return
    this.#host.onError?.(err)
    this.#host.log.warn({ caller: this.caller.id, channel: this.#o.channel, err }, 'deep resume failed: the caller gets a gap')
    this.#finish('failed', undefined, errorText(err))
  }

  #finish (outcome: DeepOutcome, afterSeq?: number, error?: string): void {
    if (this.#done) return
    this.#done = true
    this.#cleanup()
    let gap: Gap | null = null
    if (outcome === 'timeout' || outcome === 'failed') {
      const g: Gap & Record<string, unknown> = {
        reason: 'too-old',
        lastEventId: this.#o.lastEventId,
        firstAvailableId: null,
        currentId: this.#host.seq === 0 ? null : formatId(this.#host.epoch, this.#host.seq),
        channels: [this.#o.channel],
        deepResume: outcome
      }
      if (error !== undefined) g.error = error
      gap = g
    }
    this.#host.log.info({ caller: this.caller.id, channel: this.#o.channel, outcome, replayed: this.#replayed, durationMs: Date.now() - this.startedAt, expired: this.#expired !== null }, 'deep resume finished')
    this.#host.join(this.caller, this.#o.channel, afterSeq ?? this.#o.anchorSeq, this.#forwarded, gap, outcome)
  }

  #cleanup (): void {
    if (this.#idle !== null) clearTimeout(this.#idle)
    if (this.#deadline !== null) clearTimeout(this.#deadline)
    this.#idle = null
    this.#deadline = null
    const client = this.#client
    this.#client = null
    if (client !== null) void withDeadline(client.close(), this.#host.opTimeoutMs, 'deep resume close').catch(() => {})
  }
}
