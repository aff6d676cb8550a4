/**
 * Upstream Bearer tokens for a session (`auth:` in the session config), wired to client-core's `BearerAuth`:
 *
 * - `tokenFile`: the file is read again at every refresh (Kubernetes rotates mounted secrets by swapping a
 *   symlink; a long-lived copy would go stale). Its content, trimmed, is the token.
 * - `tokenCommand`: run with `/bin/sh -c` and a deadline (`timeoutMs`; the whole process group is killed when it
 *   passes); its stdout, trimmed, is the token. A non-zero exit, an empty output or a timeout is a failure.
 * - OAuth2 refresh-token flow (`tokenUrl`, `clientId`, `clientSecret`, `refreshToken`): a form POST with
 *   `grant_type=refresh_token`; `access_token` of the JSON answer is the token (Salesforce's answer).
 *
 * The token is fetched before the first request and again after every authentication failure (HTTP 401/403,
 * `401::Authentication invalid`, `403::Handshake denied`); the client then re-handshakes and resubscribes.
 * Tokens are never logged, shown or put in an error message.
 */
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { BearerAuth } from '../../client-core/index.js'
import type { UpstreamAuthConfig } from '../../config/index.js'

export type TokenSourceKind = 'tokenFile' | 'tokenCommand' | 'oauth'

export interface TokenLog {
  info: (obj: unknown, msg?: string) => void
  warn: (obj: unknown, msg?: string) => void
}

export interface TokenView {
  source: TokenSourceKind
  /** where the token comes from, without secrets (file path, "command", token URL) */
  from: string
  fetches: number
  refreshes: number
  failures: number
  lastFetchAt: string | null
  lastRefreshAt: string | null
  lastError: string | null
}

const MAX_TOKEN_BYTES = 64 * 1024
/** Several clients (the session and deep resumes) failing at once share one refresh. */
const REFRESH_SHARE_MS = 1_000

export class TokenError extends Error {
  override readonly name = 'TokenError'
}

export function tokenSourceKind (cfg: UpstreamAuthConfig): TokenSourceKind | null {
  if (typeof cfg.tokenFile === 'string' && cfg.tokenFile !== '') return 'tokenFile'
  if (typeof cfg.tokenCommand === 'string' && cfg.tokenCommand !== '') return 'tokenCommand'
  if (typeof cfg.tokenUrl === 'string' && cfg.tokenUrl !== '') return 'oauth'
  return null
}

/** Checks a token before it goes into a header. The message never contains the token. */
function checkToken (raw: string, what: string): string {
  const token = raw.trim()
  if (token === '') throw new TokenError(`${what} gave an empty token`)
  if (/[\r\n\0]/.test(token)) throw new TokenError(`${what} gave more than one line (it must print the token only)`)
  if (/\s/.test(token)) throw new TokenError(`${what} gave a token containing whitespace`)
  return token
}

async function fromFile (path: string): Promise<string> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    throw new TokenError(`cannot read token file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`)
  }
  if (text.length > MAX_TOKEN_BYTES) throw new TokenError(`token file ${path} is larger than ${MAX_TOKEN_BYTES} bytes`)
  return checkToken(text, `token file ${path}`)
}

async function fromCommand (command: string, timeoutMs: number): Promise<string> {
  return await new Promise<string>((resolve, reject) => {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    let out = ''
    let err = ''
    let tooLarge = false
    let timedOut = false
    const killGroup = (): void => {
      try { if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL') } catch {}
      try { child.kill('SIGKILL') } catch {}
    }
    const timer = setTimeout(() => { timedOut = true; killGroup() }, Math.max(1, timeoutMs))
    child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => {
      out += chunk
      if (out.length > MAX_TOKEN_BYTES) { tooLarge = true; killGroup() }
    })
    child.stderr.on('data', (chunk: string) => { if (err.length < 4096) err += chunk })
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(new TokenError(`token command could not start: ${e.message}`))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      if (timedOut) { reject(new TokenError(`token command did not finish within ${timeoutMs} ms (killed)`)); return }
      if (tooLarge) { reject(new TokenError(`token command printed more than ${MAX_TOKEN_BYTES} bytes`)); return }
      if (code !== 0) {
        // stderr is shown (its last line, shortened) to explain the failure; stdout, where a token would be, never
        const last = err.trim().split('\n').pop()?.slice(0, 200) ?? ''
        reject(new TokenError(`token command failed (${signal !== null ? `signal ${signal}` : `exit ${String(code)}`})${last !== '' ? `: ${last}` : ''}`))
        return
      }
      try {
        resolve(checkToken(out, 'token command'))
      } catch (e) {
        reject(e)
      }
    })
  })
}

async function fromOAuth (cfg: UpstreamAuthConfig, timeoutMs: number): Promise<string> {
  const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: cfg.refreshToken ?? '', client_id: cfg.clientId ?? '' })
  if (cfg.clientSecret !== undefined && cfg.clientSecret !== '') body.set('client_secret', cfg.clientSecret)
  let res: Response
  try {
    res = await fetch(cfg.tokenUrl!, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body,
      signal: AbortSignal.timeout(Math.max(1, timeoutMs))
    })
  } catch (err) {
    const e = err as Error
    throw new TokenError(`token request failed: ${e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : e.message}`)
  }
  const text = await res.text().catch(() => '')
  let json: Record<string, unknown> = {}
  try { json = JSON.parse(text) as Record<string, unknown> } catch {}
  if (!res.ok) {
    // OAuth error answers carry `error` and `error_description`, never a token
    const detail = [json.error, json.error_description].filter((v) => typeof v === 'string').join(': ').slice(0, 200)
    throw new TokenError(`token request answered HTTP ${res.status}${detail !== '' ? ` (${detail})` : ''}`)
  }
  if (typeof json.access_token !== 'string') throw new TokenError('token answer has no access_token')
  return checkToken(json.access_token, 'token request')
}

/**
 * One session's token source: the current token (cached), and refreshes shared between the clients of the
 * session (the upstream session and its deep resumes).
 */
export class TokenProvider {
  readonly source: TokenSourceKind
  readonly #cfg: UpstreamAuthConfig
  readonly #log: TokenLog
  #current: Promise<string> | null = null
  #refreshing: Promise<string> | null = null
  #lastRefreshDone = 0
  readonly #listeners = new Set<(e: { kind: 'refreshed', refreshes: number } | { kind: 'failed', error: string }) => void>()
  readonly stats = { fetches: 0, refreshes: 0, failures: 0, lastFetchAt: 0, lastRefreshAt: 0, lastError: null as string | null }

  constructor (cfg: UpstreamAuthConfig, log: TokenLog) {
    const kind = tokenSourceKind(cfg)
    if (kind === null) throw new TokenError('auth: one of tokenFile, tokenCommand or tokenUrl is required')
    this.source = kind
    this.#cfg = cfg
    this.#log = log
  }

  get scheme (): string { return this.#cfg.scheme ?? 'Bearer' }

  /** Listens to refreshes and failures (for `event: upstream`). */
  on (fn: (e: { kind: 'refreshed', refreshes: number } | { kind: 'failed', error: string }) => void): void {
    this.#listeners.add(fn)
  }

  /** The token in use (fetched once). */
  async current (): Promise<string> {
    this.#current ??= this.#fetch('initial')
    try {
      return await this.#current
    } catch (err) {
      this.#current = null
      throw err
    }
  }

  /** A fresh token after an authentication failure; concurrent callers (or within 1 s of the last) share it. */
  async refresh (): Promise<string> {
    if (this.#refreshing !== null) return await this.#refreshing
    if (this.#current !== null && Date.now() - this.#lastRefreshDone < REFRESH_SHARE_MS) return await this.current()
    const next = this.#fetch('refresh')
    this.#refreshing = next
    try {
      const token = await next
      this.#current = next
      this.#lastRefreshDone = Date.now()
      this.stats.refreshes++
      this.stats.lastRefreshAt = Date.now()
      this.#log.info({ source: this.source, refreshes: this.stats.refreshes }, 'upstream token refreshed')
      for (const fn of this.#listeners) fn({ kind: 'refreshed', refreshes: this.stats.refreshes })
      return token
    } finally {
      this.#refreshing = null
    }
  }

  async #fetch (why: 'initial' | 'refresh'): Promise<string> {
    const timeoutMs = this.#cfg.timeoutMs
    try {
      const token = this.source === 'tokenFile'
        ? await fromFile(this.#cfg.tokenFile!)
        : this.source === 'tokenCommand'
          ? await fromCommand(this.#cfg.tokenCommand!, timeoutMs)
          : await fromOAuth(this.#cfg, timeoutMs)
      this.stats.fetches++
      this.stats.lastFetchAt = Date.now()
      this.stats.lastError = null
      return token
    } catch (err) {
      const message = err instanceof TokenError ? err.message : `token source failed: ${(err as Error).message}`
      this.stats.failures++
      this.stats.lastError = message
      this.#log.warn({ source: this.source, why, error: message }, 'upstream token not available')
      for (const fn of this.#listeners) fn({ kind: 'failed', error: message })
      throw new TokenError(message)
    }
  }

  /** A BearerAuth for one client: the current token first, a refreshed one after each authentication failure. */
  bearer (): BearerAuth {
    let first = true
    return new BearerAuth({
      scheme: this.scheme,
      getToken: async () => {
        if (first) {
          first = false
          return await this.current()
        }
        return await this.refresh()
      }
    })
  }

  view (): TokenView {
    const s = this.stats
    return {
      source: this.source,
      from: this.source === 'tokenFile' ? this.#cfg.tokenFile! : this.source === 'tokenCommand' ? 'command' : safeUrl(this.#cfg.tokenUrl!),
      fetches: s.fetches,
      refreshes: s.refreshes,
      failures: s.failures,
      lastFetchAt: s.lastFetchAt === 0 ? null : new Date(s.lastFetchAt).toISOString(),
      lastRefreshAt: s.lastRefreshAt === 0 ? null : new Date(s.lastRefreshAt).toISOString(),
      lastError: s.lastError
    }
  }
}

function safeUrl (url: string): string {
  try {
    const u = new URL(url)
    return `${u.protocol}//${u.host}${u.pathname}`
  } catch {
    return '(invalid url)'
  }
}
