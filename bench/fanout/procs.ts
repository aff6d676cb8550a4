/**
 * The processes of the fan-out suites that are not IPC children: the bridge daemon (spawned from a compiled tree's
 * `server/main.js` with a generated config), and /proc readings of any process (RSS, CPU of all its threads).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { BENCH_DIR } from '../lib/proc.js'
import { sleep } from '../lib/clock.js'

export const MAIN = path.resolve(BENCH_DIR, '..', 'server', 'main.js')
/** the channel of part 3 (added latency), held by every bridge and the bare broadcaster */
export const LATENCY_CHANNEL = '/bench/latency'
/** the channel the fan-out bridge holds unless told otherwise */
export const BRIDGE_CHANNEL = '/bench/bridge'

/** user + system CPU (ms) of a /proc stat line (fields 14 and 15, clock ticks of 10 ms) */
function statCpuMs (stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/**
 * RSS (MB) and CPU (ms, user + system) of a process from /proc: all threads, and its main thread alone (the
 * JavaScript thread; the rest is mostly V8's GC helper threads).
 */
export function procUsage (pid: number): { rssMB: number, cpuMs: number, mainCpuMs: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const rss = /VmRSS:\s+(\d+) kB/.exec(status)
    return {
      rssMB: rss === null ? Number.NaN : Number(rss[1]) / 1024,
      cpuMs: statCpuMs(readFileSync(`/proc/${pid}/stat`, 'utf8')),
      mainCpuMs: statCpuMs(readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8'))
    }
  } catch {
    return { rssMB: Number.NaN, cpuMs: Number.NaN, mainCpuMs: Number.NaN }
  }
}

async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen({ port: 0, host: '127.0.0.1' }, () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

/** The bridge daemon as a spawned process (not an IPC child): killed in `stop()` and on exit. */
export class Bridge {
  readonly cp: ChildProcess
  readonly base: string
  stderr = ''
  #exited = false
  readonly #dir: string
  readonly #kill = (): void => { if (!this.#exited) this.cp.kill('SIGKILL') }
  private constructor (cp: ChildProcess, base: string, dir: string) {
    this.cp = cp
    this.base = base
    this.#dir = dir
    cp.once('exit', () => { this.#exited = true })
    cp.stderr?.setEncoding('utf8')
    cp.stderr?.on('data', (c: string) => { this.stderr = (this.stderr + c).slice(-4000) })
    cp.stdout?.on('data', (c: Buffer) => { if (process.env.BENCH_VERBOSE === '1') process.stderr.write(`[bridge] ${c.toString('utf8')}`) })
    process.on('exit', this.#kill)
  }

  /**
   * `sessions`: the config's sessions instead of the fan-out's one session `up`; the bridge is ready when every
   * session is connected and its held subscriptions are subscribed (bounded by `readyMs`).
   */
  static async start (upstreamUrl: string, maxCallers: number, execArgv: string[], sessions?: Record<string, unknown>, readyMs = 20_000,
    main = MAIN, channel = BRIDGE_CHANNEL): Promise<Bridge> {
    const dir = mkdtempSync(path.join(tmpdir(), 'bench-fanout-'))
    const port = await freePort()
    const config = {
      listen: { host: '127.0.0.1', port },
      logLevel: 'warn',
      demo: false,
      shutdownTimeoutMs: 1000,
      dataDir: path.join(dir, 'data'),
      sessions: sessions ?? {
        up: { url: upstreamUrl, connectionTypes: ['websocket'], subscribe: [channel, LATENCY_CHANNEL] }
      },
      // the offered load is above what the callers can read: seconds of backlog per caller are expected (bare Node
      // buffers them without a bound), so the bound and the drain deadline must not drop callers mid-measurement
      sse: { maxCallers, maxQueueBytes: 64 * 1024 * 1024, writeTimeoutMs: 120_000 }
    }
    const file = path.join(dir, 'bridge.json')
    writeFileSync(file, JSON.stringify(config, null, 2))
    const env: NodeJS.ProcessEnv = {}
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('COMETD_BRIDGE_') && k !== 'NODE_OPTIONS') env[k] = v
    const cp = spawn(process.execPath, [...execArgv, main, '--config', file], { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: dir })
    const bridge = new Bridge(cp, `http://127.0.0.1:${port}`, dir)
    const start = Date.now()
    type View = { state?: string, subscriptions?: Array<{ state: string }> }
    const ready = (v: View): boolean => v.state === 'connected' && (v.subscriptions ?? []).every((x) => x.state === 'subscribed')
    for (let i = 0; i < 2_000 && Date.now() - start < readyMs; i++) {
      if (bridge.#exited) break
      const views = await fetch(`${bridge.base}/sessions`, { signal: AbortSignal.timeout(5_000) })
        .then(async (r) => ((await r.json()) as { sessions: View[] }).sessions, () => [] as View[])
      if (views.length > 0 && views.every(ready)) return bridge
      await sleep(views.length > 100 ? 500 : 100)
    }
    bridge.#kill()
    throw new Error(`the bridge did not connect upstream within ${readyMs} ms: ${bridge.stderr.slice(-1500)}`)
  }

  get pid (): number { return this.cp.pid ?? -1 }

  async stop (): Promise<void> {
    if (!this.#exited) {
      const exited = new Promise<void>((resolve) => this.cp.once('exit', () => resolve()))
      this.cp.kill('SIGTERM')
      await Promise.race([exited, sleep(3_000)])
      this.#kill()
    }
    process.off('exit', this.#kill)
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

