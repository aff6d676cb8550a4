/**
 * The replica's link to Redis: four connections (commands, lease commands, one blocking stream reader, pub/sub), the checks a
 * cluster needs before it trusts a Redis, and the Redis health every other cluster part reads.
 *
 * - `maxmemory-policy` must be `noeviction`: an evicted lease would let two replicas hold a session, an evicted
 *   stream would lose events silently. Refused at start; a Redis that changes it later counts as down.
 * - An epoch key (random, set once by whichever replica comes first): a Redis that restarted empty has a new
 *   one, so ids of the old stream are recognised as unknown instead of served as "nothing missed".
 * - Health: a heartbeat every leaseMs/3 (the replica's own key, which also keeps its subscription interest
 *   alive) with a deadline, so a Redis that hangs without closing its sockets is noticed like one that is gone.
 * - The blocking reader has a watchdog: a blocking read that outlives its block time by far means a half-open
 *   connection (a Redis failover can leave one); the connection is then replaced, never waited on for ever.
 *
 * The `redis` package is imported here, dynamically, and nowhere else: a bridge without `cluster` never loads it.
 */
import { createHash, randomBytes } from 'node:crypto'
import type { ClusterConfig } from '../../config/index.js'
import { ClusterError, ClusterErrorCode, redisErrorText } from './errors.js'
import type { SessionLogger } from '../ops/lazy-log.js'

/** The part of a node-redis client used here (its generic types are far wider than needed). */
interface NodeRedisClient {
  connect: () => Promise<unknown>
  sendCommand: (args: string[]) => Promise<unknown>
  SUBSCRIBE: (channels: string, listener: (message: string, channel: string) => void) => Promise<void>
  UNSUBSCRIBE: (channels: string) => Promise<void>
  duplicate: () => NodeRedisClient
  on: (event: string, listener: (...args: unknown[]) => void) => unknown
  destroy: () => void
  readonly isReady: boolean
}

/** `refused`: connected, but the Redis may evict keys (checked again on every heartbeat until it is fixed) */
export type LinkState = 'connecting' | 'up' | 'down' | 'refused' | 'closed'

export interface LinkOptions {
  log: SessionLogger
  /** how long open() waits for the first connection (default 10 s) */
  startTimeoutMs?: number
}

/** A Lua script run by EVALSHA, loaded again (EVAL) when Redis does not know it (after a restart). */
export class LuaScript {
  readonly source: string
  readonly sha: string
  constructor (source: string) {
    this.source = source
    this.sha = createHash('sha1').update(source).digest('hex')
  }
}

/**
 * The replica's heartbeat. KEYS: its key, the replica registry (zset), its subscription interest (hash).
 * ARGV: replicaId, ttl ms. Registry scores are Redis's clock, so replicas never compare their own clocks.
 */
const BEAT = new LuaScript(`
local t = redis.call('TIME')
redis.call('ZADD', KEYS[2], t[1] * 1000 + math.floor(t[2] / 1000), ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[2])
return redis.call('SET', KEYS[1], t[1], 'PX', ARGV[2])
`)

export const REQUIRED_POLICY = 'noeviction'
const RECONNECT_MAX_MS = 2_000

export function keyOf (config: Pick<ClusterConfig, 'keyPrefix'>, ...parts: string[]): string {
  return [config.keyPrefix, ...parts].join(':')
}

/** A deadline on a promise; the promise itself is left to settle (node-redis rejects it when the socket goes). */
async function deadline<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => { reject(new ClusterError(ClusterErrorCode.TIMEOUT, `Redis did not answer ${what} within ${ms} ms`)) }, ms)
    timer.unref()
  })
  try {
    return await Promise.race([p, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/** `lease`: the connection of lease acquisitions, renewals and releases; `commands`: everything else */
export type Connection = 'commands' | 'lease'

export class RedisLink {
  readonly config: ClusterConfig
  readonly #log: SessionLogger
  readonly #cmd: NodeRedisClient
  #reader: NodeRedisClient | null = null
  #readerId: string | null = null
  #sub: NodeRedisClient | null = null
  /** lease commands only: a renewal must not queue behind a burst of appends on the command connection */
  #lease: NodeRedisClient | null = null
  #state: LinkState = 'connecting'
  #reason = 'connecting'
  #epoch: string | null = null
  #heartbeat: NodeJS.Timeout | null = null
  #checking: Promise<void> | null = null
  /** reader (re)connections, and how many of them a completed check came after: reads wait for that check */
  #readerConnects = 0
  #readerChecked = 0
  readonly #stateListeners = new Set<(state: LinkState, reason: string) => void>()
  readonly #epochListeners = new Set<(epoch: string, previous: string) => void>()

  private constructor (config: ClusterConfig, cmd: NodeRedisClient, log: SessionLogger) {
    this.config = config
    this.#cmd = cmd
    this.#log = log
  }

  /** Connects, refuses an evicting Redis, reads (or sets) the epoch. Throws a ClusterError on failure. */
  static async open (config: ClusterConfig, options: LinkOptions): Promise<RedisLink> {
    const { createClient } = await import('redis')
    const connectTimeout = Math.min(5_000, Math.max(500, config.leaseMs))
    const cmd = createClient({
      url: config.redis,
      name: `cometd-bridge:${config.replicaId}`,
      // raw replies as flat arrays (HGETALL, XINFO, XREAD), the same on every Redis version
      RESP: 2,
      // a command while Redis is away fails at once: a lease renewal must not wait in a queue
      disableOfflineQueue: true,
      socket: {
        connectTimeout,
        reconnectStrategy: (retries: number) => Math.min(RECONNECT_MAX_MS, 50 * 2 ** Math.min(retries, 6)) + Math.floor(Math.random() * 50)
      }
    }) as unknown as NodeRedisClient
    const link = new RedisLink(config, cmd, options.log)
    link.#watch(cmd, 'commands', true)
    const startTimeoutMs = options.startTimeoutMs ?? 10_000
    try {
      await deadline(cmd.connect(), startTimeoutMs, 'the first connection')
      await link.#check(true)
      link.#sub = await link.#duplicate('pub/sub', false)
      link.#lease = await link.#duplicate('lease', false)
    } catch (err) {
      cmd.destroy()
      link.#sub?.destroy()
      link.#lease?.destroy()
      if (err instanceof ClusterError && err.code !== ClusterErrorCode.TIMEOUT) throw err
      throw new ClusterError(ClusterErrorCode.UNREACHABLE, `Cannot reach Redis: ${redisErrorText(err)}`, { cause: err })
    }
    link.#startHeartbeat()
    return link
  }

  get state (): LinkState { return this.#state }
  get reason (): string { return this.#reason }
  /** the epoch of the Redis data this replica works with */
  get epoch (): string { return this.#epoch ?? '' }
  get replicaId (): string { return this.config.replicaId }

  readiness (): { ready: true } | { ready: false, reason: string } {
    return this.#state === 'up' ? { ready: true } : { ready: false, reason: `redis ${this.#state}: ${this.#reason}` }
  }

  key (...parts: string[]): string { return keyOf(this.config, ...parts) }

  onState (fn: (state: LinkState, reason: string) => void): () => void {
    this.#stateListeners.add(fn)
    return () => { this.#stateListeners.delete(fn) }
  }

  /** Redis lost its data: ids of the old epoch are unknown from now on. */
  onEpochChange (fn: (epoch: string, previous: string) => void): () => void {
    this.#epochListeners.add(fn)
    return () => { this.#epochListeners.delete(fn) }
  }

  /**
   * One command with a deadline (default leaseMs), on the command connection or (`on: 'lease'`) on the connection
   * kept for the lease's own commands.
   */
  async send (args: string[], timeoutMs = this.config.leaseMs, on: Connection = 'commands'): Promise<unknown> {
    if (this.#state === 'closed') throw new ClusterError(ClusterErrorCode.CLOSED, 'the Redis link is closed')
    // while the lease connection reconnects (after Redis came back, it may lag behind the command connection) the
    // lease's commands go on the command connection rather than fail: a holder must not lose its lease to that
    const lease = this.#lease
    const client = on === 'lease' && lease !== null && lease.isReady ? lease : this.#cmd
    return deadline(client.sendCommand(args), timeoutMs, args[0] ?? 'a command')
  }

  /** EVALSHA, or EVAL when Redis does not have the script (a restarted Redis forgets them). */
  async eval (script: LuaScript, keys: string[], args: string[], timeoutMs?: number, on: Connection = 'commands'): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args]
    try {
      return await this.send(['EVALSHA', script.sha, ...tail], timeoutMs, on)
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err
      return this.send(['EVAL', script.source, ...tail], timeoutMs, on)
    }
  }

  /** EVAL with the whole source: no NOSCRIPT fallback, so calls sent in a row run in that order. */
  async evalSource (script: LuaScript, keys: string[], args: string[], timeoutMs?: number): Promise<unknown> {
    return this.send(['EVAL', script.source, String(keys.length), ...keys, ...args], timeoutMs)
  }

  async publish (channel: string, message: string): Promise<number> {
    return Number(await this.send(['PUBLISH', channel, message]))
  }

  async subscribe (channel: string, listener: (message: string) => void): Promise<void> {
    if (this.#sub === null) throw new ClusterError(ClusterErrorCode.CLOSED, 'the Redis link is closed')
    await this.#sub.SUBSCRIBE(channel, (message) => { listener(message) })
  }

  async unsubscribe (channel: string): Promise<void> {
    await this.#sub?.UNSUBSCRIBE(channel).catch(() => {})
  }

  /**
   * A blocking command (XREAD BLOCK) on the one reader connection. A read that does not come back within its
   * block time plus `graceMs` replaces the connection (a half-open socket would otherwise stall it for ever).
   */
  async blockingRead (args: string[], blockMs: number, graceMs: number): Promise<unknown> {
    const reader = this.#reader ?? await this.#newReader()
    // a reader that (re)connected reads only once the epoch was checked after that: it may be a new Redis
    if (this.#readerChecked !== this.#readerConnects) {
      await this.#recheck()
      if (this.#readerChecked !== this.#readerConnects || this.#state !== 'up') {
        throw new ClusterError(ClusterErrorCode.TIMEOUT, 'Redis is not checked since the reader reconnected')
      }
    }
    try {
      return await deadline(reader.sendCommand(args), blockMs + graceMs, 'a blocking read')
    } catch (err) {
      if (err instanceof ClusterError && err.code === ClusterErrorCode.TIMEOUT && this.#reader === reader) {
        this.#log.warn({ blockMs, graceMs }, 'redis: blocking read stalled, replacing the reader connection')
        this.#reader = null
        this.#readerId = null
        reader.destroy()
      }
      throw err
    }
  }

  /** Ends the reader's current blocking read at once (new streams to read, shutdown). */
  async unblockReader (): Promise<void> {
    if (this.#readerId === null || this.#state !== 'up') return
    await this.send(['CLIENT', 'UNBLOCK', this.#readerId]).catch(() => {})
  }

  async close (): Promise<void> {
    if (this.#state === 'closed') return
    this.#setState('closed', 'closed')
    if (this.#heartbeat !== null) clearInterval(this.#heartbeat)
    this.#heartbeat = null
    // the heartbeat goes at once: holders drop this replica's interest without waiting for its expiry
    const id = this.config.replicaId
    await deadline(Promise.all([
      this.#cmd.sendCommand(['DEL', this.key('replica', id), this.key('replica', id, 'interest')]),
      this.#cmd.sendCommand(['ZREM', this.key('replicas'), id])
    ]), 500, 'DEL').catch(() => {})
    for (const client of [this.#cmd, this.#reader, this.#sub, this.#lease]) client?.destroy()
    this.#reader = null
    this.#sub = null
    this.#lease = null
  }

  async #newReader (): Promise<NodeRedisClient> {
    const reader = await this.#duplicate('reader', false)
    // a reconnected reader is another Redis client: CLIENT UNBLOCK needs its new id
    const learnId = async (): Promise<void> => { this.#readerId = String(await reader.sendCommand(['CLIENT', 'ID'])) }
    reader.on('ready', () => {
      this.#readerConnects++
      void learnId().catch(() => {})
    })
    this.#readerConnects++
    try {
      await deadline(learnId(), Math.max(1_000, this.config.leaseMs), 'CLIENT ID')
    } catch (err) {
      reader.destroy()
      throw err
    }
    this.#reader = reader
    return reader
  }

  async #duplicate (role: string, main: boolean): Promise<NodeRedisClient> {
    const client = this.#cmd.duplicate()
    this.#watch(client, role, main)
    try {
      await deadline(client.connect(), Math.max(1_000, this.config.leaseMs), `the ${role} connection`)
    } catch (err) {
      client.destroy()
      throw err
    }
    return client
  }

  /** node-redis throws on an 'error' event without a listener; the command connection also drives the state. */
  #watch (client: NodeRedisClient, role: string, main: boolean): void {
    client.on('error', (err: unknown) => {
      this.#log.debug({ role, error: redisErrorText(err) }, 'redis connection error')
      if (main) this.#setState('down', redisErrorText(err))
    })
    if (!main) return
    client.on('reconnecting', () => { this.#setState('down', this.#reason === 'connecting' ? 'reconnecting' : this.#reason) })
    client.on('ready', () => {
      if (this.#epoch === null) return // the first connection: open() checks
      void this.#recheck()
    })
  }

  async #recheck (): Promise<void> {
    // a check under way may have begun before what asks for this one: wait for it, then check again
    if (this.#checking !== null) await this.#checking
    if (this.#checking !== null) return this.#checking
    this.#checking = this.#check(false).catch((err: unknown) => {
      this.#setState('down', redisErrorText(err))
    }).finally(() => { this.#checking = null })
    return this.#checking
  }

  /** The eviction policy and the epoch, on every (re)connection. At start a bad policy is fatal. */
  async #check (atStart: boolean): Promise<void> {
    const readerConnects = this.#readerConnects
    const info = String(await this.send(['INFO', 'memory']))
    const policy = /^maxmemory_policy:(\S+)/m.exec(info)?.[1] ?? 'unknown'
    if (policy !== REQUIRED_POLICY) {
      const message = `Redis has maxmemory-policy ${policy}: the bridge needs ${REQUIRED_POLICY} (an evicted lease or stream would break the cluster silently); set it with CONFIG SET maxmemory-policy ${REQUIRED_POLICY} or in redis.conf`
      if (atStart) throw new ClusterError(ClusterErrorCode.EVICTION_POLICY, message)
      if (this.#state !== 'refused') this.#log.error({ policy }, message)
      this.#setState('refused', `maxmemory-policy ${policy} (${REQUIRED_POLICY} required)`)
      return
    }
    const epochKey = this.key('epoch')
    await this.send(['SET', epochKey, Date.now().toString(36) + randomBytes(4).toString('hex'), 'NX'])
    const epoch = String(await this.send(['GET', epochKey]))
    const previous = this.#epoch
    this.#epoch = epoch
    if (previous !== null && previous !== epoch) {
      this.#log.warn({ previous, epoch }, 'redis: the data is not the one this replica knew (restarted empty?): ids of the old epoch are unknown now')
      for (const fn of this.#epochListeners) fn(epoch, previous)
    }
    await this.#writeBeat()
    this.#readerChecked = readerConnects
    this.#setState('up', 'ok')
  }

  #startHeartbeat (): void {
    const every = Math.max(100, Math.floor(this.config.leaseMs / 3))
    this.#heartbeat = setInterval(() => {
      void this.#beat().catch((err: unknown) => {
        if (this.#state !== 'closed') this.#setState('down', redisErrorText(err))
      })
    }, every)
    this.#heartbeat.unref()
  }

  /** The replica's heartbeat key (3 × leaseMs); a success proves Redis answers. */
  async #beat (): Promise<void> {
    if (this.#state === 'closed') return
    if (this.#state === 'refused') { await this.#recheck(); return }
    await this.#writeBeat()
    // answers again after a hang without a reconnect (a SIGSTOP'd Redis keeps its sockets and its data)
    if (this.#state === 'down' && this.#checking === null && this.#cmd.isReady) this.#setState('up', 'ok')
  }

  async #writeBeat (): Promise<void> {
    const every = Math.max(100, Math.floor(this.config.leaseMs / 3))
    const id = this.config.replicaId
    await this.eval(BEAT, [this.key('replica', id), this.key('replicas'), this.key('replica', id, 'interest')], [id, String(this.heartbeatTtlMs)], every)
  }

  /** A replica silent for this long is gone: its interest no longer counts. */
  get heartbeatTtlMs (): number { return 3 * this.config.leaseMs }

  #setState (to: LinkState, reason: string): void {
    if (this.#state === 'closed') return
    const changed = this.#state !== to
    this.#state = to
    this.#reason = reason
    if (!changed) return
    this.#log[to === 'down' ? 'warn' : 'info']({ state: to, reason }, 'redis link state')
    for (const fn of this.#stateListeners) fn(to, reason)
  }
}
