/**
 * Schema pieces of reliable delivery: per session `ack`, `replay` and `auth` (the upstream Bearer
 * token), and the top-level `dataDir` and `checkpointIntervalMs`. See docs/configuration.md and
 * docs/reliable-delivery.md. Messages never echo a value (it may be a secret).
 */
import { z } from 'zod'
import * as D from './defaults.js'
import { bool, httpUrl, int } from './fields.js'




/** -1 (new events only) or -2 (everything the server retains); "-1"/"-2" accepted (env values). */
function policy (def: -1 | -2) {
  const message = 'must be -1 (new events only) or -2 (everything the server retains)'
  return z.preprocess(
    (v) => (typeof v === 'string' && /^\s*-[12]\s*$/.test(v) ? Number(v.trim()) : v),
    z.union([z.literal(-1), z.literal(-2)], { error: message })
  ).default(def)
}

export const replaySchema = z.strictObject({
  /** Salesforce replay: positions per channel, checkpointed under dataDir, resumed from after a restart. */
  enabled: bool(false),
  start: policy(D.DEFAULT_REPLAY_START),
  fallback: policy(D.DEFAULT_REPLAY_FALLBACK),
  deepResume: bool(true),
  deepResumeMaxClients: int('deepResumeMaxClients', D.DEFAULT_DEEP_RESUME_MAX_CLIENTS),
  deepResumeTimeoutMs: int('deepResumeTimeoutMs', D.DEFAULT_DEEP_RESUME_TIMEOUT_MS)
}, { error: 'must be a mapping, e.g. { enabled: true }' })

const nonEmpty = (what: string) => z.string({ error: `must be a string (${what})` })
  .refine((v) => v.trim() !== '', { error: `must not be empty (${what})` })

const tokenUrl = z.string({ error: 'must be a URL' }).superRefine((value, ctx) => { httpUrl(value, ctx) })

/** The upstream Bearer token: exactly one of tokenFile, tokenCommand, tokenUrl (+ clientId, refreshToken). */
export const upstreamAuthSchema = z.strictObject({
  tokenFile: nonEmpty('a file path').optional(),
  tokenCommand: nonEmpty('a shell command').optional(),
  tokenUrl: tokenUrl.optional(),
  clientId: nonEmpty('the OAuth client id').optional(),
  clientSecret: z.string({ error: 'must be a string' }).optional(),
  refreshToken: nonEmpty('the OAuth refresh token').optional(),
  timeoutMs: int('tokenTimeoutMs', D.DEFAULT_TOKEN_TIMEOUT_MS),
  scheme: z.enum(['Bearer', 'OAuth'], { error: 'must be Bearer or OAuth' }).default('Bearer')
}, { error: 'must be a mapping with tokenFile, tokenCommand or tokenUrl' }).superRefine((a, ctx) => {
  const sources = [a.tokenFile, a.tokenCommand, a.tokenUrl].filter((v) => v !== undefined).length
  if (sources !== 1) {
    ctx.addIssue({ code: 'custom', message: 'give exactly one of tokenFile, tokenCommand or tokenUrl' })
    return
  }
  if (a.tokenUrl !== undefined) {
    if (a.clientId === undefined) ctx.addIssue({ code: 'custom', path: ['clientId'], message: 'required with tokenUrl (the OAuth refresh-token flow)' })
    if (a.refreshToken === undefined) ctx.addIssue({ code: 'custom', path: ['refreshToken'], message: 'required with tokenUrl (the OAuth refresh-token flow)' })
  } else {
    for (const key of ['clientId', 'clientSecret', 'refreshToken'] as const) {
      if (a[key] !== undefined) ctx.addIssue({ code: 'custom', path: [key], message: 'only used with tokenUrl' })
    }
  }
})

/** Session keys of reliable delivery (spread into the session schema). */
export const reliableSessionKeys = {
  /** acknowledged delivery (CometD ack extension) */
  ack: bool(false),
  replay: replaySchema.prefault({}),
  auth: upstreamAuthSchema.optional()
}

/** Top-level keys of reliable delivery (spread into the config schema). */
export const reliableTopKeys = {
  dataDir: z.string({ error: 'must be a directory path' })
    .refine((v) => v.trim() !== '' && !v.includes('\0'), { error: 'must be a directory path' })
    .default(D.DEFAULT_DATA_DIR),
  checkpointIntervalMs: int('checkpointIntervalMs', D.DEFAULT_CHECKPOINT_INTERVAL_MS)
}

/** `headers.Authorization` and `auth` both set the Authorization header: one of them is a mistake. */
export function sessionAuthProblem (session: { headers?: Record<string, string>, auth?: unknown }): string | null {
  if (session.auth === undefined || session.headers === undefined) return null
  const clash = Object.keys(session.headers).find((h) => h.toLowerCase() === 'authorization')
  return clash === undefined ? null : `remove headers.${clash}: auth sets the Authorization header (and refreshes it)`
}
