/** Field builders shared by the schema files: integers within LIMITS and booleans, both accepting env strings. */
import { z } from 'zod'
import * as D from './defaults.js'

export type Limit = keyof typeof D.LIMITS

/** An integer in LIMITS[name]; a string of digits is accepted too (env values, `port: ${PORT}`). */
function integer (name: Limit) {
  const [min, max] = D.LIMITS[name]
  const message = `must be an integer between ${min} and ${max}`
  return z.preprocess(
    (v) => (typeof v === 'string' && /^[+-]?\d{1,16}$/.test(v.trim()) ? Number(v.trim()) : v),
    z.number({ error: message }).refine((v) => Number.isInteger(v) && v >= min && v <= max, { error: message })
  )
}

export function int (name: Limit, def: number) {
  return integer(name).default(def)
}

/** Like `int`, without a default: absent stays absent (the component's own default applies). */
export function optionalInt (name: Limit) {
  return integer(name).optional()
}

/** A boolean; the strings "true" and "false" are accepted too. */
export function bool (def: boolean) {
  return z.preprocess(
    (v) => (v === 'true' ? true : v === 'false' ? false : v),
    z.boolean({ error: 'must be true or false' })
  ).default(def)
}

/** Parses an http(s) URL for a superRefine; reports "Invalid URL" or the wrong scheme, and returns null then. */
export function httpUrl (value: string, ctx: z.RefinementCtx): URL | null {
  return schemeUrl(value, ctx, ['http:', 'https:'], 'must be an http:// or https:// URL')
}

/** Parses a URL whose scheme is one of `protocols` (with the colon); reports the problem and returns null. */
export function schemeUrl (value: string, ctx: z.RefinementCtx, protocols: readonly string[], wrongScheme: string): URL | null {
  let url: URL
  try {
    url = new URL(value)
  } catch {
    ctx.addIssue({ code: 'custom', message: 'Invalid URL' })
    return null
  }
  if (!protocols.includes(url.protocol)) {
    ctx.addIssue({ code: 'custom', message: wrongScheme })
    return null
  }
  return url
}
