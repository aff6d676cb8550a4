/**
 * Benchmark client process: one publisher or one subscriber of one library (see adapters.ts).
 *
 *   node dist/bench/client/peer.js --role pub|sub --lib client-core|cometd|cometd-autobatch|faye|floor \
 *        --transport websocket|long-polling --url http://127.0.0.1:<port>/cometd [--channel /bench/data]
 *
 * 'ready' is sent once connected (and, for a subscriber, subscribed). Calls:
 *   sub  arm { phase, n, skip }   start counting phase `phase` (n messages expected; latency ignores seq < skip);
 *                                 emits 'complete' (a SubReport) as soon as all n have arrived
 *        report                   the SubReport so far (after a timeout: lost messages are n - unique)
 *   pub  burst { phase, n, window, channel? }  publish n messages (to `channel`, default /bench/data) keeping at
 *                                    most `window` unconfirmed; resolves when all are confirmed (PubReport)
 *        paced { phase, n, rate }    publish n messages at `rate` msg/s; resolves when all are confirmed
 *   both info                       { transport, cpuMs, rssMB, peakRssMB }
 * With `--profile-file F --profile-phase t`, the process writes a CPU profile of that phase to F (with
 * `--profile-kind heap`, an allocation profile: lib/profiler.ts, kind heap).
 */
import { argValue, emitEvent, serveRpc } from '../lib/proc.js'
import { cpuMs, nowUs, peakRssMB, rssMB } from '../lib/clock.js'
import { summarize, type Summary } from '../lib/stats.js'
import { PhaseProfiler } from '../lib/profiler.js'
import { createClient, LIBRARIES, type Library, type TransportName } from './adapters.js'
import { CHANNEL, isBenchData, makeData } from './message.js'

export interface SubReport {
  phase: string
  expected: number
  unique: number
  duplicates: number
  /** messages of another phase, or not bench data */
  stray: number
  /** messages that arrived after one published later (one publisher: publish order broken) */
  reordered: number
  /** groups of messages that arrived in the same event-loop turn (≈ HTTP responses or frames carrying events) */
  bursts: number
  armedUs: number
  firstUs: number
  lastUs: number
  /** CPU of the process from arm to the last message (or to the report), ms */
  cpuMs: number
  rssMB: number
  peakRssMB: number
  /** one-way latency of the counted messages, ms */
  latency: Summary
}

export interface PubReport {
  phase: string
  startUs: number
  endUs: number
  confirmed: number
  failed: number
  firstError: string | null
  timedOut: boolean
  cpuMs: number
}

const PHASE_DEADLINE_MS = 120_000

async function main (): Promise<void> {
  const role = argValue('role')
  const library = argValue('lib') as Library
  const transport = argValue('transport') as TransportName
  const url = argValue('url')
  const channel = argValue('channel') ?? CHANNEL
  if (role !== 'pub' && role !== 'sub') throw new Error('--role pub|sub')
  if (!LIBRARIES.includes(library)) throw new Error(`--lib ${LIBRARIES.join('|')}`)
  if (transport !== 'websocket' && transport !== 'long-polling') throw new Error('--transport websocket|long-polling')
  if (url === undefined) throw new Error('--url')

  const profileFile = argValue('profile-file')
  const profilePhase = argValue('profile-phase') ?? 't'
  const profiler = profileFile === undefined ? null : new PhaseProfiler(profileFile, argValue('profile-kind') === 'heap' ? 'heap' : 'cpu')
  const client = await createClient(library, url, transport)
  await client.connect()
  const info = (): Record<string, unknown> => ({ transport: client.transport(), cpuMs: cpuMs(), rssMB: rssMB(), peakRssMB: peakRssMB() })

  if (role === 'sub') {
    // Counting state of the armed phase; the listener does the same small amount of work for every library.
    let phase = ''
    let expected = 0
    let skip = 0
    let seen = new Uint8Array(0)
    let latencies = new Float64Array(0)
    let unique = 0
    let duplicates = 0
    let stray = 0
    let reordered = 0
    let highest = -1
    let armedUs = 0
    let armedCpu = 0
    let firstUs = 0
    let lastUs = 0
    let doneCpu = -1
    let bursts = 0
    let inBurst = false
    const endBurst = (): void => { inBurst = false }
    const report = (): SubReport => {
      const lat = latencies.subarray(skip, expected).filter((x) => x >= 0)
      return {
        phase, expected, unique, duplicates, stray, reordered, bursts, armedUs, firstUs, lastUs,
        cpuMs: (doneCpu >= 0 ? doneCpu : cpuMs()) - armedCpu,
        rssMB: rssMB(),
        peakRssMB: peakRssMB(),
        latency: summarize(lat)
      }
    }
    await client.subscribe(channel, (data) => {
      const now = nowUs()
      if (!isBenchData(data) || data.p !== phase || data.s < 0 || data.s >= expected) {
        stray++
        return
      }
      if (seen[data.s] === 1) {
        duplicates++
        return
      }
      seen[data.s] = 1
      if (data.s < highest) reordered++
      else highest = data.s
      latencies[data.s] = (now - data.t) / 1000
      if (!inBurst) {
        inBurst = true
        bursts++
        setImmediate(endBurst)
      }
      if (unique === 0) firstUs = now
      lastUs = now
      unique++
      if (unique === expected) {
        doneCpu = cpuMs()
        if (profiler?.running === true) void profiler.stop().then(() => emitEvent('complete', report()))
        else emitEvent('complete', report())
      }
    })
    serveRpc({
      info,
      arm: async (params: { phase: string, n: number, skip?: number }) => {
        if (profiler !== null && params.phase === profilePhase) await profiler.start()
        phase = params.phase
        expected = params.n
        skip = Math.min(params.skip ?? 0, expected)
        seen = new Uint8Array(expected)
        latencies = new Float64Array(expected).fill(-1)
        unique = duplicates = stray = reordered = bursts = 0
        highest = -1
        firstUs = lastUs = 0
        doneCpu = -1
        armedCpu = cpuMs()
        armedUs = nowUs()
        return { armedUs }
      },
      report: async () => {
        if (doneCpu < 0) doneCpu = cpuMs()
        await profiler?.stop()
        return report()
      }
    }, () => client.close())
    return
  }

  // ---------------------------------------------------------------- publisher
  const run = (phase: string, n: number, window: number, rate: number, to = CHANNEL): Promise<PubReport> => new Promise((resolve) => {
    const startCpu = cpuMs()
    const startUs = nowUs()
    let next = 0
    let inflight = 0
    let confirmed = 0
    let failed = 0
    let firstError: string | null = null
    let finished = false
    let pacer: NodeJS.Timeout | null = null
    const finish = (timedOut: boolean): void => {
      if (finished) return
      finished = true
      clearTimeout(guard)
      if (pacer !== null) clearInterval(pacer)
      resolve({ phase, startUs, endUs: nowUs(), confirmed, failed, firstError, timedOut, cpuMs: cpuMs() - startCpu })
    }
    const guard = setTimeout(() => finish(true), PHASE_DEADLINE_MS)
    const settled = (): void => {
      inflight--
      if (confirmed + failed === n) finish(false)
      else if (rate === 0) pump()
    }
    const ok = (): void => {
      confirmed++
      settled()
    }
    const fail = (error: unknown): void => {
      failed++
      firstError ??= error instanceof Error ? error.message : String(error)
      settled()
    }
    const send = (): void => {
      const seq = next++
      inflight++
      client.publish(to, makeData(phase, seq, nowUs())).then(ok, fail)
    }
    function pump (): void {
      while (!finished && inflight < window && next < n) send()
    }
    if (n === 0) {
      finish(false)
      return
    }
    if (rate === 0) {
      pump()
      return
    }
    // Paced: every millisecond, send what is due by now (catches up after a late timer), never more than n.
    pacer = setInterval(() => {
      const due = Math.min(n, Math.floor(((nowUs() - startUs) / 1e6) * rate) + 1)
      while (!finished && next < due && inflight < window) send()
      if (next >= n && pacer !== null) {
        clearInterval(pacer)
        pacer = null
      }
    }, 1)
  })

  const profiled = async (phase: string, work: () => Promise<PubReport>): Promise<PubReport> => {
    if (profiler === null || phase !== profilePhase) return await work()
    await profiler.start()
    try {
      return await work()
    } finally {
      await profiler.stop()
    }
  }
  serveRpc({
    info,
    burst: (p: { phase: string, n: number, window: number, channel?: string }) => profiled(p.phase, () => run(p.phase, p.n, p.window, 0, p.channel)),
    paced: (p: { phase: string, n: number, rate: number, window?: number }) => profiled(p.phase, () => run(p.phase, p.n, p.window ?? 100_000, p.rate))
  }, () => client.close())
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : error)
  process.exit(1)
})
