/** Command-line flags (node:util parseArgs) → an overlay, the config file name and the action. */
import { parseArgs } from 'node:util'
import { closest, type ConfigIssue } from './issues.js'
import { CONFIG_EXIT_CODE, DEFAULT_SESSION_NAME } from './defaults.js'
import { CONFIG_ENV, DEFAULTS_ENV, ENV_OPTIONS, convert, emptyOverlay, setPath, type Overlay } from './env.js'

export type LoadAction = 'run' | 'check' | 'print' | 'help' | 'version'

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  host: { type: 'string' },
  port: { type: 'string' },
  'log-level': { type: 'string' },
  url: { type: 'string' },
  'check-config': { type: 'boolean' },
  'print-config': { type: 'boolean' },
  demo: { type: 'boolean' },
  'no-demo': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' }
} as const

type FlagName = keyof typeof OPTIONS

/** Value flags → config path and how the text is read. */
const VALUE_FLAGS: Partial<Record<FlagName, { path: readonly string[], kind: 'string' | 'int' | 'logLevel' }>> = {
  host: { path: ['listen', 'host'], kind: 'string' },
  port: { path: ['listen', 'port'], kind: 'int' },
  'log-level': { path: ['logLevel'], kind: 'logLevel' },
  url: { path: ['sessions', DEFAULT_SESSION_NAME, 'url'], kind: 'string' }
}

export interface FlagResult {
  overlay: Overlay
  action: LoadAction
  /** The --config value, if given. */
  configFile?: string
}

function isFlagName (name: string): name is FlagName {
  return Object.hasOwn(OPTIONS, name)
}

export function parseFlags (argv: readonly string[]): FlagResult {
  const overlay = emptyOverlay()
  const issues: ConfigIssue[] = overlay.issues
  const { tokens } = parseArgs({ args: [...argv], options: OPTIONS, strict: false, allowPositionals: true, tokens: true })
  const seen = new Set<FlagName>()
  let configFile: string | undefined
  for (const token of tokens) {
    if (token.kind === 'positional') {
      issues.push({ path: 'argv', message: `unexpected argument ${JSON.stringify(token.value)} (see --help)` })
      continue
    }
    if (token.kind !== 'option') continue
    const flag = token.rawName
    if (!isFlagName(token.name)) {
      const near = token.rawName.startsWith('--') ? closest(token.name, Object.keys(OPTIONS)) : undefined
      issues.push({ path: flag, message: near !== undefined ? `unknown flag (did you mean --${near}?)` : 'unknown flag (see --help)' })
      continue
    }
    const name = token.name
    seen.add(name)
    if (OPTIONS[name].type === 'boolean') {
      if (token.value !== undefined) issues.push({ path: flag, message: 'takes no value' })
      else if (name === 'demo' || name === 'no-demo') setPath(overlay, ['demo'], name === 'demo', flag) // the last one wins
      continue
    }
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('-'))) {
      issues.push({ path: flag, message: `requires a value (--${name} VALUE or --${name}=VALUE)` })
      continue
    }
    if (name === 'config') {
      configFile = token.value
      continue
    }
    const target = VALUE_FLAGS[name]
    if (target !== undefined) {
      const converted = convert(target.kind, token.value)
      if ('value' in converted) setPath(overlay, target.path, converted.value, flag)
    }
  }
  const action: LoadAction = seen.has('help') ? 'help' : seen.has('version') ? 'version' : seen.has('print-config') ? 'print' : seen.has('check-config') ? 'check' : 'run'
  return configFile === undefined ? { overlay, action } : { overlay, action, configFile }
}

export function usage (): string {
  const envNames = [CONFIG_ENV, DEFAULTS_ENV, ...ENV_OPTIONS.map((o) => o.name)]
  return `Usage: cometd-bridge [options]

Holds CometD sessions upstream and re-exposes their channels as SSE, REST and WebSocket.

Options:
  -c, --config FILE     JSON or YAML config file (env ${CONFIG_ENV})
      --host HOST       listen address (listen.host, default 127.0.0.1)
      --port PORT       listen port (listen.port, default 8080; 0 = any free port)
      --log-level LEVEL fatal|error|warn|info|debug|trace|silent (default info)
      --url URL         upstream CometD URL of the session "${DEFAULT_SESSION_NAME}"
      --demo, --no-demo run (or not) the embedded demo upstream (default: auto, only without sessions)
      --check-config    validate the configuration, print a summary and exit 0
      --print-config    print the effective configuration as JSON (secrets redacted) and exit 0
  -h, --help            print this help and exit 0
  -v, --version         print the version and exit 0

Precedence: defaults < defaults file (env ${DEFAULTS_ENV}; the container image sets it)
  < config file < environment variables < flags.
An invalid configuration is reported field by field and exits with code ${CONFIG_EXIT_CODE}.

Environment variables:
${envNames.map((n) => `  ${n}`).join('\n')}

Every option is described in docs/configuration.md.
`
}
