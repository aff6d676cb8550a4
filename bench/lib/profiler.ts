/**
 * A profile of one phase of a benchmark process, through the in-process inspector (without start-up and module
 * loading): start() when the phase begins, stop() when it ends.
 *
 * - `cpu`: the same format as `node --cpu-prof`; read it with `node dist/bench/tools/cpuprofile-top.js FILE` or
 *   Chrome DevTools.
 * - `heap`: V8's sampling heap profiler, keeping the samples of objects the garbage collector has already freed — so
 *   it shows every allocation of the phase (garbage included), not only what is still alive at its end as
 *   `node --heap-prof` does; read it with `node dist/bench/tools/heapprofile-top.js FILE --per N` (N: messages of
 *   the phase → bytes per message).
 */
import { Session } from 'node:inspector/promises'
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'

export type ProfileKind = 'cpu' | 'heap'

export class PhaseProfiler {
  readonly file: string
  readonly kind: ProfileKind
  #session: Session | null = null

  constructor (file: string, kind: ProfileKind = 'cpu') {
    this.file = file
    this.kind = kind
  }

  get running (): boolean { return this.#session !== null }

  /** `interval`: µs between CPU samples, or mean bytes between heap samples (V8's default is 32 KiB; smaller sees more sites) */
  async start (interval = this.kind === 'cpu' ? 200 : 4096): Promise<void> {
    if (this.#session !== null) return
    const session = new Session()
    session.connect()
    if (this.kind === 'cpu') {
      await session.post('Profiler.enable')
      await session.post('Profiler.setSamplingInterval', { interval })
      await session.post('Profiler.start')
    } else {
      await session.post('HeapProfiler.enable')
      await session.post('HeapProfiler.startSampling', {
        samplingInterval: interval,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true
      } as never)
    }
    this.#session = session
  }

  async stop (): Promise<string | null> {
    const session = this.#session
    if (session === null) return null
    this.#session = null
    const { profile } = this.kind === 'cpu' ? await session.post('Profiler.stop') : await session.post('HeapProfiler.stopSampling')
    session.disconnect()
    mkdirSync(path.dirname(this.file), { recursive: true })
    writeFileSync(this.file, JSON.stringify(profile))
    return this.file
  }
}
