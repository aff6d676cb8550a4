/** The package's own version, from its package.json: one folder up from config/ (sources), two from dist/config/. */
import { readFileSync } from 'node:fs'

export const PACKAGE_NAME = 'cometd-bridge'

let cached: string | null = null

export function packageVersion (): string {
  if (cached !== null) return cached
  for (const relative of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(relative, import.meta.url), 'utf8')) as { name?: unknown, version?: unknown }
      if (pkg.name === PACKAGE_NAME && typeof pkg.version === 'string') {
        cached = pkg.version
        return cached
      }
    } catch {
      // not this folder: try the next one
    }
  }
  return 'unknown'
}
