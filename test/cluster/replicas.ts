/**
 * Bridge replicas as real processes (server/main.ts through the test loader) sharing one test Redis: a config
 * file per replica, its port from the "listening" line, and small helpers to ask who holds a session.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnNode } from '../server/fixtures/spawn.js'
import type { Child } from '../server/fixtures/spawn.js'
import { request } from '../server/fixtures/bridge.js'
import type { FayePeer } from '../helpers/faye.js'
import { waitFor } from '../helpers/wait.js'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface ReplicaOptions {
  redis: string
  id: string
  sessions: Record<string, Record<string, unknown>>
  leaseMs?: number
  /** more top-level config */
  extra?: Record<string, unknown>
}

export interface Replica {
  id: string
  child: Child
  base: string
  /** GET /sessions/:name */
  view: (session: string) => Promise<Record<string, any>>
}

export async function startReplica (t: Teardown, o: ReplicaOptions): Promise<Replica> {
  const dir = mkdtempSync(join(tmpdir(), `bridge-${o.id}-`))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  const file = join(dir, 'bridge.json')
  writeFileSync(file, JSON.stringify({
    listen: { host: '127.0.0.1', port: 0 },
    logLevel: 'info',
    auth: { allowUnauthenticated: true },
    shutdownTimeoutMs: 3_000,
    dataDir: join(dir, 'data'),
    sse: { heartbeatMs: 2_000, retryMs: 200 },
    sessions: o.sessions,
    cluster: { redis: o.redis, replicaId: o.id, leaseMs: o.leaseMs ?? 1_000, keyPrefix: 'ct' },
    ...o.extra
  }))
  const child = spawnNode(t, 'server/main.ts', ['--config', file])
  const port = await child.port(60_000)
  const base = `http://127.0.0.1:${port}`
  return {
    id: o.id,
    child,
    base,
    view: async (session) => (await request(`${base}/sessions/${session}`)).json as Record<string, any>
  }
}

/** The replica id every live replica names as the holder of `session`, once they agree on one that holds it. */
export async function agreedHolder (replicas: Replica[], session: string, timeoutMs = 15_000): Promise<string> {
  return await waitFor(async () => {
    const views = await Promise.all(replicas.map(async (r) => await r.view(session).catch(() => null)))
    const holders = new Set(views.map((v) => v?.holder ?? null))
    const holder = views.find((v) => v?.role === 'holder') ?? undefined
    return holders.size === 1 && holder != null && holder.holder === holder.replicaId ? String(holder.holder) : null
  }, { timeoutMs, intervalMs: 50, message: `the replicas agree on the holder of ${session}` })
}

/**
 * The upstream clients connected to a faye peer now: those polling over HTTP or websocket (Faye's own in-process
 * client, used by faye.publish, is not one). Counted at the upstream, where "exactly one holder" is visible.
 */
export function upstreamClients (faye: Pick<FayePeer, 'bayeux'>): Set<string> {
  const clients = new Set<string>()
  faye.bayeux.addExtension({
    incoming: (m, _req, cb) => {
      if (m.channel === '/meta/connect' && m.connectionType !== 'in-process' && typeof m.clientId === 'string') clients.add(m.clientId)
      cb(m)
    }
  })
  faye.bayeux.on('disconnect', (id) => { clients.delete(id) })
  return clients
}
