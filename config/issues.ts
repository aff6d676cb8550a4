/** Configuration problems: one `{ path, message }` each, with the zod issues turned into readable lines. */
import { z } from 'zod'
import { configSchema } from './schema.js'

export interface ConfigIssue {
  /** Dotted path of the field (`sessions.sf.url`, `sessions.sf.subscribe[1]`), a flag (`--port`), an env var, or `(root)`. */
  path: string
  message: string
}

/** `['sessions', 'sf', 'subscribe', 1]` → `sessions.sf.subscribe[1]`; odd keys are quoted: `headers["a b"]`. */
export function formatPath (segments: readonly PropertyKey[]): string {
  let out = ''
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`
    else if (typeof segment === 'string' && /^[A-Za-z_$][\w$-]*$/.test(segment)) out += out === '' ? segment : `.${segment}`
    else out += `[${JSON.stringify(String(segment))}]`
  }
  return out === '' ? '(root)' : out
}

/** One `path: message` per line. */
export function formatIssues (issues: readonly ConfigIssue[]): string {
  return issues.map((issue) => `${issue.path}: ${issue.message}`).join('\n')
}

/** Converts zod issues; an unknown-keys issue becomes one issue per key, with the key in the path and a suggestion. */
export function fromZodIssues (issues: readonly z.core.$ZodIssue[], schema: z.ZodType = configSchema): ConfigIssue[] {
  const out: ConfigIssue[] = []
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        out.push({ path: formatPath([...issue.path, key]), message: unknownKeyMessage(schema, issue.path, key) })
      }
    } else if (issue.code === 'invalid_key') {
      const inner = issue.issues.map((i) => i.message)
      out.push({ path: formatPath(issue.path), message: inner.length > 0 ? inner.join('; ') : issue.message })
    } else {
      out.push({ path: formatPath(issue.path), message: issue.message })
    }
  }
  return dedupe(out)
}

export function dedupe (issues: readonly ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>()
  return issues.filter((issue) => {
    const key = `${issue.path}\0${issue.message}`
    if (seen.has(key)) return false
    seen.add(key)
    return true
  })
}

// ---- unknown keys: "did you mean …?" ----

function unwrap (schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema
  for (let i = 0; i < 10; i++) {
    if (s instanceof z.ZodDefault || s instanceof z.ZodPrefault || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType
    else if (s instanceof z.ZodPipe) s = s.out as z.ZodType
    else break
  }
  return s
}

/** The schema found at `path` (record keys and array indexes are followed), or undefined. */
function schemaAt (root: z.ZodType, path: readonly PropertyKey[]): z.ZodType | undefined {
  let s: z.ZodType | undefined = unwrap(root)
  for (const segment of path) {
    if (s instanceof z.ZodObject) s = (s.shape as Record<string, z.ZodType>)[String(segment)]
    else if (s instanceof z.ZodRecord) s = s.valueType as z.ZodType
    else if (s instanceof z.ZodArray) s = s.element as z.ZodType
    else return undefined
    if (s === undefined) return undefined
    s = unwrap(s)
  }
  return s
}

/** Every key path of the schema, records written `<name>`: `sessions.<name>.url`. */
function allPaths (root: z.ZodType, prefix = ''): string[] {
  const s = unwrap(root)
  const out: string[] = []
  if (s instanceof z.ZodObject) {
    for (const [key, child] of Object.entries(s.shape as Record<string, z.ZodType>)) {
      const path = prefix === '' ? key : `${prefix}.${key}`
      out.push(path, ...allPaths(child, path))
    }
  } else if (s instanceof z.ZodRecord) {
    const valueType = unwrap(s.valueType as z.ZodType)
    if (valueType instanceof z.ZodObject) out.push(...allPaths(valueType, `${prefix}.<name>`))
  }
  return out
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions. */
export function editDistance (a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, d[i - 2]![j - 2]! + 1)
      d[i]![j] = best
    }
  }
  return d[a.length]![b.length]!
}

/** The closest candidate within a small edit distance (or equal ignoring case and separators). */
export function closest (word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string): string => s.toLowerCase().replace(/[-_]/g, '')
  let best: string | undefined
  let bestDistance = Infinity
  for (const candidate of candidates) {
    const d = norm(candidate) === norm(word) ? 0 : editDistance(word.toLowerCase(), candidate.toLowerCase())
    if (d < bestDistance) { best = candidate; bestDistance = d }
  }
  return bestDistance <= Math.max(1, Math.min(3, Math.floor(word.length / 3))) ? best : undefined
}

function unknownKeyMessage (root: z.ZodType, parent: readonly PropertyKey[], key: string): string {
  const here = schemaAt(root, parent)
  const known = here instanceof z.ZodObject ? Object.keys(here.shape as object) : []
  const near = closest(key, known)
  if (near !== undefined) return `unknown key (did you mean "${near}"?)`
  const elsewhere = allPaths(root).filter((p) => p.endsWith(`.${key}`) || p === key)
  if (elsewhere.length > 0) return `unknown key here (did you mean ${elsewhere.join(' or ')}?)`
  return known.length > 0 ? `unknown key (expected one of: ${known.join(', ')})` : 'unknown key'
}
