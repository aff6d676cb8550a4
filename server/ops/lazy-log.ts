/**
 * A child logger created on its first enabled log call. Each session had three pino children from the start
 * (≈ 1 KB each with their bindings, 3 MB for 1,000 sessions, most never writing a line at `logLevel: warn`);
 * this holds the parent and the bindings only.
 */
import type { AppLogger } from './logger.js'

type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'

/** What a session logs through: a pino logger, or a LazyChildLogger of one. */
export interface SessionLogger {
  trace (...args: unknown[]): void
  debug (...args: unknown[]): void
  info (...args: unknown[]): void
  warn (...args: unknown[]): void
  error (...args: unknown[]): void
  fatal (...args: unknown[]): void
  child (bindings: Record<string, unknown>): AppLogger
  isLevelEnabled (level: string): boolean
}

export class LazyChildLogger implements SessionLogger {
  readonly #parent: SessionLogger
  readonly #bindings: Record<string, unknown>
  #child: AppLogger | null = null

  constructor (parent: SessionLogger, bindings: Record<string, unknown>) {
    this.#parent = parent
    this.#bindings = bindings
  }

  trace (...args: unknown[]): void { this.#log('trace', args) }
  debug (...args: unknown[]): void { this.#log('debug', args) }
  info (...args: unknown[]): void { this.#log('info', args) }
  warn (...args: unknown[]): void { this.#log('warn', args) }
  error (...args: unknown[]): void { this.#log('error', args) }
  fatal (...args: unknown[]): void { this.#log('fatal', args) }

  child (bindings: Record<string, unknown>): AppLogger {
    return this.#get().child(bindings)
  }

  isLevelEnabled (level: string): boolean {
    return this.#child?.isLevelEnabled(level) ?? this.#parent.isLevelEnabled(level)
  }

  #get (): AppLogger {
    this.#child ??= this.#parent.child(this.#bindings)
    return this.#child
  }

  /** the arguments go to pino as they came (its overloads tell a message from an object by their count) */
  #log (level: Level, args: unknown[]): void {
    const logger = this.#child ?? (this.#parent.isLevelEnabled(level) ? this.#get() : null)
    if (logger === null) return
    ;(logger[level] as (...a: unknown[]) => void).apply(logger, args)
  }
}
