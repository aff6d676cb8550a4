/**
 * The reliable-delivery part of one bridge session's upstream link: the upstream options
 * `ack`, `replay` (ReplaySupport: Salesforce replay with durable checkpoints) and `auth` (TokenProvider: Bearer
 * token from a file, a command or an OAuth refresh token), and the reports of replay fallbacks, token refreshes
 * and limit errors (`event: upstream`, GET /sessions/:name).
 */
import { ServerError } from '../../client-core/index.js'
import type { ClientOptions, Logger, StateChange } from '../../client-core/index.js'
import type { SessionConfig } from '../../config/index.js'
import { ReplaySupport } from '../event-log/replay.js'
import type { FallbackRecord, ReplayView } from '../event-log/replay.js'
import { redactUrl } from '../session/view.js'
import { TokenProvider } from './token.js'
import type { TokenView } from './token.js'
import { errorText } from '../deadline.js'

/** Limit errors at open: the wait starts at 8 s and doubles up to 2 min, between half and all of it. */
const LIMIT_OPEN_MIN_MS = 8_000
const LIMIT_OPEN_MAX_MS = 120_000

export interface ReliableOptions {
  /** where replay checkpoints are kept (config `dataDir`) */
  dataDir: string
  checkpointIntervalMs: number
  log: Logger
  currentSeq: () => number
  /** sends `event: upstream` with these fields (to the callers of `channel` only, when given) */
  report: (status: string, reason: string, extra: Record<string, unknown>, channel?: string) => void
}

export interface LimitRecord { error: string, at: string, retryInMs: number | null }

export interface ReliableView {
  ack: boolean
  replay: ReplayView | null
  auth: TokenView | null
  limits: { errors: number, last: LimitRecord | null }
}

/** `403::Organization concurrent user limit exceeded`, daily limits, … */
export function isLimitError (err: unknown): boolean {
  if (!(err instanceof ServerError)) return false
  return /limit exceeded/i.test(err.error ?? err.message)
}

export class SessionReliability {
  readonly ack: boolean
  readonly replay: ReplaySupport | null
  readonly tokens: TokenProvider | null
  readonly limits = { errors: 0, last: null as LimitRecord | null }
  #limitOpenAttempt = 0
  readonly #o: ReliableOptions

  constructor (name: string, config: SessionConfig, options: ReliableOptions) {
    this.#o = options
    this.ack = config.ack === true
    const auth = config.auth
    this.tokens = auth !== undefined && auth !== null ? new TokenProvider(auth, options.log) : null
    this.tokens?.on((e) => {
      if (e.kind === 'refreshed') options.report('token-refreshed', 'authentication failed: a new token was fetched', { refreshes: e.refreshes, source: this.tokens?.source })
      else options.report('token-failed', 'no token from the token source', { error: e.error, source: this.tokens?.source })
    })
    const replay = config.replay
    this.replay = replay?.enabled === true
      ? new ReplaySupport({
        session: name,
        url: checkpointUrl(config.url),
        config: replay,
        dataDir: options.dataDir,
        checkpointIntervalMs: options.checkpointIntervalMs,
        bufferSize: config.bufferSize,
        log: options.log,
        currentSeq: options.currentSeq,
        onFallback: (r) => { this.#onFallback(r) }
      })
      : null
  }

  /** What the upstream client needs: ack, the replay extension, the Bearer auth. */
  clientOptions (): Pick<ClientOptions, 'ack' | 'extensions' | 'auth'> {
    const out: Pick<ClientOptions, 'ack' | 'extensions' | 'auth'> = {}
    if (this.ack) out.ack = true
    if (this.replay !== null) out.extensions = [this.replay.extension]
    if (this.tokens !== null) out.auth = this.tokens.bearer()
    return out
  }

  #onFallback (r: FallbackRecord): void {
    this.#o.log.warn({ channel: r.channel, refused: r.refused, fallback: r.fallback, error: r.error }, 'replay position refused by the upstream: fell back (events may have been missed)')
    this.#o.report('replay-fallback', 'the upstream refused the stored replay position', {
      channel: r.channel, refused: r.refused, fallback: r.fallback, error: r.error, mayHaveMissed: true
    }, r.channel)
  }

  /** A state change of the upstream client: a limit error is counted and reported with the wait. */
  noteState (e: StateChange): void {
    if (e.error !== undefined && isLimitError(e.error)) this.noteLimit(e.error, e.delayMs ?? null)
  }

  noteLimit (err: unknown, retryInMs: number | null): void {
    const error = err instanceof ServerError && err.error !== null ? err.error : errorText(err)
    this.limits.errors++
    this.limits.last = { error, at: new Date().toISOString(), retryInMs }
    this.#o.log.warn({ error, retryInMs }, 'upstream limit error: backing off')
    this.#o.report('limit', 'the upstream refused: limit exceeded', { error, retryInMs })
  }

  /** The wait before the next open() after one failed with a limit error (growing, jittered). */
  limitOpenDelay (): number {
    const cap = Math.min(LIMIT_OPEN_MAX_MS, LIMIT_OPEN_MIN_MS * 2 ** Math.min(this.#limitOpenAttempt, 10))
    this.#limitOpenAttempt++
    return Math.round(cap / 2 + Math.random() * cap / 2)
  }

  /** The session is open again. */
  opened (): void {
    this.#limitOpenAttempt = 0
  }

  async close (): Promise<void> {
    await this.replay?.close()
  }

  view (): ReliableView {
    return {
      ack: this.ack,
      replay: this.replay?.view() ?? null,
      auth: this.tokens?.view() ?? null,
      limits: { errors: this.limits.errors, last: this.limits.last }
    }
  }
}

/** The URL recorded in checkpoints: no credentials, no query (tokens sometimes travel there). */
export function checkpointUrl (url: string): string {
  const redacted = redactUrl(url)
  const q = redacted.indexOf('?')
  return q < 0 ? redacted : redacted.slice(0, q)
}
