/**
 * The bridge daemon as a spawned process (not an IPC child): `node <main> --config <tmp>/bridge.json` with a config
 * object given by the suite, on 127.0.0.1 and a free port. Ready when the suite's `ready(base)` says so (polled,
 * bounded by `readyMs`); killed on `stop()` and when the bench process exits. COMETD_BRIDGE_* variables and
 * NODE_OPTIONS of the bench's environment are not passed on: the config file is the whole configuration.
 *
 *   const d = await Daemon.start('replica-a', { sessions, cluster }, { ready: async (base) => ... })
 *   d.base  // http://127.0.0.1:<port>
 *   d.pid   // for /proc CPU and RSS
 *   await d.stop()   // SIGTERM, SIGKILL after 3 s
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { sleep } from './clock.js'
import { HOST, freePort } from './net.js'
import { BENCH_DIR } from './proc.js'

/** dist/server/main.js of this build */
export const BRIDGE_MAIN = path.resolve(BENCH_DIR, '..', 'server', 'main.js')

export interface DaemonOptions {
  /** the entry point (default this build's dist/server/main.js; another build's for an A/B) */
  main?: string
  /** node flags, e.g. ['--cpu-prof', '--cpu-prof-dir', dir] */
  execArgv?: string[]
  /** polled every 100 ms until true: e.g. the session connected upstream */
  ready: (base: string) => Promise<boolean>
  readyMs?: number
}

export class Daemon {
  readonly name: string
  readonly base: string
  readonly #cp: ChildProcess
  readonly #dir: string
  #stderr = ''
  /** the last 200–400 complete lines of stdout, and how many lines it printed in all */
  #lines: string[] = []
  #lineCount = 0
  #partial = ''
  #exited = false
  readonly #kill = (): void => { if (!this.#exited) this.#cp.kill('SIGKILL') }

  private constructor (name: string, cp: ChildProcess, base: string, dir: string) {
    this.name = name
    this.base = base
    this.#cp = cp
    this.#dir = dir
    cp.once('exit', () => { this.#exited = true })
    cp.stderr?.setEncoding('utf8')
    cp.stderr?.on('data', (c: string) => { this.#stderr = (this.#stderr + c).slice(-4000) })
    cp.stdout?.on('data', (c: Buffer) => {
      const text = this.#partial + c.toString('utf8')
      const lines = text.split('\n')
      this.#partial = lines.pop() ?? ''
      this.#lines.push(...lines)
      this.#lineCount += lines.length
      if (this.#lines.length > 400) this.#lines.splice(0, this.#lines.length - 200)
      if (process.env.BENCH_VERBOSE === '1') process.stderr.write(`[${name}] ${c.toString('utf8')}`)
    })
    process.on('exit', this.#kill)
  }

  get pid (): number { return this.#cp.pid ?? -1 }

  /** `config` without `listen` (set here) and without `dataDir` (a fresh temporary one unless given). */
  static async start (name: string, config: Record<string, unknown>, options: DaemonOptions): Promise<Daemon> {
    const dir = mkdtempSync(path.join(tmpdir(), `bench-${name}-`))
    const port = await freePort()
    const file = path.join(dir, 'bridge.json')
    writeFileSync(file, JSON.stringify({ dataDir: path.join(dir, 'data'), ...config, listen: { host: HOST, port } }, null, 2))
    const env: NodeJS.ProcessEnv = {}
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('COMETD_BRIDGE_') && k !== 'NODE_OPTIONS') env[k] = v
    const cp = spawn(process.execPath, [...(options.execArgv ?? []), options.main ?? BRIDGE_MAIN, '--config', file], { env, stdio: ['ignore', 'pipe', 'pipe'], cwd: dir })
    const daemon = new Daemon(name, cp, `http://${HOST}:${port}`, dir)
    const readyMs = options.readyMs ?? 20_000
    const start = Date.now()
    for (let i = 0; i < 1_000 && Date.now() - start < readyMs && !daemon.#exited; i++) {
      if (await options.ready(daemon.base).catch(() => false)) return daemon
      await sleep(100)
    }
    const why = daemon.#exited ? 'exited' : `not ready within ${readyMs} ms`
    await daemon.stop()
    throw new Error(`${name} ${why}: ${daemon.#stderr.slice(-1500)}`)
  }

  /** How many lines it printed on stdout so far: a mark for `logLines(text, since)`. */
  get logLineCount (): number { return this.#lineCount }

  /** Its recent stdout lines (the last 200 at least) from line number `since` on that contain `text`, e.g. a pino message. */
  logLines (text: string, since = 0): string[] {
    const first = this.#lineCount - this.#lines.length
    return this.#lines.slice(Math.max(0, since - first)).filter((line) => line.includes(text))
  }

  async stop (): Promise<void> {
    if (!this.#exited) {
      const exited = new Promise<void>((resolve) => this.#cp.once('exit', () => { resolve() }))
      this.#cp.kill('SIGTERM')
      await Promise.race([exited, sleep(3_000)])
      this.#kill()
    }
    process.off('exit', this.#kill)
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

/** GET `url` as JSON within `ms` (default 5 s); null on any failure. */
export async function getJson<T> (url: string, ms = 5_000): Promise<T | null> {
  return await fetch(url, { signal: AbortSignal.timeout(ms) }).then(async (r) => r.ok ? (await r.json()) as T : null, () => null)
}
