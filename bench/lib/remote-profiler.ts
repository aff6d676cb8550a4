/**
 * CPU profile of one phase of another process (e.g. the bridge daemon, which serves no bench RPC), through its
 * inspector: start the process with `--inspect=127.0.0.1:0`, read the `ws://` address it prints on stderr, then
 * start() when the phase begins and stop(file) when it ends. Same format as `--cpu-prof` (read it with
 * `node dist/bench/tools/cpuprofile-top.js FILE`), without the process's start-up and connection set-up.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import path from 'node:path'
import { WebSocket } from 'ws'
import { sleep } from './clock.js'

/** the flag that makes a Node process print an inspector address on a free loopback port */
export const INSPECT_FLAG = '--inspect=127.0.0.1:0'

interface Pending { resolve: (v: unknown) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }

export class RemoteProfiler {
  readonly #ws: WebSocket
  readonly #pending = new Map<number, Pending>()
  #nextId = 1

  private constructor (ws: WebSocket) {
    this.#ws = ws
    ws.on('message', (data) => {
      const msg = JSON.parse(String(data)) as { id?: number, result?: unknown, error?: { message: string } }
      const p = msg.id === undefined ? undefined : this.#pending.get(msg.id)
      if (p === undefined) return
      this.#pending.delete(msg.id!)
      clearTimeout(p.timer)
      if (msg.error !== undefined) p.reject(new Error(msg.error.message))
      else p.resolve(msg.result)
    })
    ws.on('close', () => {
      for (const p of this.#pending.values()) { clearTimeout(p.timer); p.reject(new Error('inspector closed')) }
      this.#pending.clear()
    })
  }

  /** Waits (bounded) for the inspector address in `stderr()` and connects to it. */
  static async attach (stderr: () => string, timeoutMs = 5_000): Promise<RemoteProfiler> {
    const start = Date.now()
    let url: string | undefined
    for (let i = 0; i < 500 && url === undefined && Date.now() - start < timeoutMs; i++) {
      url = /ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.exec(stderr())?.[0]
      if (url === undefined) await sleep(20)
    }
    if (url === undefined) throw new Error('no inspector address on stderr (started with --inspect=127.0.0.1:0?)')
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1 << 30 })
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { ws.terminate(); reject(new Error('inspector connect timeout')) }, timeoutMs)
      ws.once('open', () => { clearTimeout(timer); resolve() })
      ws.once('error', (err) => { clearTimeout(timer); reject(err) })
    })
    const profiler = new RemoteProfiler(ws)
    await profiler.#call('Profiler.enable')
    return profiler
  }

  async #call (method: string, params: Record<string, unknown> = {}, timeoutMs = 30_000): Promise<unknown> {
    const id = this.#nextId++
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.#pending.delete(id); reject(new Error(`${method}: no answer in ${timeoutMs} ms`)) }, timeoutMs)
      this.#pending.set(id, { resolve, reject, timer })
      this.#ws.send(JSON.stringify({ id, method, params }))
    })
  }

  async start (samplingIntervalUs = 200): Promise<void> {
    await this.#call('Profiler.setSamplingInterval', { interval: samplingIntervalUs })
    await this.#call('Profiler.start')
  }

  async stop (file: string): Promise<string> {
    const { profile } = await this.#call('Profiler.stop') as { profile: unknown }
    mkdirSync(path.dirname(file), { recursive: true })
    writeFileSync(file, JSON.stringify(profile))
    return file
  }

  /** Sampled allocations (collected ones included) from now until stopAllocations(). */
  async startAllocations (samplingIntervalBytes = 16_384): Promise<void> {
    await this.#call('HeapProfiler.enable')
    await this.#call('HeapProfiler.startSampling', { samplingInterval: samplingIntervalBytes, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
  }

  /** Writes the sampled allocations (`.heapprofile`, Chrome DevTools format) to `file`. */
  async stopAllocations (file: string): Promise<string> {
    const { profile } = await this.#call('HeapProfiler.stopSampling') as { profile: unknown }
    mkdirSync(path.dirname(file), { recursive: true })
    writeFileSync(file, JSON.stringify(profile))
    return file
  }

  close (): void { this.#ws.close() }
}
