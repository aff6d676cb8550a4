/**
 * Helpers for the reliable-delivery tests (ack, replay, upstream tokens, limits): a bridge config with a Salesforce-like session (replay,
 * Bearer token from a file, checkpoints in a temporary data directory), and SSE message helpers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Config } from '../../../config/index.js'
import { makeConfig } from '../fixtures/bridge.js'
import type { SessionInput, SseStream, Teardown } from '../fixtures/bridge.js'

export const CHANNEL = '/event/Order__e'

export function tempDir (t: Teardown, prefix = 'bridge-reliable-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

/** A token file holding `token` (rewrite it with writeToken). */
export function tokenFile (dir: string, token: string): string {
  const file = join(dir, 'token')
  writeFileSync(file, token + '\n')
  return file
}

export function writeToken (file: string, token: string): void {
  writeFileSync(file, token + '\n')
}

/** One session `sf` on the fixture: long-polling, replay on, token from `tokenFile`, checkpoints in `dataDir`. */
export function sfConfig (url: string, dataDir: string, session: Partial<SessionInput> = {}, over: Partial<Config> = {}): Config {
  const config = makeConfig({
    sf: {
      url,
      connectionTypes: ['long-polling'],
      maxNetworkDelayMs: 2_000,
      connectionTimeoutMs: 5_000,
      replay: { enabled: true, start: -1, fallback: -2 },
      ...session
    }
  })
  return { ...config, dataDir, checkpointIntervalMs: 50, ...over }
}

export interface SfMessage { channel: string, id: string | undefined, n: number, replayId: number }

/** The `message` events of a stream as { n (payload.n), replayId, id }. */
export function sfMessages (sse: SseStream): SfMessage[] {
  return sse.messages().map((m) => {
    const data = m.data as { event: { replayId: number }, payload: { n: number } }
    return { channel: m.channel, id: m.id, n: data.payload.n, replayId: data.event.replayId }
  })
}

export function range (from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i)
}
