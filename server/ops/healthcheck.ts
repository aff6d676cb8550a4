/**
 * The container's HEALTHCHECK: GET /healthz on the address the daemon listens on, found from the same
 * configuration sources as the daemon (defaults file, config file, COMETD_BRIDGE_* variables). Exit 0 when it
 * answers 200 within the deadline, 1 otherwise (with the reason on stderr, which Docker keeps in the health log).
 */
import { loadConfig } from '../../config/index.js'
import { baseUrlOf } from '../demo/demo.js'

const DEADLINE_MS = 2_500

async function probe (): Promise<string | null> {
  const loaded = loadConfig({ argv: [], env: process.env, cwd: process.cwd() })
  if (!loaded.ok) return loaded.text
  const url = `${baseUrlOf(loaded.config.listen.host, loaded.config.listen.port)}/healthz`
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(DEADLINE_MS) })
    return res.status === 200 ? null : `${url} answered ${res.status}`
  } catch (err) {
    return `${url}: ${err instanceof Error ? err.message : String(err)}`
  }
}

const problem = await probe()
if (problem !== null) process.stderr.write(`healthcheck: ${problem}\n`)
process.exitCode = problem === null ? 0 : 1
