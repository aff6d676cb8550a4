/**
 * `${VAR}` substitution in the string values of a config file, and the plain-object helpers of the loader.
 * `$${` is a literal `${`; a missing variable is an error naming the field and the variable. Keys are never
 * substituted, and values coming from env vars or flags are not either (they are already from the environment).
 */
import { formatPath, type ConfigIssue } from './issues.js'
import { isPlainObject, setOwn } from './plain.js'

export { isPlainObject, setOwn }

export type Env = Readonly<Record<string, string | undefined>>

const VAR_NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/


export interface Substitution {
  value: unknown
  issues: ConfigIssue[]
  /** Formatted path → the variables substituted there (for error messages). */
  origins: Map<string, string[]>
}

/** Replaces `${VAR}` in every string of `value` (deeply); returns a copy, with cycles cut (and reported). */
export function substituteVars (value: unknown, env: Env): Substitution {
  const issues: ConfigIssue[] = []
  const origins = new Map<string, string[]>()
  const ancestors = new Set<object>()
  const walk = (v: unknown, path: PropertyKey[]): unknown => {
    if (typeof v === 'string') {
      const names: string[] = []
      const out = substituteString(v, env, names, (message) => issues.push({ path: formatPath(path), message }))
      if (names.length > 0) origins.set(formatPath(path), names)
      return out
    }
    if (!Array.isArray(v) && !isPlainObject(v)) return v
    if (ancestors.has(v)) {
      issues.push({ path: formatPath(path), message: 'circular reference (a YAML alias to an enclosing node)' })
      return undefined
    }
    ancestors.add(v)
    let out: unknown
    if (Array.isArray(v)) {
      out = Array.from(v, (item, i) => walk(item, [...path, i]))
    } else {
      const copy: Record<string, unknown> = {}
      for (const key of Object.keys(v)) setOwn(copy, key, walk(v[key], [...path, key]))
      out = copy
    }
    ancestors.delete(v)
    return out
  }
  const result = walk(value, [])
  return { value: result, issues, origins }
}

/** Substitutes one string; `used` collects the variable names, `fail` is called once per problem. */
export function substituteString (s: string, env: Env, used: string[], fail: (message: string) => void): string {
  let out = ''
  let i = 0
  while (i < s.length) {
    const j = s.indexOf('$', i)
    if (j < 0) { out += s.slice(i); break }
    out += s.slice(i, j)
    if (s.startsWith('$${', j)) {
      out += '${'
      i = j + 3
    } else if (s.startsWith('${', j)) {
      const end = s.indexOf('}', j + 2)
      if (end < 0) {
        fail('unterminated "${" (write "$${" for a literal "${")')
        return out + s.slice(j)
      }
      const name = s.slice(j + 2, end)
      if (!VAR_NAME_RE.test(name)) {
        fail(`invalid variable reference "\${${name}}": a name is letters, digits and "_" (write "$\${" for a literal "\${")`)
      } else {
        used.push(name)
        const replacement = env[name]
        if (replacement === undefined) fail(`environment variable ${name} is not set (referenced as \${${name}})`)
        else out += replacement
      }
      i = end + 1
    } else {
      out += '$'
      i = j + 1
    }
  }
  return out
}

/**
 * Only plain data (what JSON and YAML produce) is validated: own `__proto__` keys (JSON.parse creates them;
 * zod silently drops them from records) and other objects (Map, Date, class instances, which zod would read
 * as empty objects) are reported and removed.
 */
export function checkPlainData (value: unknown): { value: unknown, issues: ConfigIssue[] } {
  const issues: ConfigIssue[] = []
  const walk = (v: unknown, path: PropertyKey[]): unknown => {
    if (typeof v !== 'object' || v === null) return v
    if (Array.isArray(v)) return Array.from(v, (item, i) => walk(item, [...path, i]))
    if (!isPlainObject(v)) {
      const kind = (v as { constructor?: { name?: unknown } }).constructor?.name
      issues.push({ path: formatPath(path), message: `must be plain data (a mapping, list, string, number or boolean), not ${typeof kind === 'string' && kind !== '' ? kind : 'an object'}` })
      return undefined
    }
    const out: Record<string, unknown> = {}
    for (const key of Object.keys(v)) {
      if (key === '__proto__') issues.push({ path: formatPath([...path, key]), message: '"__proto__" is not allowed as a key' })
      else setOwn(out, key, walk(v[key], [...path, key]))
    }
    return out
  }
  return { value: walk(value, []), issues }
}
