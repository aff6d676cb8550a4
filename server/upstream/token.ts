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
 * The token is fetched before the first request and again after an authentication failure (HTTP 401/403,
 * `401::Authentication invalid`, `403::Handshake denied`), as TokenProvider says; the client then re-handshakes
 * and resubscribes.
 * Tokens are never logged, shown or put in an error message.
 */
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { REDACTED, redactText, redactUrl } from '../../config/redact.js'
import { BearerAuth, backoffCap, jittered } from '../../client-core/index.js'
import type { UpstreamAuthConfig } from '../../config/index.js'

export type TokenSourceKind = 'tokenFile' | 'tokenCommand' | 'oauth'

export type TokenEvent = { kind: 'refreshed', refreshes: number } | { kind: 'failed', error: string, refusals?: number }

export interface TokenLog {
  info: (obj: unknown, msg?: string) => void
  warn: (obj: unknown, msg?: string) => void
}

export interface TokenView {
  source: TokenSourceKind
  /** ok; refused (the upstream refused the token, a new one is awaited); token-failed (refused maxRefusals times) */
  status: 'ok' | 'refused' | 'token-failed'
  /** refusals of the current token in a row */
  refusals: number
  /** refusals of any token since start */
  refusalsTotal: number
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
/** Refusals of one token in a row before `token-failed` (config `auth.maxRefusals`). */
const DEFAULT_MAX_REFUSALS = 3
/** After a refusal the source gave the same token again: it is read once more after 1 s, 2 s, 4 s … 30 s (half jitter). */
const SAME_TOKEN_WAIT_MS = 1_000
const SAME_TOKEN_MAX_WAIT_MS = 30_000

/** A token source failed. The message never holds a token, and URLs in it are redacted (a library may quote one). */
export class TokenError extends Error {
  override readonly name = 'TokenError'
  constructor (message: string) {
    super(redactText(message))
  }
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
    // OAuth error answers carry `error` and `error_description`; a careless endpoint may quote what it was sent
    const detail = sentSecrets(cfg).reduce((text, secret) => text.replaceAll(secret, REDACTED),
      [json.error, json.error_description].filter((v) => typeof v === 'string').join(': ')).slice(0, 200)
    throw new TokenError(`token request answered HTTP ${res.status}${detail !== '' ? ` (${detail})` : ''}`)
  }
  if (typeof json.access_token !== 'string') throw new TokenError('token answer has no access_token')
  return checkToken(json.access_token, 'token request')
}

/** What a token request sends that may be secret: the refresh token, the client secret, the token URL's query values. */
function sentSecrets (cfg: UpstreamAuthConfig): string[] {
  const out = [cfg.refreshToken, cfg.clientSecret]
  try {
    out.push(...new URL(cfg.tokenUrl ?? '').searchParams.values())
  } catch {}
  return out.filter((v): v is string => typeof v === 'string' && v.length >= 4)
}

/**
 * One session's token source: the current token (cached), and refreshes shared between the clients of the session
 * (the upstream session and its deep resumes). A refusal of the token in use re-reads the source at once; one of a
 * token already replaced gets the new one without a read. When the source gives the refused token again, it is
 * read again after a growing wait (a rotation in progress lands meanwhile), and after `maxRefusals` refusals in a
 * row the session reports `token-failed` — and keeps trying, with the wait, until a token is accepted.
 */
export class TokenProvider {
  readonly source: TokenSourceKind
  readonly #cfg: UpstreamAuthConfig
  readonly #log: TokenLog
  #current: Promise<string> | null = null
  /** the value of #current once fetched */
  #token: string | null = null
  #refreshing: Promise<string> | null = null
  #refusals = 0
  #failed = false
  readonly #closed = new AbortController()
  readonly #listeners = new Set<(e: TokenEvent) => void>()
  readonly stats = { fetches: 0, refreshes: 0, failures: 0, refusals: 0, lastFetchAt: 0, lastRefreshAt: 0, lastError: null as string | null }

  constructor (cfg: UpstreamAuthConfig, log: TokenLog) {
    const kind = tokenSourceKind(cfg)
    if (kind === null) throw new TokenError('auth: one of tokenFile, tokenCommand or tokenUrl is required')
    this.source = kind
    this.#cfg = cfg
    this.#log = log
  }

  get scheme (): string { return this.#cfg.scheme ?? 'Bearer' }
  /** the upstream refused the current token maxRefusals times in a row */
  get failed (): boolean { return this.#failed }

  /** Listens to refreshes and failures (for `event: upstream`). */
  on (fn: (e: TokenEvent) => void): void {
    this.#listeners.add(fn)
  }

  /** The token in use (fetched once). */
  async current (): Promise<string> {
    this.#current ??= this.#fetch('initial').then((token) => { this.#token = token; return token })
    try {
      return await this.#current
    } catch (err) {
      this.#current = null
      throw err
    }
  }

  /**
   * A token after the upstream refused `refused` (undefined: the refused token is not known): the current one when
   * it is already another, else a new read of the source, shared by concurrent callers.
   */
  async refresh (refused?: string): Promise<string> {
    if (refused !== undefined && this.#token !== null && refused !== this.#token) return this.#token
    this.#refreshing ??= this.#rotate(refused ?? this.#token).finally(() => { this.#refreshing = null })
    return await this.#refreshing
  }

  /** The upstream accepted the token (the session is connected): no refusal in a row any more. */
  accepted (): void {
    this.#refusals = 0
    this.#failed = false
  }

  /** Ends a wait for the next read (the session is closing). */
  close (): void {
    this.#closed.abort()
  }

  async #rotate (refused: string | null): Promise<string> {
    if (refused !== null) this.#refused()
    let token = await this.#fetch('refresh')
    if (refused !== null && token === refused) {
      // the source has no other yet: wait, then read again, rather than send the refused token at once
      const cap = backoffCap(this.#refusals, SAME_TOKEN_WAIT_MS, SAME_TOKEN_MAX_WAIT_MS)
      await sleep(jittered(cap, 0.5), undefined, { ref: false, signal: this.#closed.signal }).catch(() => {})
      token = await this.#fetch('refresh')
    }
    this.#current = Promise.resolve(token)
    this.#token = token
    if (token !== refused) this.#rotated()
    return token
  }

  #refused (): void {
    this.#refusals++
    this.stats.refusals++
    const max = this.#cfg.maxRefusals ?? DEFAULT_MAX_REFUSALS
    if (this.#refusals < max || this.#failed) return
    this.#failed = true
    const error = `the upstream refused the token ${this.#refusals} times in a row and the ${this.source} gives no other`
    this.stats.lastError = error
    this.#log.warn({ source: this.source, refusals: this.#refusals }, 'upstream token failed: refused again and again')
    for (const fn of this.#listeners) fn({ kind: 'failed', error, refusals: this.#refusals })
  }

  #rotated (): void {
    this.#refusals = 0
    this.#failed = false
    this.stats.refreshes++
    this.stats.lastRefreshAt = Date.now()
    this.#log.info({ source: this.source, refreshes: this.stats.refreshes }, 'upstream token refreshed')
    for (const fn of this.#listeners) fn({ kind: 'refreshed', refreshes: this.stats.refreshes })
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
      if (!this.#failed) this.stats.lastError = null
      return token
    } catch (err) {
      const message = err instanceof TokenError ? err.message : redactText(`token source failed: ${(err as Error).message}`)
      this.stats.failures++
      this.stats.lastError = message
      this.#log.warn({ source: this.source, why, error: message }, 'upstream token not available')
      for (const fn of this.#listeners) fn({ kind: 'failed', error: message })
      throw new TokenError(message)
    }
  }

  /** A BearerAuth for one client: the current token first, then a token for each refused one. */
  bearer (): BearerAuth {
    return new BearerAuth({
      scheme: this.scheme,
      getToken: async (refused) => refused === undefined ? await this.current() : await this.refresh(refused)
    })
  }

  view (): TokenView {
    const s = this.stats
    return {
      source: this.source,
      status: this.#failed ? 'token-failed' : this.#refusals > 0 ? 'refused' : 'ok',
      refusals: this.#refusals,
      refusalsTotal: s.refusals,
      from: this.source === 'tokenFile' ? this.#cfg.tokenFile! : this.source === 'tokenCommand' ? 'command' : redactUrl(this.#cfg.tokenUrl!),
      fetches: s.fetches,
      refreshes: s.refreshes,
      failures: s.failures,
      lastFetchAt: s.lastFetchAt === 0 ? null : new Date(s.lastFetchAt).toISOString(),
      lastRefreshAt: s.lastRefreshAt === 0 ? null : new Date(s.lastRefreshAt).toISOString(),
      lastError: s.lastError
    }
  }
}
