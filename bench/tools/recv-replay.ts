/**
 * Subscriber CPU per received message over websocket, without publisher or server noise: this process is a minimal
 * Bayeux websocket server (handshake, connect held, subscribe) that, once the subscription is confirmed, sends the
 * same pre-serialised frames (`--per-frame` events of 193-byte data each) as fast as the socket drains. The
 * subscriber — client-core from this build, from `--alt DIR`, or the official client — runs in a forked child and
 * reports its own CPU (process.cpuUsage) from its subscription to its last event. Variants are interleaved run by run; medians.
 *
 *   flock /tmp/cometd-bench.lock node dist/bench/tools/recv-replay.js [--alt DIR/of/client-core] \
 *        [--official] [--floor] [--n 100000] [--per-frame 1,10] [--runs 3] [--profile DIR]
 *
 * `--official` adds the official CometD client (cometd-nodejs-client, websocket) as a reference, `--floor` the bare
 * `ws` + `JSON.parse` subscriber (client/floor.ts). The summary gives medians and minimums of the runs.
 *
 * `--profile DIR` runs the children under `--cpu-prof` (whole child, start-up included; summarise with
 * cpuprofile-top.js).
 */
import { fork } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import path from 'node:path'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import type { WebSocket } from 'ws'
import { median } from '../lib/stats.js'
import { PAD } from '../client/message.js'
import { createClient, type Library } from '../client/adapters.js'

const CHANNEL = '/bench/replay'
const args = process.argv.slice(2)
const flag = (name: string): string | undefined => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined }
const DEADLINE_MS = 120_000

interface Result { cpuUs: number, events: number, wallMs: number }

async function child (): Promise<void> {
  const library = flag('--lib') as Library
  const url = flag('--url')!
  const total = Number(flag('--total'))
  const client = await createClient(library, url, 'websocket')
  await client.connect()
  let events = 0
  const timer = setTimeout(() => { process.send!({ error: `timeout after ${events} of ${total}` }); process.exit(1) }, DEADLINE_MS)
  timer.unref()
  let resolveDone!: () => void
  const done = new Promise<void>((resolve) => { resolveDone = resolve })
  await client.subscribe(CHANNEL, () => { if (++events === total) resolveDone() })
  const start = process.cpuUsage()
  const wall = performance.now()
  await done
  const used = process.cpuUsage(start)
  const result: Result = { cpuUs: used.user + used.system, events, wallMs: performance.now() - wall }
  process.send!(result)
  await client.close()
  process.exitCode = 0 // let the loop end (a --cpu-prof profile is written at a normal exit)
  setTimeout(() => process.exit(0), 3000).unref()
}

/** Answers the meta channels; after /meta/subscribe, streams `frames` copies of `frame`. */
function serve (socket: WebSocket, frame: string, frames: number): void {
  let held: unknown[] = []
  let connected = false
  socket.on('message', (data) => {
    const out: unknown[] = []
    for (const m of JSON.parse(data.toString()) as Array<{ channel: string, id?: string, subscription?: string }>) {
      if (m.channel === '/meta/handshake') {
        out.push({ channel: m.channel, id: m.id, successful: true, clientId: 'replay', version: '1.0', supportedConnectionTypes: ['websocket'], advice: { reconnect: 'retry', interval: 0, timeout: 60_000 } })
      } else if (m.channel === '/meta/connect') {
        const reply = { channel: m.channel, id: m.id, successful: true, advice: { reconnect: 'retry', interval: 0, timeout: 60_000 } }
        if (connected) held.push(reply) // held until /meta/disconnect
        else out.push(reply)
        connected = true
      } else if (m.channel === '/meta/subscribe') {
        out.push({ channel: m.channel, id: m.id, successful: true, subscription: m.subscription })
        setImmediate(() => stream(socket, frame, frames))
      } else if (m.channel === '/meta/disconnect') {
        out.push(...held, { channel: m.channel, id: m.id, successful: true })
        held = []
      }
    }
    if (out.length > 0) socket.send(JSON.stringify(out))
  })
}

function stream (socket: WebSocket, frame: string, frames: number): void {
  const body = Buffer.from(frame)
  let sent = 0
  const step = (): void => {
    while (sent < frames && socket.bufferedAmount < 1 << 20) {
      socket.send(body, { binary: false })
      sent++
    }
    if (sent < frames && socket.readyState === socket.OPEN) setTimeout(step, 1).unref()
  }
  step()
}

async function runOne (url: string, lib: Library, total: number): Promise<Result> {
  const profile = flag('--profile')
  const execArgv = profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', path.resolve(profile)]
  const proc = fork(fileURLToPath(import.meta.url), ['--child', '--lib', lib, '--url', url, '--total', String(total)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv })
  try {
    return await new Promise<Result>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('child deadline')), DEADLINE_MS + 5000)
      proc.once('message', (m: Result | { error: string }) => {
        clearTimeout(timer)
        if ('error' in m) reject(new Error(m.error))
        else resolve(m)
      })
      proc.once('exit', (code) => { clearTimeout(timer); reject(new Error(`child exited ${code}`)) })
    })
  } finally {
    setTimeout(() => proc.kill('SIGKILL'), 2000).unref()
  }
}

async function main (): Promise<void> {
  const n = Number(flag('--n') ?? 100_000)
  const perFrames = (flag('--per-frame') ?? '1,10').split(',').map(Number)
  const runs = Number(flag('--runs') ?? 3)
  const libs: Array<[string, Library]> = [['this build', 'client-core']]
  const alt = flag('--alt')
  if (alt !== undefined) {
    process.env.BENCH_CLIENT_CORE_ALT = path.resolve(alt) // read by adapters.ts in the children
    libs.push(['alt', 'client-core-alt'])
  }
  if (args.includes('--official')) libs.push(['official', 'cometd'])
  if (args.includes('--floor')) libs.push(['floor', 'floor'])
  const data = { p: 'r', s: 12_345, t: 1_000_000_000_000, x: PAD }
  for (const perFrame of perFrames) {
    const frames = Math.ceil(n / perFrame)
    const frame = JSON.stringify(Array.from({ length: perFrame }, () => ({ channel: CHANNEL, data })))
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
    wss.on('connection', (socket) => serve(socket, frame, frames))
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()))
    const url = `http://127.0.0.1:${(wss.address() as AddressInfo).port}/cometd`
    const per: Record<string, number[]> = {}
    for (let run = 0; run < runs; run++) {
      const order = run % 2 === 0 ? libs : [...libs].reverse()
      for (const [name, dir] of order) {
        const r = await runOne(url, dir, frames * perFrame)
        const usPerMsg = r.cpuUs / r.events;
        (per[name] ??= []).push(usPerMsg)
        console.log(`  ${perFrame} event(s)/frame run ${run + 1} ${name.padEnd(10)} ${(usPerMsg * 10).toFixed(1).padStart(7)} ms CPU/10k  (${r.events} events, ${r.wallMs.toFixed(0)} ms)`)
      }
    }
    for (const client of wss.clients) client.terminate()
    await new Promise<void>((resolve) => wss.close(() => resolve()))
    for (const [what, f] of [['median', median], ['min', (xs: number[]) => Math.min(...xs)]] as const) {
      const mine = f(per['this build']!)
      let line = `${perFrame} event(s)/frame, ${what}: this build ${(mine * 10).toFixed(1)} ms CPU/10k`
      for (const other of ['alt', 'official', 'floor']) {
        if (per[other] !== undefined) line += `, ${other} ${(f(per[other]) * 10).toFixed(1)} (this build ${(mine / f(per[other])).toFixed(2)}×)`
      }
      console.log(line)
    }
  }
}

if (args.includes('--child')) await child()
else await main()
