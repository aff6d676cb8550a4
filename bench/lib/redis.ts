/**
 * A real redis-server for benchmarks (Debian's /usr/bin/redis-server, or REDIS_SERVER): 127.0.0.1, a free port, its
 * own temporary directory, no persistence (no RDB, no AOF), `noeviction` (what the bridge's cluster mode requires).
 * Killed on `stop()` and when the bench process exits.
 *
 *   const redis = await RedisServer.start()
 *   redis.url   // redis://127.0.0.1:<port>
 *   redis.pid   // for /proc CPU and RSS
 *   await redis.stop()
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { sleep } from './clock.js'
import { HOST, freePort } from './net.js'

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server'

export class RedisServer {
  readonly url: string
  readonly #cp: ChildProcess
  readonly #dir: string
  #exited = false
  readonly #kill = (): void => { if (!this.#exited) this.#cp.kill('SIGKILL') }

  private constructor (cp: ChildProcess, port: number, dir: string) {
    this.#cp = cp
    this.#dir = dir
    this.url = `redis://${HOST}:${port}`
    cp.once('exit', () => { this.#exited = true })
    process.on('exit', this.#kill)
  }

  get pid (): number { return this.#cp.pid ?? -1 }

  /** Started and answering (its "Ready to accept connections" line), within `readyMs`; a taken port is retried. */
  static async start (readyMs = 10_000): Promise<RedisServer> {
    let last = ''
    for (let attempt = 0; attempt < 3; attempt++) {
      const dir = mkdtempSync(path.join(tmpdir(), 'bench-redis-'))
      const port = await freePort()
      const cp = spawn(REDIS_SERVER, ['--port', String(port), '--bind', HOST, '--dir', dir, '--save', '', '--appendonly', 'no',
        '--maxmemory-policy', 'noeviction', '--daemonize', 'no', '--loglevel', 'warning'], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
      const redis = new RedisServer(cp, port, dir)
      let out = ''
      cp.stdout!.setEncoding('utf8').on('data', (c: string) => { out = (out + c).slice(-4000) })
      cp.stderr!.setEncoding('utf8').on('data', (c: string) => { out = (out + c).slice(-4000) })
      cp.once('error', (e) => { out += String(e) })
      const started = Date.now()
      // --loglevel warning prints no ready line: ask with a PING over a raw socket instead
      while (!redis.#exited && Date.now() - started < readyMs) {
        if (await ping(port)) return redis
        await sleep(50)
      }
      last = out
      await redis.stop()
    }
    throw new Error(`redis-server (${REDIS_SERVER}) did not start: ${last.slice(-1000)}`)
  }

  async stop (): Promise<void> {
    if (!this.#exited) {
      const exited = new Promise<void>((resolve) => this.#cp.once('exit', () => { resolve() }))
      this.#cp.kill('SIGKILL')
      await Promise.race([exited, sleep(2_000)])
    }
    process.off('exit', this.#kill)
    rmSync(this.#dir, { recursive: true, force: true })
  }
}

/** One inline PING, answered `+PONG` (bounded: 1 s). */
async function ping (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = net.connect({ port, host: HOST })
    let answer = ''
    const done = (ok: boolean): void => { clearTimeout(timer); socket.destroy(); resolve(ok) }
    const timer = setTimeout(() => { done(false) }, 1_000)
    timer.unref()
    socket.setEncoding('utf8')
    socket.once('connect', () => { socket.write('PING\r\n') })
    socket.on('data', (c: string) => { answer += c; if (answer.includes('\r\n')) done(answer.startsWith('+PONG')) })
    socket.once('error', () => { done(false) })
  })
}
