/**
 * Prometheus metrics: one prom-client Registry per app (tests build many apps in one process), names
 * `cometd_bridge_*`, label `session`. Gauges that mirror live state are computed at scrape time.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface SessionGaugeSource {
  readonly name: string
  readonly state: string
  readonly callerCount: number
  readonly upstreamSubscriptionCount: number
  readonly bufferedCount: number
  /** the session's streaming callers (their queues, at scrape time) */
  readonly hub: { callers: () => Iterable<{ readonly queuedBytes: number }> }
  /** sessions with an upstream token source (structurally BridgeSession.reliable) */
  readonly reliable?: { readonly tokens: { readonly failed: boolean, readonly stats: { readonly refusals: number } } | null }
}

export const UPSTREAM_STATES = ['disconnected', 'handshaking', 'connecting', 'connected', 'reconnecting', 'disconnecting'] as const

export class BridgeMetrics {
  readonly registry = new Registry()
  readonly eventsIn: Counter<'session'>
  readonly eventsOut: Counter<'session'>
  readonly slowDrops: Counter<'session' | 'reason'>
  readonly gaps: Counter<'session' | 'reason'>
  readonly handshakes: Counter<'session' | 'kind'>
  readonly reconnects: Counter<'session'>
  readonly publishDuration: Histogram<'session' | 'outcome'>
  readonly callDuration: Histogram<'session' | 'outcome'>
  readonly callersTotal: Counter<'session'>
  readonly configReloads: Counter<'outcome'>

  constructor (sources: () => Iterable<SessionGaugeSource>, defaultMetrics = true) {
    const registers = [this.registry]
    this.eventsIn = new Counter({ name: 'cometd_bridge_events_in_total', help: 'Messages received from upstream', labelNames: ['session'], registers })
    this.eventsOut = new Counter({ name: 'cometd_bridge_events_out_total', help: 'Message frames queued to SSE callers (one per caller)', labelNames: ['session'], registers })
    this.slowDrops = new Counter({ name: 'cometd_bridge_slow_caller_drops_total', help: 'SSE callers dropped for falling behind', labelNames: ['session', 'reason'], registers })
    this.gaps = new Counter({ name: 'cometd_bridge_resume_gaps_total', help: 'Resumes that could not be served completely (event: gap)', labelNames: ['session', 'reason'], registers })
    this.handshakes = new Counter({ name: 'cometd_bridge_upstream_handshakes_total', help: 'Successful upstream handshakes', labelNames: ['session', 'kind'], registers })
    this.reconnects = new Counter({ name: 'cometd_bridge_upstream_reconnects_total', help: 'Upstream connection re-established after a loss', labelNames: ['session'], registers })
    this.configReloads = new Counter({ name: 'cometd_bridge_config_reloads_total', help: 'Configuration reloads (SIGHUP, POST /admin/reload) by outcome: applied, unchanged, invalid, failed', labelNames: ['outcome'], registers })
    this.callersTotal = new Counter({ name: 'cometd_bridge_callers_total', help: 'SSE callers accepted', labelNames: ['session'], registers })
    const buckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    this.publishDuration = new Histogram({ name: 'cometd_bridge_publish_duration_seconds', help: 'POST publish latency, upstream round trip included', labelNames: ['session', 'outcome'], buckets, registers })
    this.callDuration = new Histogram({ name: 'cometd_bridge_call_duration_seconds', help: 'POST call latency, upstream round trip included', labelNames: ['session', 'outcome'], buckets, registers })
    const perSession = (name: string, help: string, value: (s: SessionGaugeSource) => number): void => {
      new Gauge({
        name, help, labelNames: ['session'], registers,
        collect () {
          this.reset()
          for (const s of sources()) this.set({ session: s.name }, value(s))
        }
      })
    }
    perSession('cometd_bridge_callers', 'Streaming callers connected now (SSE, NDJSON, WebSocket)', (s) => s.callerCount)
    perSession('cometd_bridge_upstream_connected', '1 when the upstream session is connected', (s) => s.state === 'connected' ? 1 : 0)
    perSession('cometd_bridge_upstream_subscriptions', 'Upstream subscriptions held (permanent and caller-driven)', (s) => s.upstreamSubscriptionCount)
    perSession('cometd_bridge_buffered_messages', 'Messages held in the resume buffer', (s) => s.bufferedCount)
    perSession('cometd_bridge_caller_queue_bytes', 'Bytes queued to streaming callers, not yet taken by their sockets (sum over the session\'s callers)', (s) => queued(s).sum)
    perSession('cometd_bridge_caller_queue_max_bytes', 'The largest queue of one streaming caller (a caller is dropped as slow beyond sse.maxQueueBytes)', (s) => queued(s).max)
    new Gauge({
      name: 'cometd_bridge_upstream_state',
      help: 'Upstream client state (1 for the current state)',
      labelNames: ['session', 'state'],
      registers,
      collect () {
        this.reset()
        for (const s of sources()) {
          for (const state of UPSTREAM_STATES) this.set({ session: s.name, state }, s.state === state ? 1 : 0)
        }
      }
    })
    perSession('cometd_bridge_upstream_token_failed', '1 while the upstream refuses the session\'s token and its source gives no other (token-failed)',
      (s) => s.reliable?.tokens?.failed === true ? 1 : 0)
    new Counter({
      name: 'cometd_bridge_upstream_token_refusals_total',
      help: 'Upstream refusals of the session\'s token (HTTP 401/403, 401::Authentication invalid, 403::Handshake denied)',
      labelNames: ['session'],
      registers,
      collect () {
        this.reset()
        for (const s of sources()) if (s.reliable?.tokens != null) this.inc({ session: s.name }, s.reliable.tokens.stats.refusals)
      }
    })
    if (defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'cometd_bridge_' })
  }
}

function queued (source: SessionGaugeSource): { sum: number, max: number } {
  let sum = 0
  let max = 0
  for (const caller of source.hub.callers()) {
    sum += caller.queuedBytes
    if (caller.queuedBytes > max) max = caller.queuedBytes
  }
  return { sum, max }
}
