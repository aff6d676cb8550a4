/**
 * The `cluster` block: several bridge replicas sharing one Redis (docs/scale-out.md). Absent = the bridge runs
 * alone and never loads the Redis client. Messages never echo a value: the Redis URL may carry a password.
 */
import { hostname } from 'node:os'
import { z } from 'zod'
import * as D from './defaults.js'
import { int, schemeUrl } from './fields.js'

/** A lease value is `<replicaId>|<term>` and keys embed the prefix: neither may contain `|`, spaces or braces. */
const NAME_RE = /^[A-Za-z0-9_.:-]{1,128}$/

/** `<hostname>-<pid>`: unique per process on one host (a restarted process is another replica). */
export function defaultReplicaId (): string {
  const host = hostname().replace(/[^A-Za-z0-9_.:-]/g, '_').slice(0, 100)
  return `${host === '' ? 'bridge' : host}-${process.pid}`
}

const redisUrl = z.string({
  error: (iss) => (iss.input === undefined
    ? 'required: the Redis URL, e.g. redis://127.0.0.1:6379 (rediss:// for TLS; a password as ${REDIS_PASSWORD})'
    : 'must be a string')
}).superRefine((value, ctx) => {
  const url = schemeUrl(value, ctx, ['redis:', 'rediss:'], 'must be a redis:// or rediss:// URL')
  if (url === null) return
  if (url.hostname === '') {
    ctx.addIssue({ code: 'custom', message: 'Invalid URL: no host' })
  } else if (!/^\/?(\d{1,2})?$/.test(url.pathname)) {
    ctx.addIssue({ code: 'custom', message: 'the path may only be a database number, e.g. redis://host:6379/0' })
  }
})

const name = (what: string) => z.string({ error: `must be a string (${what})` })
  .regex(NAME_RE, { error: `${what}: 1 to 128 letters, digits, "_", ".", ":" or "-"` })

export const clusterSchema = z.strictObject({
  redis: redisUrl,
  replicaId: name('a replica id').default(defaultReplicaId),
  leaseMs: int('leaseMs', D.DEFAULT_CLUSTER_LEASE_MS),
  streamMaxLen: int('streamMaxLen', D.DEFAULT_CLUSTER_STREAM_MAX_LEN),
  keyPrefix: name('a key prefix').default(D.DEFAULT_CLUSTER_KEY_PREFIX)
}, { error: 'must be a mapping with at least redis: redis://host:6379' })

/** Top-level key (spread into the config schema). */
export const clusterTopKeys = {
  cluster: clusterSchema.optional()
}

export type ClusterConfigInput = z.input<typeof clusterSchema>
