/**
 * A TCP fault proxy (node:net) on 127.0.0.1:0 in front of a real peer, to produce network faults
 * that a server cannot: cut links, half-open (stalled) links, latency, refused connections.
 * It is protocol-blind: HTTP, websocket and TLS all pass through unchanged.
 *
 *   const proxy = await startFaultProxy({ host: '127.0.0.1', port: peer.port })
 *   t.teardown(proxy.close)
 *   client = createClient(proxy.url('/cometd'))
 *   proxy.cut()            // destroy every current connection, both sides (FIN; cut({reset:true}) = RST)
 *   proxy.stall(true)      // links stay open, bytes are read and DROPPED in both directions
 *   proxy.latency(200)     // each chunk is forwarded 200 ms after it arrived (order kept)
 *   await proxy.refuse(true)           // new connections are reset at once (ECONNRESET)
 *   await proxy.refuse(true, 'close')  // listener closed: ECONNREFUSED; refuse(false) reopens the same port
 *
 * Memory is bounded: stalled bytes are dropped (counted in stats.droppedBytes), and with latency a
 * direction with more than 1 MiB in flight pauses its source until it drains.
 */
import net from 'node:net'
import { HOST, idempotent, listen } from './net-util.js'

export interface ProxyTarget {
  host: string
  port: number
}

export type RefuseMode = 'reset' | 'close'

export interface FaultProxyStats {
  accepted: number
  refused: number
  bytesUp: number
  bytesDown: number
  droppedBytes: number
}

export interface FaultProxy {
  readonly port: number
  /** `${scheme}://127.0.0.1:<port><path>`; scheme 'http' by default ('ws', 'https', 'wss'). */
  url(path?: string, scheme?: string): string
  /** Client connections currently open through the proxy. */
  readonly connections: number
  readonly stats: FaultProxyStats
  /** Destroys every current connection on both sides; `reset: true` sends RST instead of FIN. */
  cut(opts?: { reset?: boolean }): void
  /** While on, connections stay open and every byte is read and dropped (a half-open link). */
  stall(on: boolean): void
  /** Delay added to every chunk in both directions (0 = none). */
  latency(ms: number): void
  /** While on, new connections fail: 'reset' (accepted then RST) or 'close' (listener closed). */
  refuse(on: boolean, mode?: RefuseMode): Promise<void>
  close(): Promise<void>
}

const MAX_IN_FLIGHT = 1024 * 1024

interface Pair {
  client: net.Socket
  upstream: net.Socket
}

export async function startFaultProxy(target: ProxyTarget): Promise<FaultProxy> {
  const pairs = new Set<Pair>()
  const stats: FaultProxyStats = { accepted: 0, refused: 0, bytesUp: 0, bytesDown: 0, droppedBytes: 0 }
  let stalled = false
  let latencyMs = 0
  let refusing: RefuseMode | null = null
  let closed = false
  let listener: net.Server | null = null
  let port = 0

  /** Forwards src → dst honouring stall/latency; `count` adds forwarded bytes to a stat. */
  function pipe(src: net.Socket, dst: net.Socket, count: (n: number) => void): void {
    const queue: Array<{ due: number; chunk: Buffer | null }> = [] // null = end of stream
    let inFlight = 0
    let waitingDrain = false
    let timer: NodeJS.Timeout | undefined

    const maybeResume = (): void => {
      if (!waitingDrain && inFlight <= MAX_IN_FLIGHT && src.isPaused()) src.resume()
    }
    const send = (chunk: Buffer): void => {
      if (dst.destroyed) return
      if (stalled) {
        stats.droppedBytes += chunk.length
        return
      }
      count(chunk.length)
      if (!dst.write(chunk) && !waitingDrain) {
        waitingDrain = true
        src.pause()
        dst.once('drain', () => {
          waitingDrain = false
          maybeResume()
        })
      }
    }
    const pump = (): void => {
      timer = undefined
      while (queue.length > 0) {
        const head = queue[0]!
        const wait = head.due - Date.now()
        if (wait > 0) {
          timer = setTimeout(pump, wait)
          timer.unref()
          return
        }
        queue.shift()
        if (head.chunk === null) {
          if (!dst.destroyed) dst.end()
          continue
        }
        inFlight -= head.chunk.length
        send(head.chunk)
      }
      maybeResume()
    }

    src.on('data', (chunk: Buffer) => {
      if (stalled) {
        stats.droppedBytes += chunk.length
        return
      }
      if (latencyMs <= 0 && queue.length === 0) {
        send(chunk)
        return
      }
      queue.push({ due: Date.now() + latencyMs, chunk })
      inFlight += chunk.length
      if (inFlight > MAX_IN_FLIGHT) src.pause()
      if (!timer) pump()
    })
    src.on('end', () => {
      if (stalled) return // a half-open link forwards no FIN either
      queue.push({ due: Date.now() + latencyMs, chunk: null })
      if (!timer) pump()
    })
    src.on('close', () => {
      if (timer) clearTimeout(timer)
      timer = undefined
      queue.length = 0
    })
  }

  function onConnection(client: net.Socket): void {
    if (refusing === 'reset') {
      stats.refused++
      client.on('error', () => undefined)
      client.resetAndDestroy()
      return
    }
    stats.accepted++
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true })
    const pair: Pair = { client, upstream }
    pairs.add(pair)
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    const teardown = (): void => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', teardown)
    upstream.on('error', teardown)
    client.on('close', teardown)
    upstream.on('close', teardown)
    pipe(client, upstream, (n) => (stats.bytesUp += n))
    pipe(upstream, client, (n) => (stats.bytesDown += n))
  }

  async function openListener(): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true, pauseOnConnect: false }, onConnection)
    port = await listen(server, port)
    listener = server
  }

  function closeListener(): Promise<void> {
    const server = listener
    listener = null
    if (!server) return Promise.resolve()
    // close()'s callback waits for open connections; resolve once the listening socket is gone.
    return new Promise<void>((resolve) => {
      server.close()
      setImmediate(resolve)
    })
  }

  function cut(opts: { reset?: boolean } = {}): void {
    for (const pair of [...pairs]) {
      pairs.delete(pair)
      for (const s of [pair.client, pair.upstream]) {
        if (opts.reset && !s.destroyed && !s.connecting) s.resetAndDestroy()
        else s.destroy()
      }
    }
  }

  await openListener()

  return {
    get port() {
      return port
    },
    url(path = '', scheme = 'http') {
      return `${scheme}://${HOST}:${port}${path}`
    },
    get connections() {
      return pairs.size
    },
    stats,
    cut,
    stall(on: boolean) {
      stalled = on
    },
    latency(ms: number) {
      latencyMs = Math.max(0, ms)
    },
    async refuse(on: boolean, mode: RefuseMode = 'reset') {
      if (closed) return
      if (on) {
        refusing = mode
        if (mode === 'close') await closeListener()
      } else {
        refusing = null
        if (!listener) await openListener()
      }
    },
    close: idempotent(async () => {
      closed = true
      await closeListener()
      cut()
    }),
  }
}
