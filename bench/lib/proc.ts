/**
 * Child processes for benchmarks: the parent forks compiled JS (dist/bench/...) with an IPC channel and talks to it
 * with small request/response calls; the child answers through serveRpc(). Every wait has a deadline and every
 * child is killed at the end (SIGKILL after a short grace period), also when the parent is interrupted.
 *
 *   // parent
 *   const child = await Child.fork('client/peer.js', ['--role', 'sub'], { name: 'sub' })
 *   const result = await child.call<Report>('report', {}, 5_000)
 *   const done = await child.waitEvent<Done>('complete', 30_000)
 *   await child.stop()
 *
 *   // child
 *   serveRpc({ report: async () => ({ ... }) })   // sends 'ready' once the handlers are installed
 *   emitEvent('complete', { ... })
 */
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

/** dist/bench (this file is dist/bench/lib/proc.js once compiled). */
export const BENCH_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

interface CallMessage { kind: 'call', id: number, method: string, params: unknown }
interface ReplyMessage { kind: 'reply', id: number, result?: unknown, error?: string }
interface EventMessage { kind: 'event', name: string, payload: unknown }
type Incoming = ReplyMessage | EventMessage

const live = new Set<ChildProcess>()
let hooksInstalled = false

function installExitHooks (): void {
  if (hooksInstalled) return
  hooksInstalled = true
  const killAll = (): void => {
    for (const cp of live) {
      try { cp.kill('SIGKILL') } catch { /* already gone */ }
    }
    live.clear()
  }
  process.on('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      killAll()
      process.exit(130)
    })
  }
}

export interface ForkOptions {
  /** label used in errors */
  name: string
  /** extra node flags for the child, e.g. ['--cpu-prof', '--cpu-prof-dir', dir] */
  execArgv?: string[]
  /** deadline for the child's 'ready', ms (default 15 000) */
  readyTimeoutMs?: number
}

export class Child {
  readonly name: string
  readonly process: ChildProcess
  #nextId = 1
  #calls = new Map<number, { resolve: (v: unknown) => void, reject: (e: Error) => void, timer: NodeJS.Timeout }>()
  #events = new Map<string, unknown[]>()
  #waiters = new Map<string, Array<(payload: unknown) => void>>()
  #exited: Promise<number | null>
  #exitCode: number | null | undefined = undefined
  #stderr = ''
  /** the payload of the child's 'ready' event (serveRpc's readyPayload) */
  readyInfo: unknown = undefined

  private constructor (name: string, cp: ChildProcess) {
    this.name = name
    this.process = cp
    this.#exited = new Promise((resolve) => {
      cp.once('exit', (code, signal) => {
        live.delete(cp)
        this.#exitCode = code
        const error = new Error(`${name} exited (code ${String(code)}, signal ${String(signal)})${this.#stderr === '' ? '' : `: ${this.#stderr.slice(-800)}`}`)
        for (const [, call] of this.#calls) {
          clearTimeout(call.timer)
          call.reject(error)
        }
        this.#calls.clear()
        resolve(code)
      })
    })
    cp.stderr?.on('data', (chunk: Buffer) => {
      this.#stderr = (this.#stderr + chunk.toString('utf8')).slice(-4000)
      if (process.env.BENCH_VERBOSE === '1') process.stderr.write(`[${name}] ${chunk.toString('utf8')}`)
    })
    cp.stdout?.on('data', (chunk: Buffer) => {
      if (process.env.BENCH_VERBOSE === '1') process.stdout.write(`[${name}] ${chunk.toString('utf8')}`)
    })
    cp.on('message', (raw: unknown) => this.#onMessage(raw as Incoming))
  }

  /** Forks `BENCH_DIR/<modulePath>` and resolves once it reported 'ready'. */
  static async fork (modulePath: string, args: string[], options: ForkOptions): Promise<Child> {
    installExitHooks()
    const cp = fork(path.join(BENCH_DIR, modulePath), args, {
      execArgv: options.execArgv ?? [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      serialization: 'advanced'
    })
    live.add(cp)
    const child = new Child(options.name, cp)
    try {
      child.readyInfo = await child.waitEvent('ready', options.readyTimeoutMs ?? 15_000)
    } catch (error) {
      child.kill()
      throw error
    }
    return child
  }

  get stderr (): string { return this.#stderr }
  get pid (): number | undefined { return this.process.pid }

  #onMessage (message: Incoming): void {
    if (message.kind === 'reply') {
      const call = this.#calls.get(message.id)
      if (call === undefined) return
      this.#calls.delete(message.id)
      clearTimeout(call.timer)
      if (message.error !== undefined) call.reject(new Error(`${this.name}: ${message.error}`))
      else call.resolve(message.result)
      return
    }
    const waiters = this.#waiters.get(message.name)
    const waiter = waiters?.shift()
    if (waiter !== undefined) {
      waiter(message.payload)
      return
    }
    const queue = this.#events.get(message.name) ?? []
    queue.push(message.payload)
    this.#events.set(message.name, queue)
  }

  call<T> (method: string, params: unknown, timeoutMs: number): Promise<T> {
    if (this.#exitCode !== undefined) return Promise.reject(new Error(`${this.name} has exited`))
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#calls.delete(id)
        reject(new Error(`${this.name}: ${method} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      this.#calls.set(id, { resolve: resolve as (v: unknown) => void, reject, timer })
      const message: CallMessage = { kind: 'call', id, method, params }
      this.process.send(message)
    })
  }

  /** The next event `name` (queued ones first); rejects after timeoutMs or when the child exits. */
  waitEvent<T> (name: string, timeoutMs: number): Promise<T> {
    const queued = this.#events.get(name)
    if (queued !== undefined && queued.length > 0) return Promise.resolve(queued.shift() as T)
    return new Promise<T>((resolve, reject) => {
      let done = false
      const waiter = (payload: unknown): void => {
        if (done) return
        done = true
        clearTimeout(timer)
        resolve(payload as T)
      }
      const timer = setTimeout(() => {
        if (done) return
        done = true
        const list = this.#waiters.get(name) ?? []
        this.#waiters.set(name, list.filter((w) => w !== waiter))
        reject(new Error(`${this.name}: no '${name}' within ${timeoutMs} ms${this.#stderr === '' ? '' : `: ${this.#stderr.slice(-800)}`}`))
      }, timeoutMs)
      void this.#exited.then((code) => {
        if (done) return
        done = true
        clearTimeout(timer)
        reject(new Error(`${this.name} exited (code ${String(code)}) while waiting for '${name}'${this.#stderr === '' ? '' : `: ${this.#stderr.slice(-800)}`}`))
      })
      const list = this.#waiters.get(name) ?? []
      list.push(waiter)
      this.#waiters.set(name, list)
    })
  }

  /** Clears queued events of this name (e.g. a late 'complete' from a previous phase). */
  drainEvents (name: string): void {
    this.#events.delete(name)
  }

  /** Asks the child to exit (its 'exit' handler), then SIGKILL after graceMs. */
  async stop (graceMs = 3_000): Promise<void> {
    if (this.#exitCode !== undefined) return
    const timer = setTimeout(() => this.kill(), graceMs)
    try {
      this.process.send({ kind: 'call', id: 0, method: 'exit', params: null } satisfies CallMessage)
    } catch { /* channel closed */ }
    await this.#exited
    clearTimeout(timer)
  }

  kill (): void {
    if (this.#exitCode !== undefined) return
    try { this.process.kill('SIGKILL') } catch { /* gone */ }
  }

  get exited (): Promise<number | null> { return this.#exited }
}

// ------------------------------------------------------------------ child side

export type Handler = (params: never) => unknown

/**
 * Installs the IPC handlers of a child and reports 'ready'. The built-in 'exit' call runs `onExit` (bounded to
 * 2 s) and exits the process; so does a lost IPC channel (the parent died).
 */
export function serveRpc (handlers: Record<string, Handler>, onExit: () => Promise<void> = async () => {}, readyPayload: Record<string, unknown> = {}): void {
  if (process.send === undefined) throw new Error('this module must be forked with an IPC channel')
  let exiting = false
  const exit = (code: number): void => {
    if (exiting) return
    exiting = true
    const hard = setTimeout(() => process.exit(code), 2_000)
    hard.unref()
    void onExit().catch(() => {}).finally(() => process.exit(code))
  }
  process.on('disconnect', () => exit(0))
  process.on('message', (raw: unknown) => {
    const message = raw as CallMessage
    if (message.kind !== 'call') return
    if (message.method === 'exit') {
      exit(0)
      return
    }
    const handler = handlers[message.method]
    const reply = (body: Omit<ReplyMessage, 'kind' | 'id'>): void => {
      if (process.connected) process.send!({ kind: 'reply', id: message.id, ...body } satisfies ReplyMessage)
    }
    if (handler === undefined) {
      reply({ error: `unknown method ${message.method}` })
      return
    }
    Promise.resolve()
      .then(() => handler(message.params as never))
      .then((result) => reply({ result }), (error: unknown) => reply({ error: error instanceof Error ? (error.stack ?? error.message) : String(error) }))
  })
  emitEvent('ready', { pid: process.pid, ...readyPayload })
}

export function emitEvent (name: string, payload: unknown): void {
  if (process.connected) process.send!({ kind: 'event', name, payload } satisfies EventMessage)
}

/** The value after `--name` in argv, or undefined. */
export function argValue (name: string, argv: string[] = process.argv.slice(2)): string | undefined {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}
