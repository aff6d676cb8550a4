/**
 * Resume for replay sessions (Salesforce replay ids): a one-channel stream whose Last-Event-ID the ring can no
 * longer serve is resumed from its upstream replay position — from the ring when the position is still held,
 * else by a deep resume (deep-resume.ts: an extra upstream client replays from the position, then the caller joins
 * the live stream). This coordinates the deep resumes of one session: at most `deepResumeMaxClients` at a time, the
 * caller held back from live delivery while it catches up, and nothing delivered twice when it joins.
 */
import type { Client, Logger, ReplayExtension } from '../../client-core/index.js'
import type { Caller } from '../hub/caller.js'
import type { Hub } from '../hub/hub.js'
import { channelMatches } from '../channels.js'
import { DeepResume } from './deep-resume.js'
import type { DeepOutcome } from './deep-resume.js'
import type { MemoryEventLog } from './memory-log.js'
import type { ReplaySupport } from './replay.js'
import { positionKey } from './replay.js'
import type { Gap, ResumePlan } from './resume.js'

export interface DeepTarget { channel: string, position: number | string, anchorSeq: number }

export interface DeepResumesHost {
  log: MemoryEventLog
  replay: ReplaySupport
  hub: Hub
  url: string
  /** deadline of one upstream round trip (open, subscribe) */
  opTimeoutMs: number
  /** a new upstream client with the session's options and `extension` */
  newClient: (extension: ReplayExtension) => Client
  onError: (err: unknown) => void
  /** a `gap` event to the caller (counted by the session) */
  sendGap: (caller: Caller, gap: Gap) => void
  closing: () => boolean
  logger: Logger
}

export class DeepResumes {
  readonly #host: DeepResumesHost
  readonly #runners = new Map<Caller, DeepResume>()

  constructor (host: DeepResumesHost) {
    this.#host = host
  }

  /** A better plan than `base` for a one-channel stream of a replay session, or a deep resume to start. */
  resolve (lastEventId: string | null, patterns: string[], base: ResumePlan): { plan: ResumePlan, deep: DeepTarget | null } {
    const { log, replay } = this.#host
    const d = replay.resolve(lastEventId, patterns, base, { epoch: log.epoch, seq: log.lastSeq, ring: log.ring })
    if (d === null) return { plan: base, deep: null }
    if (d.kind === 'ring') {
      return { plan: { replay: replay.ringEntries(log.ring, d.channel, d.afterSeq), gap: d.gap, afterSeq: d.afterSeq }, deep: null }
    }
    if (this.#host.closing() || this.#runners.size >= replay.config.deepResumeMaxClients) {
      replay.deepStats.busy++
      const gap = base.gap === null ? null : { ...base.gap, deepResume: 'busy' } as Gap
      return { plan: { ...base, gap }, deep: null }
    }
    return { plan: { replay: [], gap: null, afterSeq: d.anchorSeq }, deep: d }
  }

  /** Holds the caller back from live delivery and prepares its deep resume (started by the caller's attach). */
  prepare (caller: Caller, d: DeepTarget, lastEventId: string): DeepResume {
    const { replay, log } = this.#host
    const runner = new DeepResume({
      epoch: log.epoch,
      url: this.#host.url,
      get seq () { return log.lastSeq },
      seqOf: (c, p) => replay.seqOf(c, p),
      covers: (c, s) => replay.covers(c, s),
      createClient: this.#host.newClient,
      join: (c, channel, afterSeq, skip, gap, outcome) => { this.#join(c, channel, afterSeq, skip, gap, outcome) },
      onError: this.#host.onError,
      log: this.#host.logger,
      opTimeoutMs: this.#host.opTimeoutMs
    }, caller, { channel: d.channel, position: d.position, anchorSeq: d.anchorSeq, lastEventId, timeoutMs: replay.config.deepResumeTimeoutMs })
    this.#runners.set(caller, runner)
    this.#host.hub.hold(caller)
    replay.deepStats.started++
    replay.deepStats.active = this.#runners.size
    return runner
  }

  /** The caller left: its deep resume stops without joining. */
  stop (caller: Caller): void {
    const runner = this.#runners.get(caller)
    if (runner === undefined) return
    this.#runners.delete(caller)
    runner.stop()
    this.#finished(runner, 'stopped')
  }

  stopAll (): void {
    for (const runner of this.#runners.values()) runner.stop()
    this.#runners.clear()
  }

  /** The end of a deep resume: the caller gets the log from `afterSeq` on (what it already got skipped), then live. */
  #join (caller: Caller, channel: string, afterSeq: number, skip: Set<string>, gap: Gap | null, outcome: DeepOutcome): void {
    const runner = this.#runners.get(caller)
    if (runner === undefined) return
    this.#runners.delete(caller)
    this.#finished(runner, outcome)
    const { hub, log } = this.#host
    hub.release(caller)
    if (caller.closed || this.#host.closing()) return
    if (gap !== null) this.#host.sendGap(caller, gap)
    for (const entry of log.since(afterSeq, (e) => channelMatches(channel, e.channel))) {
      if (entry.replayId !== undefined && skip.has(positionKey(entry.replayId))) continue
      caller.send(entry.frame, entry.id, false)
    }
    caller.lastSeq = log.lastSeq
    // a deep resume that did not meet the ring: live messages it already replayed are not sent again
    if (outcome !== 'joined' && skip.size > 0) {
      hub.filter(caller, (e) => e.replayId !== undefined && skip.delete(positionKey(e.replayId)) ? 'skip' : 'done')
    }
  }

  #finished (runner: DeepResume, outcome: DeepOutcome): void {
    const stats = this.#host.replay.deepStats
    stats.active = this.#runners.size
    stats.replayedEvents += runner.replayed
    if (outcome === 'joined' || outcome === 'idle') stats.joined++
    else if (outcome !== 'stopped') stats.failed++
  }
}
