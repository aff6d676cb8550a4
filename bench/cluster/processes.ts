/**
 * The servers of the cluster suite, each its own process on 127.0.0.1:
 *
 *   redis     a real redis-server (lib/redis.ts), no persistence
 *   single    one bridge alone (no cluster block): the reference
 *   replicas  three bridges with the same settings plus `cluster: { redis, replicaId, keyPrefix }`, sharing the Redis
 *
 * Every bridge has one session `up` (websocket, its channel held with `subscribe`) to the same upstream, and the
 * settings of the fan-out suite's bridge (logLevel warn, demo off, shutdownTimeoutMs 1000, sse.maxCallers) but a
 * larger per-caller queue bound (sse.maxQueueBytes 16 MiB). The single bridge and the replicas hold different
 * channels, so the one not measured receives nothing.
 */
import { Daemon, getJson } from '../lib/daemon.js'
import { RedisServer } from '../lib/redis.js'
import { sleep } from '../lib/clock.js'

export const SINGLE_CHANNEL = '/bench/single'
export const CLUSTER_CHANNEL = '/bench/cluster'
export const SESSION = 'up'

/** The parts of GET /sessions/:name this suite reads (a replica adds holder, role, replicaId). */
interface SessionView {
  state?: string
  subscriptions?: Array<{ state: string }>
  holder?: string | null
  role?: string
  replicaId?: string
  term?: number | null
}

const sessionUrl = (base: string): string => `${base}/sessions/${SESSION}`
const connected = (v: SessionView | null): boolean => v !== null && v.state === 'connected' && (v.subscriptions ?? []).every((s) => s.state === 'subscribed')

function bridgeConfig (upstreamUrl: string, channel: string, o: ServerOptions): Record<string, unknown> {
  return {
    logLevel: o.logLevel ?? 'warn',
    demo: false,
    shutdownTimeoutMs: 1000,
    sessions: { [SESSION]: { url: upstreamUrl, connectionTypes: ['websocket'], subscribe: [channel] } },
    // a caller that falls 1 MiB behind (the default) is dropped as slow: under the load phase's backlog the
    // cluster would lose callers instead of showing its rate; both variants get the same bound
    sse: { maxCallers: o.maxCallers, maxQueueBytes: 16 * 1024 * 1024 }
  }
}

export interface Servers {
  redis: RedisServer
  single: Daemon
  /** [holder, follower, follower] once they agreed */
  replicas: Daemon[]
  /** the process ids whose CPU a variant costs: the single bridge; the replicas and Redis */
  pids: { single: number[], cluster: number[] }
  stop: () => Promise<void>
}

export interface ServerOptions {
  maxCallers: number
  /** node flags of every bridge, e.g. --cpu-prof */
  execArgv?: string[]
  /** every bridge's logLevel (default warn); their log is read for lease losses, and shown with BENCH_VERBOSE=1 */
  logLevel?: string
}

/** Redis, then the single bridge and the three replicas together; resolves once the replicas agree on a holder. */
export async function startServers (upstreamUrl: string, o: ServerOptions): Promise<Servers> {
  const redis = await RedisServer.start()
  const started: Daemon[] = []
  const stop = async (): Promise<void> => {
    await Promise.all(started.map(async (d) => { await d.stop() }))
    await redis.stop()
  }
  try {
    const keyPrefix = `bench-${process.pid}`
    const opts = { ready: async (base: string) => (await getJson<SessionView>(sessionUrl(base))) !== null, execArgv: o.execArgv ?? [] }
    const all = await Promise.all([
      Daemon.start('single', bridgeConfig(upstreamUrl, SINGLE_CHANNEL, o),
        { ...opts, ready: async (base: string) => connected(await getJson<SessionView>(sessionUrl(base))) }),
      ...['a', 'b', 'c'].map(async (id) => await Daemon.start(`replica-${id}`,
        { ...bridgeConfig(upstreamUrl, CLUSTER_CHANNEL, o), cluster: { redis: redis.url, replicaId: id, keyPrefix } }, opts))
    ].map(async (p) => { const d = await p; started.push(d); return d }))
    const [single, ...replicas] = all as [Daemon, ...Daemon[]]
    const servers = { redis, single, replicas, pids: { single: [single.pid], cluster: [] }, stop }
    await settle(servers)
    return servers
  } catch (error) {
    await stop()
    throw error
  }
}

/**
 * The longest event-loop delay of a bridge since the previous call, ms (prom-client's monitorEventLoopDelay behind
 * /metrics, reset at every scrape; 10 ms resolution): what a lease renewal waits for in a saturated holder.
 */
export async function eventLoopLagMaxMs (base: string): Promise<number> {
  const text = await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) }).then(async (r) => await r.text(), () => '')
  const m = /^cometd_bridge_nodejs_eventloop_lag_max_seconds ([\d.e+-]+)$/m.exec(text)
  return m === null ? Number.NaN : Number(m[1]) * 1000
}

/** Why a replica gave its lease up, from its log (the daemon warns "lease lost: …" with a reason). */
export function leaseLossReasons (servers: Servers, sinceLine: number[]): string[] {
  return servers.replicas.flatMap((r, i) => r.logLines('lease lost', sinceLine[i]).map((line) => {
    const reason = /"reason":"([^"]*)"/.exec(line)?.[1] ?? line.slice(0, 200)
    return `${r.name}: ${reason}`
  }))
}

/** Waits until the replicas agree on a connected holder and puts it first in `servers.replicas` (it may have moved). */
export async function settle (servers: Servers, maxMs = 20_000): Promise<void> {
  const at = await agreedHolder(servers.replicas, maxMs)
  servers.replicas = [servers.replicas[at]!, ...servers.replicas.filter((_r, i) => i !== at)]
  servers.pids.cluster = [...servers.replicas.map((r) => r.pid), servers.redis.pid]
}

/** Who holds the session with which term, as each replica sees it: a phase is clean when this did not change. */
export async function leaseState (servers: Servers): Promise<string> {
  const views = await Promise.all(servers.replicas.map(async (r) => await getJson<SessionView>(sessionUrl(r.base))))
  return views.map((v) => v === null ? 'no answer' : `${v.holder ?? 'none'}|${v.term ?? '?'}`).join(' ')
}

/** The index of the replica that all three name as holder, once it is connected upstream and subscribed. */
async function agreedHolder (replicas: Daemon[], maxMs: number): Promise<number> {
  const start = Date.now()
  for (let i = 0; i < 1_000 && Date.now() - start < maxMs; i++) {
    const views = await Promise.all(replicas.map(async (r) => await getJson<SessionView>(sessionUrl(r.base))))
    const at = views.findIndex((v) => v?.role === 'holder')
    const holder = views[at]
    if (holder != null && connected(holder) && views.every((v) => v?.holder === holder.replicaId)) return at
    await sleep(100)
  }
  throw new Error(`the replicas did not agree on a connected holder of ${SESSION} within ${maxMs} ms`)
}
