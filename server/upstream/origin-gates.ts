/**
 * One connect gate per upstream origin (scheme, host, port) for the whole daemon: every client that connects there —
 * configured and dynamic sessions, deep resumes — shares it, so while the origin refuses one probe at a time goes
 * out for all of them and, once it is answered, they all come back at once (client-core's ConnectGate). A gate takes
 * the backoff settings of the first session that asks for it. Gates are small and idle gates hold no timer; the
 * number of origins is bounded by the configuration (and `dynamicSessions.allowUrls`).
 */
import { ConnectGate } from '../../client-core/index.js'

export interface BackoffSettings {
  initialBackoffMs?: number | undefined
  maxBackoffMs?: number | undefined
}

export class OriginGates {
  readonly #gates = new Map<string, ConnectGate>()

  /** The gate of `url`'s origin (ws: and wss: are the origins of http: and https:). */
  gateFor (url: string, settings: BackoffSettings = {}): ConnectGate {
    const key = originOf(url)
    let gate = this.#gates.get(key)
    if (gate === undefined) {
      gate = new ConnectGate({
        ...(settings.initialBackoffMs !== undefined ? { initialMs: settings.initialBackoffMs } : {}),
        ...(settings.maxBackoffMs !== undefined ? { maxMs: settings.maxBackoffMs } : {})
      })
      this.#gates.set(key, gate)
    }
    return gate
  }

  get size (): number { return this.#gates.size }
}

function originOf (url: string): string {
  const u = new URL(url)
  const protocol = u.protocol === 'ws:' ? 'http:' : u.protocol === 'wss:' ? 'https:' : u.protocol
  const port = u.port !== '' ? u.port : protocol === 'https:' ? '443' : '80'
  return `${protocol}//${u.hostname}:${port}`
}

/** The daemon's gates: one registry per process, like the origins it connects to. */
export const originGates = new OriginGates()
