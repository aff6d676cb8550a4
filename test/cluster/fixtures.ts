/** Shared pieces of the cluster tests: a cluster config for a test Redis, a logger that keeps its lines. */
import { Writable } from 'node:stream'
import type { ClusterConfig } from '../../config/index.js'
import { createLogger } from '../../server/ops/logger.js'
import type { AppLogger } from '../../server/ops/logger.js'
import { RedisLink } from '../../server/cluster/redis.js'

let n = 0

export function clusterConfig (url: string, overrides: Partial<ClusterConfig> = {}): ClusterConfig {
  return { redis: url, replicaId: `r${++n}`, leaseMs: 600, streamMaxLen: 1000, keyPrefix: 'test', ...overrides }
}

export interface CapturedLog { log: AppLogger, lines: Array<Record<string, unknown>>, text: () => string }

export function captureLog (level = 'debug'): CapturedLog {
  const lines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim() !== '') lines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  return { log: createLogger(level, stream), lines, text: () => lines.map((l) => JSON.stringify(l)).join('\n') }
}

interface Teardown { teardown: (fn: () => unknown) => void }

/** A RedisLink closed on teardown. */
export async function openLink (t: Teardown, config: ClusterConfig, log = captureLog().log): Promise<RedisLink> {
  const link = await RedisLink.open(config, { log, startTimeoutMs: 3_000 })
  t.teardown(async () => { await link.close() })
  return link
}
