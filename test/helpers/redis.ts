/**
 * A REAL redis-server (Debian's /usr/bin/redis-server, or REDIS_SERVER) on 127.0.0.1, on a free port, in its own
 * temporary directory, for the cluster tests.
 *
 *   const redis = await startRedis(t, { appendonly: true })
 *   redis.url                      // redis://127.0.0.1:<port>
 *   await redis.stop()             // SIGTERM: a clean shutdown (the AOF is flushed)
 *   await redis.kill()             // SIGKILL
 *   await redis.start()            // again, same port and directory (with AOF: same data; without: empty)
 *   await redis.restart()          // stop + start
 *   await redis.restartEmpty()     // stop, remove its data (AOF), start: a Redis that lost everything
 *
 * Persistence is off unless `appendonly` (no RDB snapshots ever), so a restart without AOF is an empty Redis.
 * Teardown (registered on `t`) kills the server and removes the directory.
 */
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HOST } from './net-util.js'
import { waitFor } from './wait.js'

export const REDIS_SERVER = process.env.REDIS_SERVER ?? '/usr/bin/redis-server'

export interface RedisOptions {
  /** AOF persistence (appendfsync always, so a SIGKILL loses nothing acknowledged); default false */
  appendonly?: boolean
  /** default noeviction (what the bridge requires) */
  maxmemoryPolicy?: string
  /** extra `--name value` pairs */
  args?: string[]
}

export interface RedisPeer {
  readonly url: string
  readonly port: number
  readonly dir: string
  readonly running: boolean
  /** the server's own log (stdout) */
  log: () => string
  start: () => Promise<void>
  stop: () => Promise<void>
  kill: () => Promise<void>
  restart: () => Promise<void>
  restartEmpty: () => Promise<void>
  /** SIGSTOP / SIGCONT: a Redis that hangs without closing its connections */
  pause: () => void
  resume: () => void
}

interface Teardown { teardown: (fn: () => unknown) => void }

async function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen({ port: 0, host: HOST, exclusive: true }, () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => { resolve(port) })
    })
  })
}

export async function startRedis (t: Teardown, opts: RedisOptions = {}): Promise<RedisPeer> {
  const dir = await mkdtemp(join(tmpdir(), 'cometd-bridge-redis-'))
  let port = 0
  let proc: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()
  let out = ''

  const args = (): string[] => [
    '--port', String(port), '--bind', HOST, '--dir', dir, '--save', '',
    '--appendonly', opts.appendonly === true ? 'yes' : 'no', '--appendfsync', 'always',
    '--maxmemory-policy', opts.maxmemoryPolicy ?? 'noeviction',
    '--protected-mode', 'yes', '--daemonize', 'no', '--loglevel', 'notice',
    ...(opts.args ?? [])
  ]

  async function launch (): Promise<boolean> {
    const child = spawn(REDIS_SERVER, args(), { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
    proc = child
    const logStart = out.length
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { out += chunk })
    exited = new Promise((resolve) => { child.once('exit', () => { resolve() }) })
    const ok = await waitFor(() => {
      const text = out.slice(logStart)
      if (text.includes('Ready to accept connections')) return 'ready'
      if (child.exitCode !== null || child.signalCode !== null) return 'exited'
      return null
    }, { timeoutMs: 10_000, message: () => `redis-server ready on ${port}; log: ${out.slice(-1000)}` })
    if (ok === 'exited') proc = null
    return ok === 'ready'
  }

  async function start (): Promise<void> {
    if (proc !== null) return
    if (port !== 0) {
      if (!await launch()) throw new Error(`redis-server did not start again on ${port}: ${out.slice(-1000)}`)
      return
    }
    // a free port can be taken between the probe and the bind: a few tries
    for (let attempt = 0; attempt < 5; attempt++) {
      port = await freePort()
      if (await launch()) return
    }
    throw new Error(`redis-server did not start: ${out.slice(-1000)}`)
  }

  async function signal (sig: NodeJS.Signals): Promise<void> {
    const child = proc
    if (child === null) return
    proc = null
    child.kill(sig)
    await exited
  }

  t.teardown(async () => {
    if (proc !== null) proc.kill('SIGKILL')
    await exited
    await rm(dir, { recursive: true, force: true })
  })
  await start()

  return {
    get url () { return `redis://${HOST}:${port}` },
    get port () { return port },
    dir,
    get running () { return proc !== null },
    log: () => out,
    start,
    stop: async () => { await signal('SIGTERM') },
    kill: async () => { await signal('SIGKILL') },
    restart: async () => { await signal('SIGTERM'); await start() },
    restartEmpty: async () => {
      await signal('SIGTERM')
      for (const name of await readdir(dir)) await rm(join(dir, name), { recursive: true, force: true })
      await start()
    },
    pause: () => { proc?.kill('SIGSTOP') },
    resume: () => { proc?.kill('SIGCONT') }
  }
}
