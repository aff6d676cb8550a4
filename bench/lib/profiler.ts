/**
 * CPU profile of one phase of a benchmark process, through the in-process inspector (same format as
 * `node --cpu-prof`, but without start-up and module loading): start() when the phase begins, stop() when it ends.
 * Read the result with `node dist/bench/tools/cpuprofile-top.js FILE` or Chrome DevTools.
 */
import { Session } from 'node:inspector/promises'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'

export class PhaseProfiler {
  readonly file: string
  #session: Session | null = null

  constructor (file: string) {
    this.file = file
  }

  get running (): boolean { return this.#session !== null }

  async start (samplingIntervalUs = 200): Promise<void> {
    if (this.#session !== null) return
    const session = new Session()
    session.connect()
    await session.post('Profiler.enable')
    await session.post('Profiler.setSamplingInterval', { interval: samplingIntervalUs })
    await session.post('Profiler.start')
    this.#session = session
  }

  async stop (): Promise<string | null> {
    const session = this.#session
    if (session === null) return null
    this.#session = null
    const { profile } = await session.post('Profiler.stop')
    session.disconnect()
    mkdirSync(path.dirname(this.file), { recursive: true })
    writeFileSync(this.file, JSON.stringify(profile))
    return this.file
  }
}
