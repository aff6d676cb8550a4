/**
 * A configuration reload (SIGHUP, POST /admin/reload): the new configuration is read and validated the way
 * start-up reads it; an invalid one changes nothing. A valid one is compared with the running one and applied:
 *
 * - sessions added are built and started; sessions removed end their callers with an in-band `upstream` event
 *   `{status: "removed"}` and close upstream;
 * - a session whose settings changed (url, headers, auth, tls, connection types, proxy, replay, subscriptions …:
 *   everything under `sessions.<name>` concerns its upstream) is restarted alone: its callers get
 *   `{status: "restarting"}` and `event: shutdown`, and reconnect (with Last-Event-ID) to the new session;
 * - everything else is adopted at once by the host (tokens, ACLs, JWT settings, stream and HTTP limits):
 *   new requests use it, callers of unchanged sessions stay connected;
 * - a few settings can only change at start-up (RESTART_ONLY; the log level too: every session's child logger
 *   took it when it was made): they are reported, not applied.
 *
 * Reloads run one at a time. Dynamic sessions (opened by callers) are not the configuration's: they stay.
 */
import type { Config, ConfigIssue, SessionConfig } from '../../config/index.js'

/** Settings the running process cannot change (the listening socket, Fastify's body limit, plugins registered at start). */
export const RESTART_ONLY = ['listen', 'logLevel', 'demo', 'dataDir', 'checkpointIntervalMs', 'http.bodyLimitBytes', 'http.cors',
  'dynamicSessions.enabled'] as const

export interface ReloadPlan {
  added: string[]
  removed: string[]
  restarted: string[]
  /** settings (paths such as `auth.tokens`, `sse.maxCallers`) that changed and apply now */
  settings: string[]
  /** settings that changed but apply only when the bridge is restarted */
  needsRestart: string[]
}

export type ReloadOutcome =
  | ({ outcome: 'applied' | 'unchanged' | 'failed', failed: Array<{ session: string, message: string }> } & ReloadPlan)
  | { outcome: 'invalid', errors: ConfigIssue[] }
  | { outcome: 'unavailable', message: string }

/** What reading the configuration gives (config/load.ts `loadConfig`, as start-up calls it). */
export type ConfigSource = () => { ok: true, config: Config } | { ok: false, errors: ConfigIssue[] }

interface Retirable {
  retire: (status: 'removed' | 'restarting', reason: string, deadlineMs: number) => Promise<void>
}

/** What a reload needs from the bridge. */
export interface ReloadHost {
  readonly config: Config
  /** re-reads the configuration; null when this bridge was built without a source (embedded) */
  readonly source: ConfigSource | null
  /** true while the bridge shuts down */
  stopped: () => boolean
  /** a session of this name is registered (configured or dynamic) */
  has: (name: string) => boolean
  /** unregisters a session (new requests get 404 at once) */
  remove: (name: string) => Retirable | undefined
  /** builds, registers and starts a session; throws when it cannot be built */
  add: (name: string, config: SessionConfig) => void
  /** makes `config` the running configuration: new requests see its tokens, ACLs and limits */
  adopt: (config: Config) => void
  /** counts the reload and logs its outcome */
  report: (outcome: ReloadOutcome, trigger: string) => void
}

/** Stable JSON: object keys sorted, so a reordered mapping is no change. */
function stable (value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v
    return Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
  }) ?? 'undefined'
}

function valueAt (config: unknown, path: string): unknown {
  let v = config
  for (const key of path.split('.')) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[key] : undefined
  return v
}

/** Changed settings outside `sessions`, as `top` or `top.key` paths. */
function changedSettings (current: Config, next: Config): string[] {
  const out: string[] = []
  for (const top of new Set([...Object.keys(current), ...Object.keys(next)])) {
    if (top === 'sessions') continue
    const a = valueAt(current, top)
    const b = valueAt(next, top)
    if (stable(a) === stable(b)) continue
    const objects = a !== null && typeof a === 'object' && !Array.isArray(a) && b !== null && typeof b === 'object' && !Array.isArray(b)
    if (!objects) { out.push(top); continue }
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      if (stable(valueAt(a, key)) !== stable(valueAt(b, key))) out.push(`${top}.${key}`)
    }
  }
  return out
}

const isUnder = (path: string, ancestor: string): boolean => path === ancestor || path.startsWith(`${ancestor}.`)

/** What changes from `current` to `next`; an error when a new session's name is taken by a dynamic session. */
export function planReload (current: Config, next: Config, has: (name: string) => boolean): { ok: true, plan: ReloadPlan } | { ok: false, errors: ConfigIssue[] } {
  const before = current.sessions
  const after = next.sessions
  const added = Object.keys(after).filter((n) => !Object.hasOwn(before, n))
  const taken = added.filter(has)
  if (taken.length > 0) {
    return { ok: false, errors: taken.map((n) => ({ path: `sessions.${n}`, message: 'a dynamic session has this name: close it (DELETE /sessions/:name) or choose another name' })) }
  }
  const needsRestart = RESTART_ONLY.filter((p) => stable(valueAt(current, p)) !== stable(valueAt(next, p)))
  return {
    ok: true,
    plan: {
      added,
      removed: Object.keys(before).filter((n) => !Object.hasOwn(after, n)),
      restarted: Object.keys(after).filter((n) => Object.hasOwn(before, n) && stable(before[n]) !== stable(after[n])),
      settings: changedSettings(current, next).filter((p) => !needsRestart.some((r) => isUnder(p, r) || isUnder(r, p))),
      needsRestart: [...needsRestart]
    }
  }
}

function isEmpty (plan: ReloadPlan): boolean {
  return plan.added.length + plan.removed.length + plan.restarted.length + plan.settings.length + plan.needsRestart.length === 0
}

export class Reloader {
  readonly #host: ReloadHost
  readonly #closeBudgetMs: () => number
  /** the reload running now: the next one starts when it is over */
  #queue: Promise<unknown> = Promise.resolve()

  constructor (host: ReloadHost, closeBudgetMs: () => number) {
    this.#host = host
    this.#closeBudgetMs = closeBudgetMs
  }

  /** Reads, validates and applies the configuration; never rejects. */
  async reload (trigger: string): Promise<ReloadOutcome> {
    const run = this.#queue.then(async () => await this.#reload())
    this.#queue = run
    const outcome = await run
    this.#host.report(outcome, trigger)
    return outcome
  }

  async #reload (): Promise<ReloadOutcome> {
    const host = this.#host
    if (host.source === null) return { outcome: 'unavailable', message: 'This bridge was built without a configuration source to re-read' }
    if (host.stopped()) return { outcome: 'unavailable', message: 'The bridge is shutting down' }
    let read: ReturnType<ConfigSource>
    try {
      read = host.source()
    } catch (err) {
      read = { ok: false, errors: [{ path: 'config', message: `cannot read the configuration: ${(err as Error).message}` }] }
    }
    if (!read.ok) return { outcome: 'invalid', errors: read.errors }
    const planned = planReload(host.config, read.config, host.has)
    if (!planned.ok) return { outcome: 'invalid', errors: planned.errors }
    const plan = planned.plan
    if (isEmpty(plan)) return { outcome: 'unchanged', failed: [], ...plan }
    host.adopt(read.config)
    const failed = await this.#apply(plan, read.config)
    return { outcome: failed.length > 0 ? 'failed' : 'applied', failed, ...plan }
  }

  /** Removed sessions end, changed ones restart, new ones start; a session that cannot be built is reported. */
  async #apply (plan: ReloadPlan, next: Config): Promise<Array<{ session: string, message: string }>> {
    const host = this.#host
    const budget = this.#closeBudgetMs()
    const failed: Array<{ session: string, message: string }> = []
    const add = (name: string): void => {
      try {
        host.add(name, next.sessions[name]!)
      } catch (err) {
        failed.push({ session: name, message: (err as Error).message })
      }
    }
    await Promise.all([
      ...plan.removed.map(async (name) => { await host.remove(name)?.retire('removed', 'the session was removed from the configuration', budget) }),
      ...plan.restarted.map(async (name) => {
        const closing = host.remove(name)?.retire('restarting', 'the session\'s settings changed: reconnect', budget)
        // a replay session's old self writes its last checkpoint before the new one reads it; any other is
        // replaced at once, so that reconnecting callers never find the name missing
        const replay = next.sessions[name]!.replay.enabled
        if (!replay) add(name)
        await closing
        if (replay) add(name)
      })
    ])
    for (const name of plan.added) add(name)
    return failed
  }
}
