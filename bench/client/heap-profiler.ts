/**
 * Allocation profile of one phase of a benchmark process: V8's sampling heap profiler through the in-process
 * inspector, keeping the samples of objects the garbage collector has already freed — so it shows every allocation
 * of the phase (garbage included), not only what is still alive at its end as `node --heap-prof` does.
 * Same start()/stop() shape as lib/profiler.ts; read the result with
 * `node dist/bench/tools/heapprofile-top.js FILE --per N` (N: messages of the phase → bytes per message).
 */
import { Session } from 'node:inspector/promises'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'

export class HeapPhaseProfiler {
  readonly file: string
  #session: Session | null = null

  constructor (file: string) {
    this.file = file
  }

  get running (): boolean { return this.#session !== null }

  /** `intervalBytes`: mean bytes between samples (V8's default is 32 KiB; smaller sees more sites) */
  async start (intervalBytes = 4096): Promise<void> {
    if (this.#session !== null) return
    const session = new Session()
    session.connect()
    await session.post('HeapProfiler.enable')
    await session.post('HeapProfiler.startSampling', {
      samplingInterval: intervalBytes,
      includeObjectsCollectedByMajorGC: true,
      includeObjectsCollectedByMinorGC: true
    } as never)
    this.#session = session
  }

  async stop (): Promise<string | null> {
    const session = this.#session
    if (session === null) return null
    this.#session = null
    const { profile } = await session.post('HeapProfiler.stopSampling')
    session.disconnect()
    mkdirSync(path.dirname(this.file), { recursive: true })
    writeFileSync(this.file, JSON.stringify(profile))
    return this.file
  }
}
