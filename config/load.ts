/**
 * Sources, merging and validation. Later wins: defaults < defaults file (COMETD_BRIDGE_DEFAULTS, set by the
 * container image) < file (--config or COMETD_BRIDGE_CONFIG; both files with `${VAR}` substituted) < environment
 * variables < flags. Pure: reads the file, never prints, never exits.
 */
import { readFileSync } from 'node:fs'
import { extname, resolve } from 'node:path'
import { createRequire } from 'node:module'
import { configSchema, isDemoEnabled, type Config } from './schema.js'
import { dedupe, formatIssues, fromZodIssues, type ConfigIssue } from './issues.js'
import { CONFIG_ENV, DEFAULTS_ENV, envOverlay } from './env.js'
import { PACKAGE_NAME, packageVersion } from './version.js'
import { parseFlags, usage, type LoadAction } from './flags.js'
import { isPlainObject, setOwn, checkPlainData, substituteVars, type Env } from './vars.js'
import { redactConfig, redactUrl } from './redact.js'
import { DEFAULT_SESSION_NAME } from './defaults.js'

export type { LoadAction } from './flags.js'

export interface LoadOptions {
  /** Command-line arguments without node and the script (default `process.argv.slice(2)`). */
  argv?: readonly string[]
  /** Default `process.env`. */
  env?: NodeJS.ProcessEnv
  /** Base of a relative config file name (default `process.cwd()`). */
  cwd?: string
}

export type LoadResult =
  | { ok: true, config: Config, action: LoadAction, text?: string }
  | { ok: false, errors: ConfigIssue[], text: string }

export type ParseResult =
  | { ok: true, config: Config }
  | { ok: false, errors: ConfigIssue[] }

/** Validates an already-parsed file (`${VAR}` substituted from `env`, default process.env). */
export function parseConfigObject (obj: unknown, env: Env = process.env): ParseResult {
  const sub = substituteVars(obj, env)
  const origins = new Map<string, string>()
  for (const [path, names] of sub.origins) origins.set(path, names.map((n) => `\${${n}}`).join(', '))
  return validate(sub.value, origins, sub.issues)
}

/** The configuration of an empty file. */
export function defaultConfig (): Config {
  return deepFreeze(configSchema.parse({}))
}

export function loadConfig (opts: LoadOptions = {}): LoadResult {
  const argv = opts.argv ?? process.argv.slice(2)
  const env = opts.env ?? process.env
  const cwd = opts.cwd ?? process.cwd()

  const flags = parseFlags(argv)
  if (flags.overlay.issues.length === 0) {
    if (flags.action === 'help') return { ok: true, config: defaultConfig(), action: 'help', text: usage() }
    if (flags.action === 'version') return { ok: true, config: defaultConfig(), action: 'version', text: `${PACKAGE_NAME} ${packageVersion()}` }
  }
  const fromEnv = envOverlay(env)
  const issues: ConfigIssue[] = [...flags.overlay.issues, ...fromEnv.issues]

  let merged: Record<string, unknown> = {}
  const origins = new Map<string, string>()
  let loadFailed = false
  const envFile = nonEmpty(env[CONFIG_ENV])
  const defaultsFile = nonEmpty(env[DEFAULTS_ENV])
  const files = [
    defaultsFile !== undefined ? { name: defaultsFile, source: DEFAULTS_ENV } : undefined,
    flags.configFile !== undefined
      ? { name: flags.configFile, source: '--config' }
      : envFile !== undefined ? { name: envFile, source: CONFIG_ENV } : undefined
  ]
  for (const file of files) {
    if (file === undefined) continue
    const read = readConfigFile(resolve(cwd, file.name), file.source)
    if ('issue' in read) {
      issues.push(read.issue)
      loadFailed = true
      continue
    }
    const sub = substituteVars(read.value, env)
    issues.push(...sub.issues)
    merged = deepMerge(merged, sub.value) as Record<string, unknown>
    const labelled = new Map<string, string>()
    for (const [path, names] of sub.origins) labelled.set(path, names.map((n) => `\${${n}}`).join(', '))
    mergeOrigins(origins, labelled)
  }
  for (const layer of [fromEnv, flags.overlay]) {
    merged = deepMerge(merged, layer.value) as Record<string, unknown>
    mergeOrigins(origins, layer.origins)
  }
  if (loadFailed) return failure(issues) // validating the rest alone would report fields the file may set

  const result = validate(merged, origins, issues)
  if (!result.ok) return failure(result.errors)
  const config = result.config
  switch (flags.action) {
    case 'print': return { ok: true, config, action: 'print', text: JSON.stringify(redactConfig(config), null, 2) + '\n' }
    case 'check': return { ok: true, config, action: 'check', text: summary(config) + '\n' }
    default: return { ok: true, config, action: 'run' }
  }
}

function nonEmpty (text: string | undefined): string | undefined {
  return text === undefined || text.trim() === '' ? undefined : text.trim()
}

function failure (issues: ConfigIssue[]): { ok: false, errors: ConfigIssue[], text: string } {
  const errors = dedupe(issues)
  const count = `${errors.length} problem${errors.length === 1 ? '' : 's'}`
  return { ok: false, errors, text: `cometd-bridge: invalid configuration (${count}):\n${formatIssues(errors)}\n` }
}

/** Schema validation; `earlier` issues (substitution, env, flags) come first and hide schema issues at or under their path. */
function validate (value: unknown, origins: ReadonlyMap<string, string>, earlierIssues: ConfigIssue[]): ParseResult {
  const stripped = checkPlainData(value)
  const earlier = [...earlierIssues, ...stripped.issues]
  const parsed = configSchema.safeParse(stripped.value)
  if (parsed.success && earlier.length === 0) return { ok: true, config: deepFreeze(parsed.data) }
  const schemaIssues = parsed.success ? [] : fromZodIssues(parsed.error.issues).map((issue) => annotate(issue, origins))
  const hidden = (issue: ConfigIssue): boolean => earlier.some((e) => isUnder(issue.path, e.path))
  const errors = dedupe([...earlier, ...schemaIssues.filter((issue) => !hidden(issue))])
  return { ok: false, errors }
}

function isUnder (path: string, ancestor: string): boolean {
  return path === ancestor || path.startsWith(`${ancestor}.`) || path.startsWith(`${ancestor}[`)
}

/** Adds "(from env X)" / "(from --port)" / "(from ${VAR})" when the value did not come from the file itself. */
function annotate (issue: ConfigIssue, origins: ReadonlyMap<string, string>): ConfigIssue {
  let best: string | undefined
  for (const path of origins.keys()) {
    if (isUnder(issue.path, path) && (best === undefined || path.length > best.length)) best = path
  }
  let message = issue.message
  if (best !== undefined) message += ` (from ${origins.get(best)!})`
  else if (issue.path === `sessions.${DEFAULT_SESSION_NAME}.url` && message.startsWith('required')) {
    message += ' (set COMETD_BRIDGE_URL or --url; the other COMETD_BRIDGE_* session variables apply to the session "default")'
  }
  return { path: issue.path, message }
}

/** Later origins win; a replaced array also drops the origins of its old items. */
function mergeOrigins (target: Map<string, string>, source: ReadonlyMap<string, string>): void {
  for (const [path, label] of source) {
    for (const key of [...target.keys()]) if (key.startsWith(`${path}[`)) target.delete(key)
    target.set(path, label)
  }
}

/** Plain objects merge key by key; anything else (arrays included) is replaced. Never mutates its inputs. */
export function deepMerge (base: unknown, over: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(over)) return over
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(base)) setOwn(out, key, base[key])
  for (const key of Object.keys(over)) {
    setOwn(out, key, Object.hasOwn(base, key) ? deepMerge(base[key], over[key]) : over[key])
  }
  return out
}

/** `yaml` is loaded only for a YAML config file (about 1 MB of RSS a JSON-configured daemon does not need). */
const requireCjs = createRequire(import.meta.url)
let yamlModule: typeof import('yaml') | null = null
function yaml (): typeof import('yaml') {
  yamlModule ??= requireCjs('yaml') as typeof import('yaml')
  return yamlModule
}

/** Reads JSON (`.json`) or YAML (anything else; YAML 1.2 also reads JSON). An empty file is `{}`. */
export function readConfigFile (file: string, source: string): { value: Record<string, unknown> } | { issue: ConfigIssue } {
  let text: string
  try {
    text = readFileSync(file, 'utf8').replace(/^\uFEFF/, '')
  } catch (err) {
    return { issue: { path: source, message: `cannot read config file ${file}: ${(err as Error).message}` } }
  }
  let value: unknown
  const json = extname(file).toLowerCase() === '.json'
  try {
    value = json ? JSON.parse(text) : yaml().parse(text, { prettyErrors: true, merge: true })
  } catch (err) {
    const detail = String((err as Error).message).split('\n')[0]!.replace(/:$/, '')
    return { issue: { path: source, message: `invalid ${json ? 'JSON' : 'YAML'} in ${file}: ${detail}` } }
  }
  if (value === null || value === undefined) return { value: {} }
  if (!isPlainObject(value)) {
    const kind = Array.isArray(value) ? 'a list' : typeof value
    return { issue: { path: source, message: `${file} must contain a mapping (an object) at the top level, not ${kind}` } }
  }
  return { value }
}

function summary (config: Config): string {
  const names = Object.keys(config.sessions)
  const sessions = names.length === 0
    ? 'no session'
    : `${names.length} session${names.length === 1 ? '' : 's'} (${names.map((n) => `${n}: ${redactUrl(config.sessions[n]!.url)}`).join(', ')})`
  const demo = isDemoEnabled(config) ? 'on' : 'off'
  return `configuration OK: listen ${config.listen.host}:${config.listen.port}, ${sessions}, demo upstream ${demo}`
}

function deepFreeze<T> (value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const child of Object.values(value)) deepFreeze(child)
  }
  return value
}
