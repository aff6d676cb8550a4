/**
 * The replica's one reader loop: a single blocking XREAD over the streams of every session this replica serves
 * (not one per caller, not one per session), each from the position its log delivered last. New sessions end the
 * current blocking read at once (CLIENT UNBLOCK). When Redis lost its data (another epoch), every log starts over
 * on the new stream and tells its followers first.
 */
import type { RedisLink } from './redis.js'
import { redisErrorText } from './errors.js'
import type { RedisStreamLog } from './stream-log.js'
import type { RawEntry } from './stream-format.js'
import type { SessionLogger } from '../ops/lazy-log.js'

/** How long one XREAD blocks: a bound on how stale the loop's view of its session list can be. */
const BLOCK_MS = 5_000
const BATCH = 1_000
const RETRY_MIN_MS = 50

export class StreamReader {
  readonly #link: RedisLink
  readonly #log: SessionLogger
  readonly #logs = new Map<string, RedisStreamLog>()
  #loop: Promise<void> | null = null
  #closed = false
  #failures = 0
  /** wakes the loop while it waits for Redis or for a first session */
  #wake: (() => void) | null = null
  batches = 0

  constructor (link: RedisLink, log: SessionLogger) {
    this.#link = link
    this.#log = log
    link.onEpochChange(() => {
      for (const l of this.#logs.values()) l.reset()
    })
    link.onState(() => { this.#wake?.() })
  }

  get size (): number { return this.#logs.size }

  /** Reads `log`'s stream from its newest entry on. */
  async add (log: RedisStreamLog): Promise<void> {
    await log.load()
    this.#logs.set(log.keys.stream, log)
    this.#loop ??= this.#run()
    this.#wake?.()
    await this.#link.unblockReader()
  }

  remove (log: RedisStreamLog): void {
    this.#logs.delete(log.keys.stream)
  }

  /** Stops the loop; resolves when it has stopped (a blocking read ends with CLIENT UNBLOCK or the link's close). */
  async close (): Promise<void> {
    this.#closed = true
    this.#wake?.()
    await this.#link.unblockReader()
    await this.#loop
  }

  async #run (): Promise<void> {
    while (!this.#closed) {
      if (this.#link.state !== 'up' || this.#logs.size === 0) {
        await this.#pause(1_000)
        continue
      }
      await this.#readOnce()
    }
  }

  async #readOnce (): Promise<void> {
    const logs = [...this.#logs.values()]
    const epoch = this.#link.epoch
    const args = ['XREAD', 'COUNT', String(BATCH), 'BLOCK', String(BLOCK_MS), 'STREAMS',
      ...logs.map((l) => l.keys.stream), ...logs.map((l) => l.position)]
    try {
      const reply = await this.#link.blockingRead(args, BLOCK_MS, Math.max(1_000, this.#link.config.leaseMs)) as Array<[string, RawEntry[]]> | null
      this.#failures = 0
      // a reply of a Redis whose data changed meanwhile: the logs start over on the new stream instead
      if (reply === null || this.#link.epoch !== epoch) return
      this.batches++
      for (const [key, entries] of reply) this.#logs.get(String(key))?.ingest(entries)
    } catch (err) {
      if (this.#closed) return
      this.#failures++
      if (this.#failures === 1 || this.#failures % 100 === 0) this.#log.warn({ error: redisErrorText(err), failures: this.#failures }, 'stream reader: read failed')
      await this.#pause(Math.min(1_000, RETRY_MIN_MS * 2 ** Math.min(this.#failures, 5)))
    }
  }

  /** Waits `ms`, or less when woken (Redis state change, new session, close). */
  async #pause (ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { this.#wake = null; resolve() }, ms)
      timer.unref()
      this.#wake = () => { clearTimeout(timer); this.#wake = null; resolve() }
    })
  }
}
